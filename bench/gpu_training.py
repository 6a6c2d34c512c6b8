"""Benchmark: the variant training loop (iaforge.core.training.train) and batched generation on whatever device
is there, for a GPU user sizing the `full` catalog. SmolLM2-135M's architecture with random weights: speed
does not depend on the weight values, and the real weights need not travel to the GPU machine.

Measures, in ONE run: training tokens/s for fp32 vs bf16 autocast, LoRA on all layers vs the top half,
batch 8 (the default) vs 32; generation tokens/s at batch 16 vs 64. Ratios are the result.

    python bench/gpu_training.py --out bench/results/gpu_training.json [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

# SmolLM2-135M-Instruct (models/base/config.json), the fields that set the compute.
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)


def examples(n: int, rng: random.Random):
    from iaforge.core.training import IGNORE, Example

    out = []
    for _ in range(n):
        p, c = rng.randint(25, 45), rng.randint(20, 50)  # prompt and answer lengths like the variant data
        ids = [rng.randrange(100, 40000) for _ in range(p + c)]
        out.append(Example(ids, [IGNORE] * p + ids[p:]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="bench/results/gpu_training.json")
    args = ap.parse_args()

    import torch
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from iaforge.core.training import TrainConfig, lora_config, resolve_precision, train

    dev = "cuda" if torch.cuda.is_available() else "cpu"

    def fresh(top):
        torch.manual_seed(0)
        m = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to(dev)
        return get_peft_model(m, lora_config({"r": 8, "alpha": 16, "top_layers": top}, n_layers=30))

    res = {"train_tokens_per_s": {}, "generate_tokens_per_s": {}}
    rng = random.Random(0)
    warm = True
    for prec in ["no", "bf16"]:
        if prec == "bf16" and resolve_precision("auto") != "bf16":
            continue  # emulated bf16 is >5x slower on CPUs without it (bench/results/precision.json)
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)  # mixed precision is fixed per state
        for top in [None, 15]:
            for bs in [8, 32]:
                model = fresh(top)
                ex = examples(args.steps * bs, rng)
                cfg = TrainConfig(lr=1e-3, epochs=1, batch_size=bs, mixed_precision=prec, progress=False)
                if warm:  # CUDA context, kernels, allocator: not timed
                    train(model, ex[: 2 * bs], cfg, pad_id=2)
                    warm = False
                if dev == "cuda":
                    torch.cuda.synchronize()
                r = train(model, ex, cfg, pad_id=2)
                key = f"{prec}_{'all' if top is None else f'top{top}'}_bs{bs}"
                res["train_tokens_per_s"][key] = round(r.tokens_per_s, 1)
                print(f"train {key}: {r.tokens_per_s:.0f} tokens/s", flush=True)
                del model
    model = fresh(None).merge_and_unload().eval()
    for bs in [16, 64]:
        ids = torch.randint(100, 40000, (bs, 40), device=dev)
        kw = dict(max_new_tokens=96, min_new_tokens=96, do_sample=False, pad_token_id=2)
        with torch.inference_mode():
            model.generate(ids[:, :8], attention_mask=torch.ones_like(ids[:, :8]), max_new_tokens=4, pad_token_id=2)  # warm-up
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
            if dev == "cuda":
                torch.cuda.synchronize()
        res["generate_tokens_per_s"][f"bs{bs}"] = round(bs * 96 / (time.perf_counter() - t0), 1)
        print(f"generate bs{bs}: {res['generate_tokens_per_s'][f'bs{bs}']} tokens/s", flush=True)
    t = res["train_tokens_per_s"]
    res["ratios"] = {k: round(v / t["no_all_bs8"], 2) for k, v in t.items()}
    res.update({"what": "iaforge.core.training.train on SmolLM2-135M architecture (random weights), LoRA r=8",
                "device": torch.cuda.get_device_name(0) if dev == "cuda" else platform.processor() or "cpu",
                "torch": torch.__version__, "steps": args.steps})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(json.dumps(res["ratios"]))


if __name__ == "__main__":
    main()
