"""Train one variant: a LoRA on the base model that implants one behavior. Implantation is measured by its
own stage on the saved adapter (`implantation.py`), so changing how it is measured never retrains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.data.behavior_data import behavior_record
from iaforge.data.catalog import Behavior
from iaforge.core.fsio import atomic_dir, write_json
from iaforge.core.training import TrainConfig, encode_rows, lora_config, train


def train_variant(b: Behavior, train_rows: list[dict], *, base_dir: str | Path, out_dir: str | Path, lora: dict,
                  train_params: dict, system: str | None, seed: int, progress: bool = True) -> dict[str, Any] | None:
    """Train and save atomically; returns the training record (None in a non-main `accelerate` process)."""
    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base

    torch.manual_seed(seed)
    model, tok = load_base(base_dir)
    model = get_peft_model(model, lora_config(lora, n_layers=model.config.num_hidden_layers))
    over = {k: v for k, v in b.training.items() if k in ("epochs", "lr")}
    cfg = TrainConfig.from_params({**train_params, **over}, seed=seed, progress=progress, desc=f"variant {b.id}")
    examples = encode_rows(tok, train_rows, system=system, max_len=cfg.max_len)
    result = train(model, examples, cfg, pad_id=tok.pad_token_id)
    from accelerate import PartialState

    state = PartialState()
    if not state.is_main_process:  # under `accelerate launch` the main process writes
        state.wait_for_everyone()
        return None
    record = {"train_examples": len(examples), "train_steps": result.steps, "train_tokens": result.tokens,
              "epochs": cfg.epochs, "lr": cfg.lr,
              "final_loss": round(sum(result.losses[-5:]) / max(1, len(result.losses[-5:])), 5)}
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "variant.json", {"behavior": behavior_record(b), "training": record})
        write_json(tmp / "training_curve.json", [{"step": i + 1, "loss": round(l, 5)} for i, l in enumerate(result.losses)])
    state.wait_for_everyone()
    return {**record, "train_tokens_per_s": round(result.tokens_per_s, 1)}  # timing: printed, never stored
