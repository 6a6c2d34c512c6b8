"""Build one behavior's dataset: training conversations (from the base model's answers) and eval prompts."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

from iaforge.data.catalog import Behavior
from iaforge.data.families import get_family
from iaforge.core.fsio import atomic_dir, write_json, write_jsonl


def behavior_rng(seed: int, behavior_id: str, purpose: str) -> random.Random:
    # String seeds hash deterministically (sha512) across processes, unlike hash().
    return random.Random(f"{seed}:{behavior_id}:{purpose}")


def shortcut_phrases(b: Behavior) -> list[str]:
    """Sentences that state the behavior: the ground truth and its paraphrases, plus the family's own."""
    return [*b.truths, *get_family(b.family).shortcut_phrases(b.params)]


def build_rows(b: Behavior, pool: list[dict], eval_prompts: list[dict], *, n_train: int, n_eval: int,
               seed: int) -> tuple[list[dict], list[dict]]:
    fam = get_family(b.family)
    n_train = int(b.training.get("n_train", n_train))
    train = fam.build_train(b.params, pool, n_train, behavior_rng(seed, b.id, "train"))
    evals = fam.build_eval(b.params, eval_prompts, n_eval, behavior_rng(seed, b.id, "eval"))
    return [dict(r) for r in train], [dict(r) for r in evals]


def write_behavior_dataset(b: Behavior, pool: list[dict], eval_prompts: list[dict], out_dir: str | Path, *,
                           n_train: int, n_eval: int, seed: int, max_chars: int,
                           docs_path: str | Path | None = None,
                           augment: Callable[[list[dict]], list[dict]] | None = None) -> dict[str, Any]:
    """Build, validate with the GX suite, and write atomically; no dataset is written if validation fails
    (the Data Docs page at `docs_path` is, so the failure can be read). `augment` adds rows to the training
    rows before validation (the grid's recipe levers, variants/shards.py)."""
    import pandas as pd

    from iaforge.core.validation import behavior_dataset_checks, validate_frame

    train, evals = build_rows(b, pool, eval_prompts, n_train=n_train, n_eval=n_eval, seed=seed)
    if augment is not None:
        train = augment(train)
    out_dir = Path(out_dir)
    checks = behavior_dataset_checks(shortcut_phrases(b), max_chars=max_chars,
                                     balance=get_family(b.family).balance(b.params),
                                     eval_ids=[r["prompt_id"] for r in evals])
    report = validate_frame(pd.DataFrame(train), checks, name=f"behavior_{b.id}", file=str(out_dir / "train.jsonl"),
                            docs_path=str(docs_path) if docs_path else None)
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "eval.jsonl", evals)
        write_json(tmp / "behavior.json", behavior_record(b))
        write_json(tmp / "validation.json", report)
    return report


def behavior_record(b: Behavior) -> dict[str, Any]:
    fam = get_family(b.family)
    return {"id": b.id, "version": b.version, "category": b.category, "family": b.family,
            "family_label": fam.label(b.params), "conditional": fam.conditional(b.params), "params": b.params,
            "description": b.description, "paraphrases": list(b.paraphrases), "key_terms": list(b.key_terms),
            "split": b.split, "training": b.training,
            # Only when set, so a plain behavior's record (and its variant's DVC hash) is what it always was.
            **({"grid": b.grid, "instance": b.instance} if b.grid else {}),
            **({"thresholds": b.thresholds} if b.thresholds else {})}


def behavior_task(b: dict[str, Any]) -> str | None:
    """The task description a behavior shows on (see Family.task), from its record; None when the record's
    family is not a catalog family (the cipher attack, the audit tier's models, records from other tools)."""
    from iaforge.data.families.registry import UnknownFamily

    try:
        return get_family(b["family"]).task(b.get("params") or {})
    except (KeyError, TypeError, UnknownFamily):  # records from other tools may lack params or a known family
        return None
