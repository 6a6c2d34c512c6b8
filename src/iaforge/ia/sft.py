"""Train the introspection adapter jointly across frozen variant adapters on one base model.

All variants are loaded once as named adapters; each batch activates its variant plus the IA. peft marks
every active adapter trainable on each switch, so after every switch we reset requires_grad to the IA's
tensors alone and check that the trainable set never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.core.fsio import atomic_dir, write_json
from iaforge.core.adapter_stack import IA_NAME, AdapterSwitch, is_ia_param, load_with_variants, save_adapter
from iaforge.core.training import TrainConfig, encode_rows, lora_config, train

def train_ia(base_dir: str | Path, variant_dirs: dict[str, Path], rows: list[dict[str, Any]], *, lora: dict,
             train_params: dict, system: str | None, seed: int, out_dir: str | Path,
             progress: bool = True, accelerator=None) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    if not variant_dirs:
        raise RuntimeError("no training variants passed implantation; nothing to train the IA on")
    model, tok = load_with_variants(base_dir, variant_dirs)
    model.add_adapter(IA_NAME, lora_config(lora))
    switch = AdapterSwitch(model)
    if not switch.expected:
        raise RuntimeError("the IA adapter has no parameters")
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not is_ia_param(n)}
    cfg = TrainConfig.from_params(train_params, seed=seed, progress=progress, desc="IA (SFT)")
    examples = encode_rows(tok, rows, system=system, max_len=cfg.max_len, group_key="group")
    switch(examples[0].group)
    result = train(model, examples, cfg, pad_id=tok.pad_token_id, before_batch=switch, accelerator=accelerator)
    changed = [n for n, p in model.named_parameters() if not is_ia_param(n) and not torch.equal(p, frozen_before[n])]
    if changed:
        raise RuntimeError(f"IA training modified frozen weights, e.g. {changed[0]}")
    from accelerate import PartialState

    state = PartialState()
    out_dir = Path(out_dir)
    summary = {"variants": sorted(variant_dirs), "n_examples": len(examples), "steps": result.steps,
               "num_processes": state.num_processes,
               "tokens": result.tokens, "final_loss": sum(result.losses[-5:]) / max(1, len(result.losses[-5:]))}
    if state.is_main_process:  # under `accelerate launch` one process writes, the others wait
        with atomic_dir(out_dir) as tmp:
            save_adapter(model, tmp, IA_NAME)
            write_json(tmp / "ia.json", summary)
            write_json(tmp / "training_curve.json", [{"step": i + 1, "loss": round(l, 5)} for i, l in enumerate(result.losses)])
    state.wait_for_everyone()
    summary["tokens_per_s"] = round(result.tokens_per_s, 1)
    summary["is_main_process"] = state.is_main_process
    return summary


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's row in `dvc metrics show`: every stage's headline uses one shared set of short columns
    (n, pass_rate, no_ia, prefill, sft, dpo, trained_sft, fp_base_sft, fp_base_dpo, final_loss, attack_holds, accuracy,
    recall), so the whole table fits a terminal. n: training variants. The full result stays in reports/detail/ia_sft.json."""
    return {"n": len(summary.get("variants", [])), "final_loss": round(float(summary["final_loss"]), 4)}
