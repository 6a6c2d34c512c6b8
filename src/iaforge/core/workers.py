"""Generation spread over worker processes, one CPU thread each.

Decoding at the small batches the evaluation uses is bound by per-step overhead (Python, many small kernels),
which a second thread barely shortens; a second process runs a second stream of steps
(`bench/generation_processes.py`). Training is not split this way: it is compute-bound, and two 1-thread
processes made only 1.13x the tokens/s of one 2-thread process.

Each worker is a fresh `spawn` process that loads its own model: nothing is shared, so a worker can neither
see nor corrupt another's adapters. Results come back in the order of the input, so the caller's output does
not depend on how the work was split (each generate call is seeded on its own).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence


def resolve_workers(requested: int | str | None) -> int:
    """`auto` (or None): on a CPU, one worker per core, at most 2 (more processes than cores only contend);
    on a GPU, 1;
    an int is taken as given (1 = in this process)."""
    if requested in (None, "auto"):
        import torch

        if torch.cuda.is_available():  # one process owns the GPU; a second would only queue behind it
            return 1
        return max(1, min(2, os.cpu_count() or 1))
    n = int(requested)
    if n < 1:
        raise ValueError(f"workers must be >= 1 or 'auto', got {requested!r}")
    return n


def split_balanced(costs: Sequence[float], n: int) -> list[list[int]]:
    """Indices of `costs` in n groups of near-equal total cost (largest first into the lightest group);
    each group keeps the input order. Deterministic."""
    groups: list[list[int]] = [[] for _ in range(max(1, n))]
    totals = [0.0] * len(groups)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        g = min(range(len(groups)), key=lambda g: (totals[g], g))
        groups[g].append(i)
        totals[g] += costs[i]
    return [sorted(g) for g in groups if g]


def _run(fn: Callable, threads: int, kwargs: dict[str, Any]):
    import torch

    torch.set_num_threads(threads)
    return fn(**kwargs)


def run_in_workers(fn: Callable, calls: list[dict[str, Any]], workers: int) -> list[Any]:
    """fn(**kwargs) for each kwargs in `calls`, in `workers` processes at once (a module-level fn: it is
    pickled by name), results in the order of `calls`. One call, or workers == 1: in this process, with the
    threads it already has. A worker's exception is re-raised here."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(**kw) for kw in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run, fn, threads, kw) for kw in calls]
        return [f.result() for f in futures]
