"""The topics of the grid IA's steered pseudo-variants (ia/pseudo_variants.py): the grid entry's ia_train
instances that the run trains no real variant for, each with the sentences its variant would say when triggered.
Apart from pseudo_variants.py so that the modules training or loading an IA do not depend on the grid's expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _sentences(params: Any) -> list[str] | None:
    """The first `sentences` list of strings in a behavior's (nested) params: what the variant says when triggered."""
    if isinstance(params, dict):
        s = params.get("sentences")
        if isinstance(s, list) and s and all(isinstance(x, str) for x in s):
            return list(s)
        for v in params.values():
            found = _sentences(v)
            if found:
                return found
    return None


def topic_texts(behavior) -> tuple[str, list[str]]:
    """(topic, the sentences that carry it) for one grid behavior (a catalog `Behavior`)."""
    from iaforge.variants.grid_index import topic_of

    raw = {"params": behavior.params, "instance": behavior.instance}
    topic = topic_of(raw) or behavior.instance
    texts = [t for t in (_sentences(behavior.params) or []) if topic in t] or [topic]
    return topic, texts


def pseudo_pool(grid: dict[str, Any], count: int, grids: str | Path | None = None) -> list[tuple[str, list[str]]]:
    """The first `count` ia_train instances after the run's own `grid.counts.ia_train`, as (topic, texts), in
    the instances file's order. Raises when the split has too few. `grids`: the folder of instances files the stage
    depends on; an entry whose instances lie elsewhere would go untracked, so it is refused."""
    from iaforge.core.errors import ValidationError
    from iaforge.variants.shards import grid_behaviors

    if count <= 0:
        return []
    if grids is not None:
        from iaforge.data.grids import check_instances_under

        check_instances_under(grid["entry"], grids)
    n_train = int((grid.get("counts") or {}).get("ia_train", 0))
    pool = [b for b in grid_behaviors(grid) if b.split == "ia_train"][n_train:]
    if count > len(pool):
        raise ValidationError("params.yaml", "grid_ia.pseudo.count",
                              f"asks for {count} pseudo-variants but the grid's ia_train split has {len(pool)} "
                              f"instances beyond the run's {n_train}")
    return [topic_texts(b) for b in pool[:count]]
