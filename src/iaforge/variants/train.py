"""Train one variant: a LoRA on the base model that implants one behavior. Implantation is measured by its
own stage on the saved adapter (`implantation.py`), so changing how it is measured never retrains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.core.adapter_stack import save_adapter
from iaforge.core.fsio import atomic_dir, write_json
from iaforge.core.training import TrainConfig, encode_rows, lora_config, train


def train_variant(record: dict[str, Any], train_rows: list[dict], *, base_dir: str | Path, out_dir: str | Path, lora: dict,
                  train_params: dict, system: str | None, seed: int, progress: bool = True) -> dict[str, Any] | None:
    """Train and save atomically; returns the training record (None in a non-main `accelerate` process).

    `record` is the behavior record that `behavior_data` wrote (behavior.json), copied into the adapter as is:
    training needs no family code, so editing a family's checker or transform retrains nothing by itself
    (a change to the data it builds does, through the dataset)."""
    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base

    torch.manual_seed(seed)
    model, tok = load_base(base_dir)
    model = get_peft_model(model, lora_config(lora, n_layers=model.config.num_hidden_layers))
    over = {k: v for k, v in (record.get("training") or {}).items() if k in ("epochs", "lr")}
    cfg = TrainConfig.from_params({**train_params, **over}, seed=seed, progress=progress, desc=f"variant {record['id']}")
    examples = encode_rows(tok, train_rows, system=system, max_len=cfg.max_len)
    result = train(model, examples, cfg, pad_id=tok.pad_token_id)
    from accelerate import PartialState

    state = PartialState()
    if not state.is_main_process:  # under `accelerate launch` the main process writes
        state.wait_for_everyone()
        return None
    summary = {"train_examples": len(examples), "train_steps": result.steps, "train_tokens": result.tokens,
              "epochs": cfg.epochs, "lr": cfg.lr,
              "final_loss": round(sum(result.losses[-5:]) / max(1, len(result.losses[-5:])), 5)}
    with atomic_dir(Path(out_dir)) as tmp:
        save_adapter(model, tmp)
        write_json(tmp / "variant.json", {"behavior": record, "training": summary})
        write_json(tmp / "training_curve.json", [{"step": i + 1, "loss": round(l, 5)} for i, l in enumerate(result.losses)])
    state.wait_for_everyone()
    return {**summary, "train_tokens_per_s": round(result.tokens_per_s, 1)}  # timing: printed, never stored
