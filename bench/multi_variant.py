"""Benchmark: K variant LoRAs trained jointly in one process (`variants/multi_lora.py`, per-row LoRA factors)
vs one peft adapter trained alone vs TRL's SFTTrainer on the same LoRA job, in ONE run.

Why: the IA needs hundreds of variants; on a 2-core CPU each variant trained as its own job pays a model
load, a peft wrap and a save. Measured, as ratios (absolute times move with the machine's load):
(a) joint tokens/s (`train_variants`: K variants, batch/K rows of each per step) / one peft adapter's
    tokens/s (`core.training.train`, as variants/train.py runs it): same rows, batch size and step count;
(b) joint tokens/s / TRL SFTTrainer tokens/s (peft LoraConfig, use_cpu, fp32, no gradient checkpointing,
    same batch size and max length, completion-only loss), steady state (first step excluded);
(c) per-variant fixed cost (model load, wrap, export) / per-variant training time, jointly and one at a time.
Writes bench/results/multi_variant.json. fp32 throughout (TRL is asked for bf16=False).

    PATH=.venv/bin:$PATH OMP_NUM_THREADS=2 python bench/multi_variant.py [--base models/base] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

# The default variant job (params.yaml `variant`: n_train 48 rows x 3 epochs, answers capped at ~34 tokens,
# rows of ~80 tokens with the prompt): what a variant's training time is at the measured tokens/s.
DEFAULT_VARIANT_TOKENS = 48 * 3 * 80


def smollm2_random(path: Path):
    """SmolLM2-135M's architecture with random weights, saved as safetensors (so a load is a real load)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(path)


def load(path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base", help="a model directory; absent: random SmolLM2-135M architecture")
    ap.add_argument("--quick", action="store_true", help="the defaults below (kept for the record)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per peft/joint run (all timed)")
    ap.add_argument("--trl-steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=96)
    ap.add_argument("--labelled", type=float, default=0.5, help="share of positions with a label (the answer)")
    ap.add_argument("--variant-tokens", type=int, default=DEFAULT_VARIANT_TOKENS)
    args = ap.parse_args()

    import torch
    from peft import get_peft_model

    from iaforge.core.training import IGNORE, Example, TrainConfig, lora_config, train
    from iaforge.variants.multi_lora import export_variant, train_variants, wrap_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-multi-"))
    base = Path(args.base)
    real = (base / "config.json").is_file()
    if not real:
        base = tmp / "base"
        smollm2_random(base)
    lcfg = {"r": 8, "alpha": 16}
    torch.manual_seed(0)
    if args.batch % args.k:
        raise SystemExit("--batch must be a multiple of --k (each step holds batch/k rows of every variant)")
    n_rows = args.batch * args.steps
    ids = torch.randint(100, 20000, (n_rows, args.seq))
    labels = ids.clone()
    labels[:, : int(args.seq * (1 - args.labelled))] = IGNORE
    fixed: dict[str, list[float]] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        fixed.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    def examples(rows):
        return [Example(ids[i].tolist(), labels[i].tolist()) for i in rows]

    cfg = TrainConfig(lr=1e-4, epochs=1, batch_size=args.batch, mixed_precision="no", progress=False, seed=0)

    def run_peft():
        """One adapter alone, as `variants/train.py` trains it (`core.training.train`)."""
        model = timed("load", lambda: load(base))
        model = timed("peft_wrap", lambda: get_peft_model(model, lora_config(lcfg, n_layers=model.config.num_hidden_layers)))
        res = train(model, examples(range(n_rows)), cfg, pad_id=0)
        timed("peft_save", lambda: model.save_pretrained(tmp / "peft_out"))
        return res.tokens / res.seconds

    def run_joint():
        """K variants at once (`train_variants`), each with n_rows/K rows: the same rows and steps in all."""
        model = timed("load", lambda: load(base))
        timed("multi_wrap", lambda: wrap_model(model, args.k, r=lcfg["r"], alpha=lcfg["alpha"]))
        per = [examples(range(v, n_rows, args.k)) for v in range(args.k)]
        res = train_variants(model, per, dataclasses.replace(cfg, batch_size=args.batch // args.k), pad_id=0)
        assert res.steps == n_rows // args.batch
        for k in range(args.k):
            timed("multi_export", lambda: export_variant(model, k, tmp / f"v{k}", lcfg, str(base)))
        return res.tokens / res.seconds

    out = {}
    # Each of the two first and last: their spread is the noise floor of this machine right now.
    for name, fn in [("peft_single", run_peft), ("joint", run_joint), ("joint_again", run_joint),
                     ("peft_single_again", run_peft)]:
        out[name] = round(fn(), 1)
        print(f"{name}: {out[name]} tokens/s", flush=True)
    out["trl_sft"] = round(run_trl(base, ids, labels, args, tmp), 1)
    print(f"trl_sft: {out['trl_sft']} tokens/s", flush=True)

    peft_tps = (out["peft_single"] + out["peft_single_again"]) / 2
    joint_tps = (out["joint"] + out["joint_again"]) / 2
    med = {k: round(statistics.median(v), 3) for k, v in fixed.items()}
    # Joint: one load and one wrap shared by K variants, one export each. Alone: a load, a wrap and a save each.
    joint_fixed = (med["load"] + med["multi_wrap"]) / args.k + med["multi_export"]
    alone_fixed = med["load"] + med["peft_wrap"] + med["peft_save"]
    bench_variant_tokens = n_rows * args.seq / args.k  # what each variant trained on in this bench
    result = {
        "what": (f"K={args.k} LoRA r=8 (all layers) variants trained jointly (per-row factors) vs one peft adapter vs "
                 "TRL SFTTrainer+peft, fp32, same rows/batch/length, one process"),
        "base": str(args.base) if real else "random weights, SmolLM2-135M architecture (models/base absent)",
        "tokens_per_s": out,
        "ratio_joint_vs_peft_single": round(joint_tps / peft_tps, 3),
        "ratio_joint_vs_trl_sft": round(joint_tps / out["trl_sft"], 3),
        "noise_peft_runs": round(abs(out["peft_single"] - out["peft_single_again"]) / peft_tps, 3),
        "noise_joint_runs": round(abs(out["joint"] - out["joint_again"]) / joint_tps, 3),
        "fixed_cost_s": med,
        "per_variant_fixed_s": {"joint": round(joint_fixed, 3), "alone": round(alone_fixed, 3)},
        "fixed_over_training": {
            "default_job": {"variant_tokens": args.variant_tokens,
                            "joint": round(joint_fixed / (args.variant_tokens / joint_tps), 4),
                            "alone": round(alone_fixed / (args.variant_tokens / peft_tps), 4)},
            "this_bench": {"variant_tokens": bench_variant_tokens,
                           "joint": round(joint_fixed / (bench_variant_tokens / joint_tps), 4)},
        },
        "targets": {"joint_vs_peft_single": ">= 0.8", "joint_vs_trl_sft": ">= 1.5", "fixed_over_training": "<= 0.10"},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "quick"},
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/multi_variant.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("ratio_joint_vs_peft_single", "ratio_joint_vs_trl_sft",
                                              "per_variant_fixed_s", "fixed_over_training")}))


def run_trl(base, ids, labels, args, tmp) -> float:
    """TRL SFTTrainer on the same LoRA job; tokens/s over steps 2.. (the first step pays TRL's setup)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from iaforge.core.base_model import _embedded_tokenizer
    from iaforge.core.training import ALL_PROJ, IGNORE

    n = args.batch * args.trl_steps
    rows = [{"input_ids": ids[i % len(ids)].tolist(), "completion_mask": (labels[i % len(ids)] != IGNORE).long().tolist()}
            for i in range(n)]
    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    cfg = SFTConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=args.batch, max_steps=args.trl_steps,
                    max_length=args.seq, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
                    completion_only_loss=True, packing=False, learning_rate=1e-4, max_grad_norm=1.0,
                    report_to="none", save_strategy="no", logging_steps=10_000, dataloader_num_workers=0,
                    disable_tqdm=True, seed=0)
    trainer = SFTTrainer(model=load(base), args=cfg, train_dataset=Dataset.from_list(rows),
                         processing_class=_embedded_tokenizer(), callbacks=[Clock()],
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=ALL_PROJ,
                                                bias="none", task_type="CAUSAL_LM"))
    trainer.train()
    return (len(stamps) - 1) * args.batch * args.seq / (stamps[-1] - stamps[0])


if __name__ == "__main__":
    main()
