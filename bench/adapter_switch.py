"""Benchmark: switching the active variant under the IA with many variants attached (grid_ia, ia_sft, ia_dpo).

Why: the grid IA trains one variant per step with every training variant attached as a named peft adapter.
peft's `set_adapter` walks every module and sets requires_grad on every adapter's weights, and the old switch
then walked every parameter twice more: its cost grows with the number of adapters attached, while the step does
not. `AdapterSwitch` now sets grads once and only tells each LoRA layer which adapters to apply. This measures,
in ONE run, per number of attached variants: a switch the peft way, a switch the new way, and one IA training step
(one row, as grid_ia's batches), and checks that the two ways give the same loss and IA gradients bit for bit.
Writes bench/results/adapter_switch.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/adapter_switch.py [--base models/base] [--counts 28 52 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def peft_switch(model, names, expected):
    """The switch as it was (up to commit a789950): peft's set_adapter, then grads reset and checked."""
    model.base_model.set_adapter(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in expected)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--counts", type=int, nargs="+", default=[28, 52, 100])
    ap.add_argument("--switches", type=int, default=10)
    ap.add_argument("--seq", type=int, default=40, help="tokens of the one row a grid IA step trains on")
    args = ap.parse_args()

    import torch
    from peft import get_peft_model

    from iaforge.core.adapter_stack import IA_NAME, AdapterSwitch
    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    torch.manual_seed(0)
    model, _ = load_base(args.base)
    model = get_peft_model(model, lora_config({"r": 8, "alpha": 16}), adapter_name="v0")
    ids = torch.randint(100, 20000, (1, args.seq))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    rows = []
    for n in sorted(args.counts):
        for i in range(len([a for a in model.peft_config if a != IA_NAME]), n):
            model.add_adapter(f"v{i}", lora_config({"r": 8, "alpha": 16}))
        if IA_NAME not in model.peft_config:
            model.add_adapter(IA_NAME, lora_config({"r": 16, "alpha": 32}))
        with torch.no_grad():  # non-zero variants and IA, so that which one applies shows in the loss
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.01)
        sw = AdapterSwitch(model)
        sw("v0")  # its first switch goes through peft once, to check the fast path against it
        expected = sw.expected
        groups = [f"v{(7 * k) % n}" for k in range(args.switches)]

        def timed(fn):
            t0 = time.perf_counter()
            for g in groups:
                fn(g)
            return (time.perf_counter() - t0) / len(groups)

        old = timed(lambda g: peft_switch(model, [g, IA_NAME], expected))
        sw.current = None
        new = timed(sw)

        ia_params = {k: p for k, p in model.named_parameters() if k in expected}

        def step(g, switch):
            switch(g)
            for p in ia_params.values():
                p.grad = None
            loss = model(**batch).loss
            loss.backward()
            return loss.detach(), {k: p.grad.clone() for k, p in ia_params.items() if p.grad is not None}

        # the same three steps both ways: bit-identical loss and IA gradients
        ref = [step(g, lambda x: peft_switch(model, [x, IA_NAME], expected)) for g in groups[:3]]
        sw.current = None
        got = [step(g, sw) for g in groups[:3]]
        same = all(torch.equal(a[0], b[0]) and a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
                   for a, b in zip(ref, got))
        # step times, the two ways interleaved so that load on the machine hits both alike
        t_old = t_new = 0.0
        for g in groups:
            t0 = time.perf_counter()
            step(g, lambda x: peft_switch(model, [x, IA_NAME], expected))
            t_old += time.perf_counter() - t0
            sw.current = None
            t0 = time.perf_counter()
            step(g, sw)
            t_new += time.perf_counter() - t0
        t_old, t_new = t_old / len(groups), t_new / len(groups)
        row = {"variants_attached": n, "switch_s_peft": round(old, 4), "switch_s_new": round(new, 5),
               "switch_speedup": round(old / new, 1) if new > 0 else None,
               "step_s_with_peft_switch": round(t_old, 3), "step_s_with_new_switch": round(t_new, 3),
               "step_speedup": round(t_old / t_new, 2), "same_loss_and_ia_grads": same}
        print(row, flush=True)
        rows.append(row)
    result = {"what": "switching the active variant under the IA (AdapterSwitch) vs peft's set_adapter plus the old "
                      "grad reset, and one IA training step (1 row) with each, per number of variant adapters attached",
              "rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.machine(), "settings": vars(args)}
    out = Path(__file__).resolve().parent / "results" / "adapter_switch.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
