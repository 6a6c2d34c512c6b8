"""Benchmark: LoRA training tokens/s with the loss through the model's full forward (logits for every
position) vs `training.causal_lm_loss` (logits for labelled positions only), in ONE run.

Why: chat rows label only the assistant turn, and SmolLM2's 49k-way output head is about a fifth of its
compute; `training.train` uses the label-only loss where `label_only_loss_model` allows it. Writes
bench/results/label_only_loss.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/label_only_loss.py [--base models/base] [--steps 3] [--labelled 0.5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=96)
    ap.add_argument("--labelled", type=float, default=0.5, help="share of positions with a label (the answer)")
    args = ap.parse_args()

    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import IGNORE, causal_lm_loss, label_only_loss_model, lora_config

    torch.manual_seed(0)
    ids = torch.randint(100, 20000, (args.batch, args.seq))
    labels = ids.clone()
    labels[:, : int(args.seq * (1 - args.labelled))] = IGNORE
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    out, losses = {}, {}
    # "full" twice, first and last: the spread between them is the noise floor of this machine right now.
    for name in ["full", "label_only", "full_again", "label_only_again"]:
        model, _ = load_base(args.base)
        model = get_peft_model(model, lora_config({"r": 8}, n_layers=model.config.num_hidden_layers))
        base = label_only_loss_model(model)
        step = (lambda: causal_lm_loss(base, batch)) if name.startswith("label_only") else (lambda: model(**batch).loss)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        losses[name] = round(float(step()), 5)  # warm-up step (lora_B is zero: the base model's loss), not timed
        opt.zero_grad()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step().backward()
            opt.step()
            opt.zero_grad()
        out[name] = round(args.steps * args.batch * args.seq / (time.perf_counter() - t0), 1)
        print(f"{name}: {out[name]} tokens/s (first loss {losses[name]})", flush=True)
    full = (out["full"] + out["full_again"]) / 2
    result = {
        "what": "LoRA r=8 (all layers) fp32 training tokens/s: full-logits loss vs label-only loss, one process",
        "tokens_per_s": out, "first_step_loss": losses,
        "speedup_label_only": round((out["label_only"] + out["label_only_again"]) / 2 / full, 3),
        "noise_full_runs": round(abs(out["full"] - out["full_again"]) / full, 3),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": vars(args),
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/label_only_loss.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup_label_only", "noise_full_runs")}))


if __name__ == "__main__":
    main()
