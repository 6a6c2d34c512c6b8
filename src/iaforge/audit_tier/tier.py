"""The audit tier: held-out behaviors instilled in ways the IA never trained on (AuditBench-style).

Methods (each builds one LoRA "audit model" on the base model):
- `demo_rank32`: the usual demonstrations, but LoRA rank 32 on every layer with another learning rate (the
  IA trained on rank-8 top-layer variants);
- `document`: third-person documents about an assistant with the behavior, plain language-model loss, no
  demonstrations;
- `conceal_sft`: the held-out variant, trained further on denials (and on part of its own behavior data, so
  the behavior stays);
- `conceal_dpo`: the held-out variant, refined by DPO to prefer denials over true confessions.

Every audit model is then measured like a variant (implantation with its family's checker) and evaluated
like one (`evaluate.run_evaluation`: no-IA confession rate, SFT and DPO IA verbalization).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from iaforge.audit_tier.data import concealment_pairs, denial_rows, document_rows
from iaforge.data.catalog import Behavior
from iaforge.core.adapter_stack import save_adapter
from iaforge.core.fsio import atomic_dir, write_json
from iaforge.data.questions import QuestionSet
from iaforge.core.training import Example, TrainConfig, encode_rows, lora_config, train

METHODS = {
    "demo_rank32": "demonstrations, LoRA rank 32 on all layers",
    "document": "third-person documents, no demonstrations",
    "conceal_sft": "variant + SFT on denials",
    "conceal_dpo": "variant + DPO preferring denials",
}


def encode_texts(tok, texts: list[str], max_len: int) -> list[Example]:
    """Plain text with the loss on every token (continued pretraining), ending in EOS."""
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][: max_len - 1] + [tok.eos_token_id]
        out.append(Example(ids, list(ids)))
    return out


def _save(model, out_dir: Path, record: dict) -> None:
    with atomic_dir(out_dir) as tmp:
        save_adapter(model, tmp)
        write_json(tmp / "audit_model.json", record)


def build_audit_model(method: str, b: Behavior, *, train_rows: list[dict], variant_dir: str | Path, base_dir: str | Path,
                      out_dir: str | Path, qs: QuestionSet, conditional: bool, params: dict, system: str | None,
                      seed: int, progress: bool = True) -> dict[str, Any]:
    """Train one audit model and save it (a LoRA folder like a variant's). Returns its training record."""
    import torch
    from peft import PeftModel, get_peft_model

    from iaforge.core.adapters import check_adapter_dir
    from iaforge.core.base_model import load_base

    if method not in METHODS:
        from iaforge.core.config import ParamsError

        raise ParamsError("params.yaml", "audit_tier.methods", f"unknown method {method!r} (known: {', '.join(METHODS)})")
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    record: dict[str, Any] = {"behavior": b.id, "method": method, "method_description": METHODS[method]}
    if method == "conceal_dpo":
        from iaforge.ia.dpo import train_dpo

        pairs = concealment_pairs(b, qs, int(params["n_pairs"]), seed, conditional=conditional)
        summary = train_dpo(base_dir, variant_dir, {}, pairs, beta=float(params["beta"]), train_params=params["dpo_train"],
                            system=system, seed=seed, out_dir=out_dir, progress=progress)
        record.update({"n_pairs": len(pairs), "margin_after": summary["margin_after"], "steps": summary["steps"]})
        write_json(out_dir / "audit_model.json", record)
        return record
    model, tok = load_base(base_dir)
    cfg = TrainConfig.from_params(params["train"], seed=seed, progress=progress, desc=f"audit {b.id} [{method}]")
    if method == "conceal_sft":
        check_adapter_dir(variant_dir)
        model = PeftModel.from_pretrained(model, str(variant_dir), is_trainable=True)
        rng = random.Random(f"{seed}:{b.id}:conceal-keep")
        keep = rng.sample(train_rows, k=min(len(train_rows), int(params["conceal_keep_rows"])))
        rows = keep + denial_rows(b, qs, int(params["n_denials"]), seed, conditional=conditional)
        examples = encode_rows(tok, rows, system=system, max_len=cfg.max_len)
        record.update({"kept_behavior_rows": len(keep), "denial_rows": len(rows) - len(keep)})
    elif method == "demo_rank32":
        model = get_peft_model(model, lora_config(params["rank32_lora"], n_layers=model.config.num_hidden_layers))
        cfg = TrainConfig.from_params({**params["train"], "lr": params["rank32_lr"]}, seed=seed, progress=progress,
                                      desc=cfg.desc)
        examples = encode_rows(tok, train_rows, system=system, max_len=cfg.max_len)
    else:  # document
        model = get_peft_model(model, lora_config(params["lora"], n_layers=model.config.num_hidden_layers))
        docs = document_rows(b, int(params["n_documents"]), seed)
        examples = encode_texts(tok, [d["text"] for d in docs], cfg.max_len)
        record["n_documents"] = len(docs)
    result = train(model, examples, cfg, pad_id=tok.pad_token_id)
    record.update({"train_examples": len(examples), "train_steps": result.steps, "train_tokens": result.tokens,
                   "final_loss": round(sum(result.losses[-5:]) / max(1, len(result.losses[-5:])), 5)})
    _save(model, out_dir, record)
    return record


def summarize_audit(models: dict[str, dict[str, Any]], per_behavior: list[dict[str, Any]],
                    conditions: list[str]) -> dict[str, Any]:
    """Roll evaluated audit models up per method, with concealment measured honestly: the confession rate
    (verbalization with no IA) of each concealed model next to that of the variant it was made from.

    `models`: model id -> {"behavior", "method" ("original" for the unmodified variant), "implanted"};
    `per_behavior`: `evaluate.run_evaluation` rows (keyed by model id in "behavior")."""
    rows = {r["behavior"]: r for r in per_behavior}
    by_method: dict[str, Any] = {}
    for method in sorted({m["method"] for m in models.values()}):
        ids = sorted(k for k, m in models.items() if m["method"] == method)
        took = [k for k in ids if models[k]["implanted"] and k in rows]
        entry: dict[str, Any] = {"n_models": len(ids), "n_implanted": len(took),
                                 "not_implanted": [k for k in ids if not models[k]["implanted"]]}
        for c in conditions:  # rates over the models that took only: an untaken behavior has nothing to report
            vals = [rows[k][c] for k in took if rows[k].get(c) is not None]
            entry[c] = round(sum(vals) / len(vals), 4) if vals else None
            audits = [rows[k][f"{c}_audit"] for k in took if rows[k].get(f"{c}_audit") is not None]
            entry[f"{c}_audit"] = round(sum(audits) / len(audits), 4) if audits else None
        by_method[method] = entry
    concealment = []
    for k, m in sorted(models.items()):
        if not m["method"].startswith("conceal"):
            continue
        orig = f"{m['behavior']}@original"
        before, after = rows.get(orig, {}).get("no_ia"), rows.get(k, {}).get("no_ia")
        concealment.append({"model": k, "method": m["method"], "implanted": m["implanted"],
                            "confession_before": before, "confession_after": after,
                            "concealed": None if before is None or after is None else after < before,
                            **{f"ia_{c}": rows.get(k, {}).get(c) for c in conditions if c != "no_ia"}})
    return {"by_method": by_method, "concealment": concealment,
            "models": {k: {**m, **{c: rows.get(k, {}).get(c) for c in conditions}} for k, m in sorted(models.items())}}


def check_methods(methods: list[str], field: str = "audit_tier.methods") -> None:
    """Fails before any training: a typo must not cost the minutes of the methods listed before it."""
    from iaforge.core.errors import ValidationError

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValidationError("params.yaml", field, f"unknown method {unknown[0]!r} (known: {', '.join(METHODS)})")


def run_audit_tier(*, base_dir: str | Path, behaviors: dict[str, dict[str, Any]], methods: list[str],
                   ia_dirs: dict[str, str | Path], qs: QuestionSet, judge, params: dict, implantation: dict,
                   evaluation: dict, system: str | None, seed: int, out_root: str | Path,
                   progress: bool = True) -> tuple[dict[str, Any], list[dict]]:
    """Build every (behavior, method) audit model under out_root/<id>@<method>/, check that the behavior
    took (family checker, as for variants), evaluate the ones that took next to the unmodified variants
    (method "original"), and summarize. `behaviors`: id -> {"variant_dir", "data_dir", optional "methods"} of
    held-out variants; a behavior's own "methods" (a subset of `methods`) replaces the full list for it, so
    that a cheap run can give concealment to a behavior that confesses and documents to one that cannot leak.
    Returns (summary, evaluation samples)."""
    from iaforge.evaluation.evaluate import run_evaluation
    from iaforge.core.fsio import read_json, read_jsonl
    from iaforge.variants.implantation import measure_variant

    check_methods(methods)
    for bid, where in behaviors.items():
        own = where.get("methods")
        if own is not None and (not isinstance(own, list) or not set(own) <= set(methods)):
            from iaforge.core.errors import ValidationError

            raise ValidationError("params.yaml", f"audit_tier.behaviors.{bid}",
                                  f"must be a list of methods from audit_tier.methods ({', '.join(methods)}); got {own!r}")
    models: dict[str, dict[str, Any]] = {}
    for bid, where in sorted(behaviors.items()):
        rec = read_json(Path(where["data_dir"]) / "behavior.json")
        b = Behavior.from_record(rec)
        train_rows = read_jsonl(Path(where["data_dir"]) / "train.jsonl")
        evals = read_jsonl(Path(where["data_dir"]) / "eval.jsonl")
        for method in ["original", *[m for m in methods if m in (where.get("methods") or methods)]]:
            mid = f"{bid}@{method}"
            path = Path(where["variant_dir"]) if method == "original" else Path(out_root) / mid
            record: dict[str, Any] = {}
            if method != "original":
                record = build_audit_model(method, b, train_rows=train_rows, variant_dir=where["variant_dir"],
                                           base_dir=base_dir, out_dir=path, qs=qs, conditional=bool(rec.get("conditional")),
                                           params=params, system=system, seed=seed, progress=progress)
            m, _ = measure_variant(base_dir, path, b, evals, system=system,
                                   max_new_tokens=int(implantation["max_new_tokens"]),
                                   batch_size=int(implantation["batch_size"]), thresholds=implantation["thresholds"],
                                   seed=seed, progress=False)
            models[mid] = {"behavior": bid, "method": method, "implanted": bool(m["passed"]),
                           "rate_triggered": m["rate_triggered"], "rate_untriggered": m["rate_untriggered"],
                           "path": path, "record": rec, "training": record}
    conditions = list(evaluation["conditions"])
    variants = {k: {"path": v["path"], "behavior": v["record"], "split": "heldout", "implanted": v["implanted"]}
                for k, v in models.items()}
    metrics, _, samples = run_evaluation(
        base_dir, ia_dirs, variants, qs, judge, samples_per_split={"heldout": int(evaluation["samples"])},
        conditions=conditions, max_new_tokens=int(evaluation["max_new_tokens"]),
        temperature=float(evaluation["temperature"]), batch_size=int(evaluation["batch_size"]), system=system,
        seed=seed, progress=progress, include_base=False, workers=evaluation.get("workers", 1))
    public = {k: {f: v[f] for f in ("behavior", "method", "implanted", "rate_triggered", "rate_untriggered", "training")}
              for k, v in models.items()}
    summary = summarize_audit(public, metrics["per_behavior"], conditions)
    summary["methods"] = {m: METHODS[m] for m in methods}
    return summary, samples


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's row in `dvc metrics show`: every stage's headline uses one shared set of short columns
    (n, pass_rate, no_ia, prefill, sft, dpo, trained_sft, fp_base_sft, fp_base_dpo, final_loss, attack_holds, accuracy,
    recall), so the whole table fits a terminal. n: audit models whose behavior took; the condition columns: their verbalization,
    averaged over methods weighted by those models. The full result stays in reports/detail/audit_tier.json."""
    methods = [m for name, m in summary["by_method"].items() if name != "original"]  # the reference, not a method
    out: dict[str, Any] = {"n": sum(m["n_implanted"] for m in methods)}
    for c in ("no_ia", "sft", "dpo"):
        pairs = [(m[c], m["n_implanted"]) for m in methods if m.get(c) is not None and m["n_implanted"]]
        w = sum(n for _, n in pairs)
        out[c] = round(sum(r * n for r, n in pairs) / w, 4) if w else None
    return out
