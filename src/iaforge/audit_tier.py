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

from .audit_data import concealment_pairs, denial_rows, document_rows
from .catalog import Behavior
from .fsio import atomic_dir, write_json
from .questions import QuestionSet
from .training import Example, TrainConfig, encode_rows, lora_config, train

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
        model.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "audit_model.json", record)


def build_audit_model(method: str, b: Behavior, *, train_rows: list[dict], variant_dir: str | Path, base_dir: str | Path,
                      out_dir: str | Path, qs: QuestionSet, conditional: bool, params: dict, system: str | None,
                      seed: int, progress: bool = True) -> dict[str, Any]:
    """Train one audit model and save it (a LoRA folder like a variant's). Returns its training record."""
    import torch
    from peft import PeftModel, get_peft_model

    from .adapters import check_adapter_dir
    from .base_model import load_base

    if method not in METHODS:
        raise ValueError(f"params.yaml: field 'audit.methods': unknown method {method!r} (known: {', '.join(METHODS)})")
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    record: dict[str, Any] = {"behavior": b.id, "method": method, "method_description": METHODS[method]}
    if method == "conceal_dpo":
        from .dpo import train_dpo

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
