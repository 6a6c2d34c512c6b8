"""Benchmark: LoRA training tokens/s with the adapter on every layer vs on the top k layers only, in ONE run.

Why: backward stops at the lowest layer that holds a trainable parameter, so a LoRA on the upper half of
the model skips half of the backward pass. `variant.lora.top_layers` uses this; the ratio measured here is
what justifies it. Writes bench/results/lora_layers.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/lora_layers.py [--base models/base] [--steps 3]
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
    args = ap.parse_args()

    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    torch.manual_seed(0)
    ids = torch.randint(100, 20000, (args.batch, args.seq))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    out = {}
    # "all" twice, first and last: the spread between them is the noise floor of this machine right now.
    for name, top in [("all", None), ("top_half", "half"), ("top_third", "third"), ("all_again", None)]:
        model, _ = load_base(args.base)
        n = model.config.num_hidden_layers
        k = {"half": n // 2, "third": n // 3}.get(top)
        model = get_peft_model(model, lora_config({"r": 8, "top_layers": k}, n_layers=n))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model(**batch).loss.backward()  # warm-up step, not timed
        opt.zero_grad()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()
        out[name] = round(args.steps * args.batch * args.seq / (time.perf_counter() - t0), 1)
        print(f"{name} (top_layers={k}): {out[name]} tokens/s", flush=True)
    ref = (out["all"] + out["all_again"]) / 2
    result = {
        "what": "LoRA r=8 fp32 training tokens/s, adapter on all layers vs the top k, one process, same run",
        "tokens_per_s": out,
        "speedup_over_all": {k: round(v / ref, 3) for k, v in out.items() if not k.startswith("all")},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": vars(args),
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/lora_layers.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result["speedup_over_all"]))


if __name__ == "__main__":
    main()
