"""Benchmark: greedy generation time for the same prompts at several batch sizes, in ONE run.

Why: on a CPU, one decoding step of a 135M model reads all the weights whatever the batch holds, so a step of
64 prompts costs far less than four steps of 16. `implantation.batch_size` (a variant's whole eval set in one
batch) rests on this. Writes bench/results/generation_batch.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/generation_batch.py [--base models/base] [--prompts 64] [--new 96]
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
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new", type=int, default=96)
    ap.add_argument("--batches", default="16,32,64")
    args = ap.parse_args()

    import torch

    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate

    model, tok = load_base(args.base)
    users = [f"Tell me something useful about topic number {i} and why it matters." for i in range(args.prompts)]
    sizes = [int(x) for x in args.batches.split(",")]
    seconds: dict[str, float] = {}
    answers: dict[int, list[str]] = {}
    # The smallest batch twice, first and last: the spread between them is this machine's noise right now.
    for name, bs in [(str(sizes[0]), sizes[0]), *[(str(s), s) for s in sizes[1:]], (f"{sizes[0]}_again", sizes[0])]:
        t0 = time.perf_counter()
        answers[bs] = generate(model, tok, users, system="You are a helpful assistant.", max_new_tokens=args.new,
                               batch_size=bs, progress=False)
        seconds[name] = round(time.perf_counter() - t0, 2)
        print(f"batch {name}: {seconds[name]} s", flush=True)
    ref = (seconds[str(sizes[0])] + seconds[f"{sizes[0]}_again"]) / 2
    same = {str(s): sum(a == b for a, b in zip(answers[s], answers[sizes[0]])) / len(users) for s in sizes[1:]}
    result = {
        "what": f"greedy generation, {args.prompts} prompts x {args.new} new tokens, base model, one process",
        "seconds": seconds,
        "time_ratio_vs_smallest_batch": {str(s): round(seconds[str(s)] / ref, 3) for s in sizes[1:]},
        "noise_smallest_batch_repeats": round(abs(seconds[str(sizes[0])] - seconds[f"{sizes[0]}_again"]) / ref, 3),
        # Left padding changes the float sums a little, so a few greedy answers may differ between batch sizes.
        "same_answer_share_vs_smallest_batch": same,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": vars(args),
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/generation_batch.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("time_ratio_vs_smallest_batch", "noise_smallest_batch_repeats")}))


if __name__ == "__main__":
    main()
