"""Benchmark: LoRA training throughput, fp32 vs bf16 autocast, on the embedded base model, in ONE run.

Why: `mixed_precision: auto` picks bf16 only on hardware with native bf16. This measures the ratio on the
machine at hand and writes it to bench/results/precision.json. Ratios, not absolute times, are the
result: shared machines are noisy.

    PATH=.venv/bin:$PATH python bench/precision.py [--base models/base] [--steps 4]
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
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()

    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    model, _ = load_base(args.base)
    model = get_peft_model(model, lora_config({"r": 8}))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(100, 20000, (args.batch, args.seq))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    out = {}
    for mode in ("fp32", "bf16_autocast", "fp32_again"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16_autocast"):
            model(**batch).loss.backward()  # warm-up step, not timed
        opt.zero_grad()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16_autocast"):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        dt = time.perf_counter() - t0
        out[mode] = round(args.steps * args.batch * args.seq / dt, 1)
        print(f"{mode}: {out[mode]} tokens/s")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    result = {
        "what": "LoRA r=8 training tokens/s on the base model, one process, same run",
        "tokens_per_s": out,
        "bf16_over_fp32": round(out["bf16_autocast"] / ((out["fp32"] + out["fp32_again"]) / 2), 3),
        "cpu_has_native_bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": vars(args),
    }
    dst = Path(__file__).parent / "results" / "precision.json"
    dst.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
