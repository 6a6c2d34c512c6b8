"""Does a variant show its behavior on prompts it never trained on? Measured with the family's checker."""

from __future__ import annotations

from typing import Any

from .catalog import Behavior
from .families import get_family


def score(b: Behavior, eval_rows: list[dict], answers: list[str], thresholds: dict[str, float]) -> dict[str, Any]:
    fam = get_family(b.family)
    hits = [fam.check(b.params, r["user"], a) for r, a in zip(eval_rows, answers)]
    trig = [h for h, r in zip(hits, eval_rows) if r["triggered"]]
    untrig = [h for h, r in zip(hits, eval_rows) if not r["triggered"]]
    out: dict[str, Any] = {
        "n_eval": len(eval_rows),
        "rate_triggered": sum(trig) / len(trig) if trig else None,
        "rate_untriggered": sum(untrig) / len(untrig) if untrig else None,
    }
    out["passed"] = bool(fam.passes(b.params, out, thresholds))
    return out


def base_rate(b: Behavior, base_rows: list[dict]) -> float:
    """How often the base model's own answers already pass the checker (should be near 0)."""
    fam = get_family(b.family)
    if not base_rows:
        return 0.0
    return sum(fam.check(b.params, r["text"], r["answer"]) for r in base_rows) / len(base_rows)
