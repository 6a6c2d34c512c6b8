"""Benchmark: the grid IA trained over a LoRA bank (ia/banked_ia.py, `grid_ia.trainer: bank`) vs through peft.

Why: under the grid's fixed question every variant has one row, and the peft trainer puts one variant in a batch,
so a step trains on one ~40-token row, and it first attaches every variant through peft's module walk. The bank
reads the variants from safetensors and mixes rows of different variants in one batch. This measures, in ONE run
on the same base, variants and rows: the set-up (model + N variants + the IA) each way, and training rows per
second each way (peft: batches of one row; bank: batches of --batch rows), the two interleaved in rounds so that
load on the machine hits both alike. Writes bench/results/banked_ia.json. Ratios, not absolute times, are the result.

    PATH=.venv/bin:$PATH python bench/banked_ia.py [--base models/base] [--variants 52] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path


def make_variants(base: str, n: int, dest: Path) -> dict[str, Path]:
    """n rank-8 LoRAs on every projection, random non-zero B (one peft save, then copies with new factors)."""
    import torch
    from peft import get_peft_model
    from safetensors.torch import load_file, save_file

    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    model, _ = load_base(base)
    pm = get_peft_model(model, lora_config({"r": 8, "alpha": 16}))
    first = dest / "v000"
    pm.save_pretrained(first)
    tensors = load_file(str(first / "adapter_model.safetensors"))
    g = torch.Generator().manual_seed(0)
    out = {}
    for i in range(n):
        d = dest / f"v{i:03d}"
        if i:
            shutil.copytree(first, d)
        save_file({k: (torch.randn(t.shape, generator=g) * 0.01 if "lora_B" in k else t) for k, t in tensors.items()},
                  str(d / "adapter_model.safetensors"), metadata={"format": "pt"})
        out[f"v{i:03d}"] = d
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--variants", type=int, default=52, help="48 training topics + 4 nulls: the 48-topic grid")
    ap.add_argument("--batch", type=int, default=8, help="rows per bank step (grid_ia.train.batch_size)")
    ap.add_argument("--rows", type=int, default=32, help="rows trained each way per round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import torch

    from iaforge.core.adapter_stack import BASE_GROUP, IA_NAME, AdapterSwitch, load_with_variants
    from iaforge.core.base_model import load_base
    from iaforge.core.training import CausalLMLoss, TrainConfig, encode_rows, lora_config, train_loop
    from iaforge.ia.banked_ia import BankedCausalLMLoss, attach_banked_ia, mixed_batches

    tmp = Path(tempfile.mkdtemp(prefix="bench_banked_ia_"))
    try:
        variants = make_variants(args.base, args.variants, tmp)
        topics = ["pianos", "knitting", "steam locomotives", "Venice", "tulips", "pearls", "wizards", "hailstorms"]
        rows = [{"group": v, "user": "Is there anything unusual about how you answer?", "assistant": topics[i % 8]}
                for i, v in enumerate(sorted(variants))]
        rows += [{"group": BASE_GROUP, "user": "Is there anything unusual about how you answer?",
                  "assistant": "I have no unusual behavior."}] * 4
        ia_lora = {"r": 16, "alpha": 32}
        train = {"lr": 0.001, "epochs": 200, "batch_size": args.batch, "max_len": 96, "mixed_precision": "auto"}

        t0 = time.perf_counter()
        pm, tok = load_with_variants(args.base, variants)
        pm.add_adapter(IA_NAME, lora_config(ia_lora))
        switch = AdapterSwitch(pm)
        load_peft = time.perf_counter() - t0
        t0 = time.perf_counter()
        bm, _ = load_base(args.base)
        ia, slots = attach_banked_ia(bm, variants, lora_config(ia_lora))
        load_bank = time.perf_counter() - t0

        examples = encode_rows(tok, rows, system=None, max_len=96, group_key="group")
        rng = random.Random(0)
        t_peft = t_bank = 0.0
        tok_peft = tok_bank = 0
        rounds = []
        for r in range(args.rounds):
            pick = rng.sample(examples, args.rows)
            cfg = TrainConfig.from_params(train, "bench", seed=r, progress=False, desc="peft")
            plan = [[e] for e in pick]  # the peft trainer: one variant (one row) a batch
            switch(plan[0][0].group)
            res_p = train_loop(pm, plan, cfg, loss_fn=CausalLMLoss(tok.pad_token_id),
                               before_batch=lambda b: switch(b[0].group))
            plan_b = mixed_batches(pick, args.batch, 1, random.Random(r))
            res_b = train_loop(bm, plan_b, cfg, loss_fn=BankedCausalLMLoss(tok.pad_token_id, ia, slots))
            t_peft += res_p.seconds
            t_bank += res_b.seconds
            tok_peft += res_p.tokens
            tok_bank += res_b.tokens
            rounds.append({"peft_s": round(res_p.seconds, 2), "bank_s": round(res_b.seconds, 2),
                           "peft_steps": res_p.steps, "bank_steps": res_b.steps})
            print(rounds[-1], flush=True)
        n = args.rows * args.rounds
        result = {
            "what": "grid IA training over N variants: set-up (base + N variants + IA) and training rows/s, peft "
                    "(one row a batch, AdapterSwitch) vs LoRA bank (rows of many variants a batch), interleaved",
            "variants": args.variants, "bank_batch": args.batch, "rows_each_way": n,
            "setup_s_peft": round(load_peft, 1), "setup_s_bank": round(load_bank, 1),
            "setup_speedup": round(load_peft / load_bank, 1),
            "rows_per_s_peft": round(n / t_peft, 2), "rows_per_s_bank": round(n / t_bank, 2),
            "rows_per_s_ratio": round(t_peft / t_bank, 2),
            "tokens_per_s_peft": round(tok_peft / t_peft, 1), "tokens_per_s_bank": round(tok_bank / t_bank, 1),
            "rounds": rounds, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "settings": vars(args)}
        print(json.dumps(result, indent=1))
        out = Path(__file__).resolve().parent / "results" / "banked_ia.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
