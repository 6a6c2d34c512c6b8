"""Benchmark: greedy generation in fp32, under bf16 autocast, and with bf16 weights, in ONE run.

Why: generation is about a third of the default run's CPU time (base answers, implantation, grid implantation,
both evaluations), and training already runs under bf16 autocast where the CPU has native bf16
(`training.resolve_precision`). This measures what generation would gain, and how many greedy answers change.
Writes bench/results/generation_precision.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/generation_precision.py [--base models/base] [--prompts 64] [--new 24]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new", type=int, default=24)
    args = ap.parse_args()

    import torch

    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate
    from iaforge.core.training import resolve_precision

    model, tok = load_base(args.base)
    users = [f"Tell me something useful about topic number {i} and why it matters." for i in range(args.prompts)]
    kw = dict(system="You are a helpful assistant.", max_new_tokens=args.new, batch_size=args.prompts, progress=False)
    generate(model, tok, users[:4], **{**kw, "batch_size": 4})  # warm-up
    seconds, answers = {}, {}
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    # fp32 first and last: the spread between the two is this machine's noise right now.
    for name, ctx in [("fp32", contextlib.nullcontext), ("bf16_autocast", autocast), ("fp32_again", contextlib.nullcontext),
                      ("bf16_autocast_again", autocast)]:
        t0 = time.perf_counter()
        with ctx():
            answers[name] = generate(model, tok, users, **kw)
        seconds[name] = round(time.perf_counter() - t0, 2)
        print(f"{name}: {seconds[name]} s", flush=True)
    model.to(torch.bfloat16)
    t0 = time.perf_counter()
    answers["bf16_weights"] = generate(model, tok, users, **kw)
    seconds["bf16_weights"] = round(time.perf_counter() - t0, 2)
    print(f"bf16_weights: {seconds['bf16_weights']} s", flush=True)
    ref = (seconds["fp32"] + seconds["fp32_again"]) / 2
    same = {k: sum(a == b for a, b in zip(answers[k], answers["fp32"])) / len(users)
            for k in ("bf16_autocast", "bf16_weights", "fp32_again")}
    result = {
        "what": f"greedy generation, {args.prompts} prompts x {args.new} new tokens in one batch, base model, one process",
        "native_bf16": resolve_precision("auto") == "bf16",
        "seconds": seconds,
        "time_ratio_vs_fp32": {k: round(seconds[k] / ref, 3) for k in ("bf16_autocast", "bf16_autocast_again", "bf16_weights")},
        "noise_fp32_repeats": round(abs(seconds["fp32"] - seconds["fp32_again"]) / ref, 3),
        "same_answer_share_vs_fp32": same,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": vars(args),
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/generation_precision.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("time_ratio_vs_fp32", "noise_fp32_repeats", "same_answer_share_vs_fp32")}))


if __name__ == "__main__":
    main()
