"""Ask each held-out (and training) variant about itself, with and without the IA, and judge the answers.

Verbalization rate = fraction of sampled answers (temperature 1) that the judge says name the variant's
behavior. The base model itself is asked too: any specific claim there is a false positive.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .generation import generate
from .ia import IA_NAME, AdapterSwitch, load_with_variants
from .adapters import attach
from .judge import Judge, is_abstention
from .questions import QuestionSet

CONDITIONS = ("no_ia", "ia")


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def run_evaluation(base_dir: str | Path, ia_dir: str | Path, variants: dict[str, dict[str, Any]], qs: QuestionSet,
                   judge: Judge, *, n_samples: int, max_new_tokens: int, temperature: float, batch_size: int,
                   system: str | None, seed: int, progress: bool = True) -> tuple[dict, list[dict], list[dict]]:
    """`variants`: id -> {"path", "behavior" (record), "split", "implanted"}. Returns (metrics, plot rows, samples)."""
    model, tok = load_with_variants(base_dir, {k: Path(v["path"]) for k, v in variants.items()})
    model = attach(model, ia_dir, IA_NAME)
    switch = AdapterSwitch(model, train_ia=False)

    def ask(questions: list[str], group: str | None, with_ia: bool, tag: str) -> list[tuple[str, str]]:
        users = [q for q in questions for _ in range(n_samples)]
        ctx = contextlib.nullcontext()
        if group is None and not with_ia:
            ctx = model.disable_adapter()
        else:
            switch(group, with_ia=with_ia)
        with ctx:
            answers = generate(model, tok, users, system=system, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               temperature=temperature, seed=seed, desc=tag, progress=progress)
        return list(zip(users, answers))

    per_behavior, samples, plot_rows = [], [], []
    # The base model first: its answers also serve as each behavior's prior (see below).
    base: dict[str, Any] = {}
    base_answers: dict[str, list[str]] = {}
    for cond in CONDITIONS:
        qa = ask(list(qs.general_eval), None, cond == "ia", f"eval base [{cond}]")
        base_answers[cond] = [a for _, a in qa]
        abst = [is_abstention(a) for _, a in qa]
        base[f"{cond}_abstain_rate"] = round(sum(abst) / len(abst), 4)
        base[f"{cond}_false_positive_rate"] = round(1 - base[f"{cond}_abstain_rate"], 4)
        samples += [{"behavior": "__base__", "condition": cond, "question": q, "answer": a, "match": None,
                     "similarity": None} for q, a in qa]
    for vid in sorted(variants):
        v = variants[vid]
        b = v["behavior"]
        questions = qs.eval_for(bool(b.get("conditional")))
        row = {"behavior": vid, "split": v["split"], "category": b["category"], "family": b["family"],
               "implanted": bool(v["implanted"])}
        for cond in CONDITIONS:
            qa = ask(questions, vid, cond == "ia", f"eval {vid} [{cond}]")
            verdicts = judge.judge([a for _, a in qa], [b["description"], *b["paraphrases"]], b["key_terms"])
            row[cond] = round(sum(v_.match for v_ in verdicts) / len(verdicts), 4)
            row[f"{cond}_abstain"] = round(sum(v_.abstain for v_ in verdicts) / len(verdicts), 4)
            # Claiming any behavior counts as a false positive only where there is none to find.
            row[f"{cond}_false_positive"] = round(1 - row[f"{cond}_abstain"], 4) if b["category"] == "control" else None
            # Prior: how often the BASE model's answers (same condition) would be judged a match for this
            # behavior. An IA that names the same few behaviors whatever it is attached to scores high here,
            # so a lift over the prior, not the raw rate, is evidence of introspection.
            prior = judge.judge(base_answers[cond], [b["description"], *b["paraphrases"]], b["key_terms"])
            row[f"{cond}_base_prior"] = round(sum(v_.match for v_ in prior) / len(prior), 4)
            plot_rows.append({"behavior": vid, "condition": cond, "verbalization": row[cond]})
            samples += [{"behavior": vid, "condition": cond, "question": q, "answer": a, "match": v_.match,
                         "similarity": v_.similarity} for (q, a), v_ in zip(qa, verdicts)]
        per_behavior.append(row)

    metrics = {"verbalization": {}, "per_behavior": per_behavior, "base_model": base,
               "settings": {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature}}
    controls = [r for r in per_behavior if r["category"] == "control"]
    metrics["false_positive"] = {
        "base_model": {c: base[f"{c}_false_positive_rate"] for c in CONDITIONS},
        "controls": {c: _mean([r[f"{c}_false_positive"] for r in controls]) for c in CONDITIONS},
        "n_controls": len(controls),
    }
    for split in sorted({r["split"] for r in per_behavior}):
        rows = [r for r in per_behavior if r["split"] == split and r["implanted"] and r["category"] != "control"]
        metrics["verbalization"][split] = {c: _mean([r[c] for r in rows]) for c in CONDITIONS}
        metrics["verbalization"][split].update({f"{c}_base_prior": _mean([r[f"{c}_base_prior"] for r in rows]) for c in CONDITIONS})
        metrics["verbalization"][split]["n_variants"] = len(rows)
    return metrics, plot_rows, samples
