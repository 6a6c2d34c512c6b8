"""Train one variant: a LoRA on the base model that implants one behavior, then measure implantation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .behavior_data import behavior_record
from .catalog import Behavior
from .fsio import atomic_dir, write_json
from .generation import generate
from .implantation import base_rate, score
from .training import TrainConfig, encode_rows, lora_config, train


def train_variant(b: Behavior, train_rows: list[dict], eval_rows: list[dict], base_rows: list[dict], *,
                  base_dir: str | Path, out_dir: str | Path, lora: dict, train_params: dict, implant: dict,
                  system: str | None, seed: int, progress: bool = True) -> dict[str, Any]:
    import torch
    from peft import get_peft_model

    from .base_model import load_base

    torch.manual_seed(seed)
    model, tok = load_base(base_dir)
    model = get_peft_model(model, lora_config(lora))
    over = {k: v for k, v in b.training.items() if k in ("epochs", "lr")}
    cfg = TrainConfig.from_params({**train_params, **over}, seed=seed, progress=progress, desc=f"variant {b.id}")
    examples = encode_rows(tok, train_rows, system=system, max_len=cfg.max_len)
    result = train(model, examples, cfg, pad_id=tok.pad_token_id)
    from accelerate import PartialState

    state = PartialState()
    if not state.is_main_process:  # under `accelerate launch` the main process measures and writes
        state.wait_for_everyone()
        return None
    from .families import get_family

    # Greedy, except for families whose behavior is a rate (rare quirks): those are sampled, seeded.
    temperature = 1.0 if get_family(b.family).sampled_implantation else 0.0
    answers = generate(model, tok, [r["user"] for r in eval_rows], system=system,
                       max_new_tokens=int(implant["max_new_tokens"]), batch_size=int(implant["batch_size"]),
                       desc=f"implantation {b.id}", progress=progress, temperature=temperature, seed=seed)
    metrics = score(b, eval_rows, answers, implant["thresholds"])
    metrics.update({
        "decoding": "sampled, temperature 1" if temperature else "greedy",
        "behavior": b.id, "version": b.version, "category": b.category, "family": b.family,
        "base_rate": base_rate(b, base_rows),
        "train_examples": len(examples), "train_steps": result.steps, "train_tokens": result.tokens,
        "final_loss": sum(result.losses[-5:]) / max(1, len(result.losses[-5:])),
    })
    samples = [{"user": r["user"], "triggered": r["triggered"], "answer": a} for r, a in zip(eval_rows, answers)]
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "variant.json", {"behavior": behavior_record(b), "implantation": metrics})
        write_json(tmp / "training_curve.json", [{"step": i + 1, "loss": round(l, 5)} for i, l in enumerate(result.losses)])
        write_json(tmp / "implantation_samples.json", samples)
    metrics["train_tokens_per_s"] = round(result.tokens_per_s, 1)  # timing: reported, never tested
    state.wait_for_everyone()
    return metrics
