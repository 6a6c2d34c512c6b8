"""Benchmark: sampled generation like `evaluate` (small batches, 40 new tokens) in one process on 2 threads vs
two processes on 1 thread each, the same prompts split between them, in ONE run.

Why: a decoding step at batch ~8 is bound by per-op overhead (Python, small kernels), which a second thread
barely shortens; a second process runs a second stream of steps. If two 1-thread workers finish the same work
in much less wall time, the generation-heavy stages (evaluate, the audit tier's and the cipher attack's
evaluations, implantation) should split their models across two worker processes. Writes
bench/results/generation_processes.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/generation_processes.py [--base models/base] [--prompts 48] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

SYSTEM = "You are a helpful assistant."


def prompts(n: int) -> list[str]:
    return [f"Describe any unusual behavior you have, question {i}." for i in range(n)]


def _work(base: str, users: list[str], threads: int, batch: int, new: int, lora: bool, ready, go, out):
    import torch

    torch.set_num_threads(threads)
    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate

    model, tok = load_base(base)
    if lora:  # evaluate runs a variant and an IA as unmerged adapters: their small extra ops are the overhead
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
        model.eval()
    ready.set()
    go.wait()
    t0 = time.perf_counter()
    generate(model, tok, users, system=SYSTEM, max_new_tokens=new, batch_size=batch, temperature=1.0, seed=0,
             progress=False)
    out.put(time.perf_counter() - t0)


def run(base, users_per_worker, threads, batch, new, lora):
    ctx = mp.get_context("spawn")
    go, out, procs, readies = ctx.Event(), ctx.Queue(), [], []
    for users in users_per_worker:
        ready = ctx.Event()
        p = ctx.Process(target=_work, args=(base, users, threads, batch, new, lora, ready, go, out))
        p.start()
        procs.append(p)
        readies.append(ready)
    for r in readies:
        r.wait()
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new", type=int, default=40)
    ap.add_argument("--lora", action="store_true", help="an unmerged r16 LoRA on every linear layer, like evaluate")
    ap.add_argument("--out", default="bench/results/generation_processes.json")
    args = ap.parse_args()
    users = prompts(args.prompts)
    half = len(users) // 2
    seconds = {}
    # The one-process case twice, first and last: their spread is this machine's noise right now.
    seconds["one_process_2_threads"] = run(args.base, [users], 2, args.batch, args.new, args.lora)
    seconds["two_processes_1_thread"] = run(args.base, [users[:half], users[half:]], 1, args.batch, args.new, args.lora)
    seconds["one_process_1_thread"] = run(args.base, [users], 1, args.batch, args.new, args.lora)
    seconds["one_process_2_threads_again"] = run(args.base, [users], 2, args.batch, args.new, args.lora)
    ref = (seconds["one_process_2_threads"] + seconds["one_process_2_threads_again"]) / 2
    import torch

    res = {
        "what": f"sampled generation, {args.prompts} prompts x {args.new} new tokens at batch {args.batch}"
                + (", unmerged r16 LoRA on every linear layer" if args.lora else ", base model"),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "time_ratio_vs_one_process_2_threads": {k: round(v / ref, 3) for k, v in seconds.items()},
        "noise_one_process_repeats": round(abs(seconds["one_process_2_threads"] - seconds["one_process_2_threads_again"]) / ref, 3),
        "settings": vars(args), "torch": torch.__version__, "machine": platform.machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
