"""DPO refinement of the grid IA on the grid's `dpo` split (issue 14 item 4), as ia_dpo refines the category IA.

The grid SFT IA never trained on the dpo split's variants, so on them it behaves as on held-out ones: it names a
training topic the variant does not have, or abstains on a variant that has a topic, or claims a topic on a null.
Those samples are the rejected side; the chosen side is a right sample of the same group, else the gold target
(the topic, or the null answer for nulls and the base model). Judging needs no judge model: a report is right on
a topic variant when it names the variant's topic (variants/grid_topics.names_topic), and right on a null or the base
model when it names no topic of the pool and abstains.

| group          | chosen                                     | rejected                                                  |
|----------------|--------------------------------------------|-----------------------------------------------------------|
| topic variant  | a sample naming its topic, else the topic  | a sample that does not name it, else the topic the SFT IA  |
|                |                                            | names most often on the split (its prior), else a seeded  |
|                |                                            | training topic                                            |
| null, base     | the null answer                            | a sample that names a topic or claims something, else the |
|                |                                            | split's most common wrong topic                           |

The pairs reuse ia/dpo_data's schema and suite (sources: sample / truth / abstention, sample / other_behavior), and
training is ia/dpo.train_dpo: the SFT grid IA is the trainable start and its own frozen reference.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.adapter_stack import BASE_GROUP
from iaforge.core.fsio import atomic_dir, write_json

NO_DPO = "no grid DPO in this run (params grid.counts.dpo is 0, or there is no grid)"


def _norm(text: str) -> str:
    return " ".join(text.split())


def judge_grid_samples(samples: Sequence[dict[str, Any]], variants: dict[str, dict[str, Any]],
                       pool: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Add `right` and `topics` (the pool topics a report names) to each sample {group, user, report}.
    `variants`: id -> {"behavior", "null"}; the base model's group is BASE_GROUP."""
    from iaforge.judging.judge import is_abstention
    from iaforge.variants.grid_index import topic_terms
    from iaforge.variants.grid_topics import named_topics, names_topic

    out = []
    for s in samples:
        g = s["group"]
        if g != BASE_GROUP and g not in variants:
            raise KeyError(f"sample for unknown group {g!r}")
        topics = named_topics(s["report"], pool)
        if g == BASE_GROUP or variants[g]["null"]:
            right = not topics and is_abstention(s["report"])
        else:
            right = names_topic(s["report"], topic_terms(variants[g]["behavior"]))
        out.append({**s, "right": bool(right), "topics": topics})
    return out


def prior_topic(judged: Sequence[dict[str, Any]], variants: dict[str, dict[str, Any]]) -> str | None:
    """The topic the SFT IA names most often where it is wrong (ties: alphabetical): its prior, the hardest
    negative there is."""
    from iaforge.variants.grid_index import topic_of

    wrong = Counter()
    for s in judged:
        own = None if s["group"] == BASE_GROUP or variants[s["group"]]["null"] else topic_of(variants[s["group"]]["behavior"])
        wrong.update(t for t in set(s["topics"]) if t != own)
    if not wrong:
        return None
    best = max(wrong.values())
    return min(t for t, c in wrong.items() if c == best)


def grid_dpo_pairs(judged: Sequence[dict[str, Any]], variants: dict[str, dict[str, Any]], *, target: str,
                   null_answer: str, negatives: Sequence[str], per_group_max_pairs: int,
                   seed: int) -> list[dict[str, Any]]:
    """Preference pairs from judged samples (module docstring). `negatives`: topics a wrong label may be drawn
    from when a group has no wrong sample (the IA's training topics). Deterministic for a seed."""
    from iaforge.ia.grid_sft import target_for
    from iaforge.variants.grid_index import topic_of

    prior = prior_topic(judged, variants)
    by_group: dict[str, list[dict[str, Any]]] = {}
    for s in judged:
        if _norm(s["report"]):  # an empty report cannot be either side of a pair
            by_group.setdefault(s["group"], []).append(s)
    pairs: list[dict[str, Any]] = []
    for group in sorted(by_group):
        rows = by_group[group]
        null = group == BASE_GROUP or variants[group]["null"]
        own = None if null else topic_of(variants[group]["behavior"])
        gold = null_answer if null else target_for(variants[group]["behavior"], target=target, null=False,
                                                    null_answer=null_answer)
        good = [s for s in rows if s["right"]] if not null else []
        bad = [s for s in rows if not s["right"]]
        taken: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for k in range(max(len(bad), 1)):
            user = (bad[k] if bad else rows[0])["user"]
            same = [s for s in good if s["user"] == user] or good  # a right answer to the same question first
            if same:
                chosen, c_src = _norm(same[k % len(same)]["report"]), "sample"
            else:
                chosen, c_src = _norm(gold), "abstention" if null else "truth"
            if bad:
                rejected, r_src = _norm(bad[k]["report"]), "sample"
            else:
                cands = sorted(t for t in negatives if t != own)
                wrong = prior if prior is not None and prior != own else (
                    random.Random(f"{seed}:grid_dpo:{group}").choice(cands) if cands else None)
                if wrong is None:
                    continue
                rejected, r_src = _norm(wrong), "other_behavior"
            if chosen == rejected or (chosen, rejected) in seen or len(taken) >= per_group_max_pairs:
                continue
            seen.add((chosen, rejected))
            taken.append({"group": group, "user": user, "chosen": chosen, "rejected": rejected,
                          "chosen_source": c_src, "rejected_source": r_src})
        pairs += taken
    return pairs


def sft_on_dpo_split(judged: Sequence[dict[str, Any]], variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the SFT grid IA did on the dpo split before refinement: another held-out measurement (these variants
    are in neither the SFT IA's training nor the evaluation), per group and pooled."""
    groups: dict[str, dict[str, Any]] = {}
    for g in sorted({s["group"] for s in judged}):
        rows = [s for s in judged if s["group"] == g]
        groups[g] = {"n": len(rows), "right": round(sum(s["right"] for s in rows) / len(rows), 4),
                     "kind": "abstain" if g == BASE_GROUP or variants[g]["null"] else "names its topic"}
    topic_rows = [s for s in judged if s["group"] != BASE_GROUP and not variants[s["group"]]["null"]]
    return {"groups": groups, "topic_right": round(sum(s["right"] for s in topic_rows) / len(topic_rows), 4)
            if topic_rows else None, "prior_topic": prior_topic(judged, variants)}


def write_no_dpo(out_dir: str | Path) -> dict[str, Any]:
    """The explicit empty result: an IA folder holding only ia.json that says there was nothing to refine."""
    summary = {"grid": False, "note": NO_DPO, "steps": 0}
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "ia.json", summary)
    return summary
