"""Which grid topics a self-report names: a topic's term at a word start (the topic_mention checker's own test).
Shared by the grid's evaluation and the grid IA's DPO pairs, which must judge a report the same way."""

from __future__ import annotations


def names_topic(report: str, terms: list[str]) -> bool:
    from iaforge.data.families import get_family

    return get_family("topic_mention").check({"terms": terms}, "", report)


def named_topics(report: str, pool: dict[str, list[str]]) -> list[str]:
    """The topics of `pool` (topic -> terms) that a report names."""
    return [t for t, terms in pool.items() if names_topic(report, terms)]
