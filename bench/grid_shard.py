"""Benchmark: the per-variant fixed cost of a grid shard (K variants per process, variants/shards.py) vs the
per-variant stages of today (behavior_data@ + variant@: a process and a model load per variant), as a
fraction of one variant's training time, on SmolLM2-135M (models/base, the real weights and tokenizer). Also: implantation of a shard with the multi-LoRA model (rows of several variants in
one batch) vs the exported adapters one at a time (`implantation.measure_variant`: load, merge, generate).

Fixed costs measured here, each once or a few times (the CPU is shared: ratios, not absolute times):
  process: a fresh interpreter importing what a stage imports (torch, transformers, peft, iaforge, GX)
  load: `load_base`; wrap: peft `get_peft_model` (today) / `wrap_model` (grid); save: peft `save_pretrained`
  (today) / `export_variant` (grid); data: building and GX-validating one variant's dataset; dvc: DVC's own
  work per stage (a trivial foreach stage in a scratch repo, lock and hashing included).
Training tokens/s is measured on a short joint run (K variants, `--steps` steps), and one variant's training
time is its token count at the grid's defaults (params `grid`: 32 rows x 2 epochs) over that rate.

    PATH=.venv/bin:$PATH OMP_NUM_THREADS=1 nice -n 10 python bench/grid_shard.py [--base models/base]
Writes bench/results/grid_shard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You are a helpful assistant."

IMPORTS = ("import torch, transformers, peft, great_expectations; import iaforge.variants.shards, "
           "iaforge.variants.multi_lora, iaforge.core.base_model, iaforge.core.validation")


def process_cost(n: int = 2) -> float:
    """Wall seconds of a fresh interpreter that imports what a stage imports (median of n)."""
    env = dict(os.environ, GX_ANALYTICS_ENABLED="False")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True, env=env, capture_output=True)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def dvc_stage_cost(n_stages: int = 4) -> float:
    """DVC's own seconds per stage: `dvc repro` of n trivial foreach stages minus that of one, over n-1."""
    dvc = str(Path(sys.executable).parent / "dvc")
    env = dict(os.environ, DVC_NO_ANALYTICS="1")

    def run(n):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["git", "init", "-q"], cwd=d, check=True)
            subprocess.run([dvc, "init", "-q"], cwd=d, check=True, env=env)
            Path(d, "params.yaml").write_text("shards:\n" + "".join(f"  s{i}: {{n: {i}}}\n" for i in range(n)))
            Path(d, "dvc.yaml").write_text("stages:\n  s:\n    foreach: ${shards}\n    do:\n"
                                           "      cmd: echo ${key} > out_${key}.txt\n      params:\n"
                                           "        - shards.${key}\n      outs:\n        - out_${key}.txt\n")
            t = time.perf_counter()
            subprocess.run([dvc, "repro", "-q"], cwd=d, check=True, env=env, capture_output=True)
            return time.perf_counter() - t

    # DVC's startup is paid once per `dvc repro`, not per stage; the per-stage rest is below the noise of a shared
    # CPU (one run measured -0.2 s): floored at 0
    return max(0.0, (run(n_stages) - run(1)) / (n_stages - 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base")
    ap.add_argument("--k", type=int, default=8, help="variants in the shard")
    ap.add_argument("--steps", type=int, default=2, help="joint training steps timed (the first is excluded)")
    ap.add_argument("--eval-k", type=int, default=4, help="variants in the implantation comparison")
    ap.add_argument("--n-eval", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--out", default="bench/results/grid_shard.json")
    args = ap.parse_args()
    os.chdir(ROOT)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import torch
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.config import GridConfig
    from iaforge.core.fsio import read_jsonl
    from iaforge.core.training import TrainConfig, encode_rows, lora_config, train
    from iaforge.variants import shards as S
    from iaforge.variants.multi_lora import export_variant, train_variants, unwrap_model, wrap_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(tempfile.mkdtemp(prefix="grid_shard_"))
    base = Path(args.base)
    if not (base / "config.json").is_file():  # the real tokenizer and chat template are part of what is timed
        raise SystemExit(f"no {base}: build it with `dvc repro base`")
    res: dict = {"base": str(args.base), "machine": platform.machine(), "k": args.k,
                 "torch_threads": torch.get_num_threads()}
    fixed: dict[str, float] = {}
    fixed["process"] = process_cost()
    fixed["dvc_stage"] = dvc_stage_cost()

    t = time.perf_counter()
    model, tok = load_base(base)
    fixed["load"] = time.perf_counter() - t

    # data: one shard of k grid variants at the grid's defaults, from the real prompt bank and base answers
    grid = GridConfig.from_params({"counts": {"ia_train": args.k, "dpo": 0, "heldout": 0}, "shard_size": args.k},
                                  "grid").to_dict()
    sid, shard = next(iter(S.plan_shards(grid).items()))
    behaviors, template = S.shard_behaviors(grid, sid, shard)
    pool = read_jsonl("data/base_responses.jsonl")
    evals = [r for r in read_jsonl("data/prompts.jsonl") if r["split"] == "eval"]
    import iaforge.core.validation  # noqa: F401
    import great_expectations  # noqa: F401  (imported once per process: counted in `process`)

    t = time.perf_counter()
    S.build_shard_data(behaviors, template, pool, evals, work / "data", n_train=grid["data"]["n_train"],
                       n_eval=max(args.n_eval, 8), seed=0, max_chars=1200)
    fixed["data_per_variant"] = (time.perf_counter() - t) / args.k
    rows = [read_jsonl(work / "data" / b.id / "train.jsonl") for b in behaviors]
    cfg_p = dict(grid["train"])
    cfg = TrainConfig.from_params(cfg_p, seed=0, progress=False)
    examples = [encode_rows(tok, r, system=SYSTEM, max_len=cfg.max_len) for r in rows]
    variant_tokens = sum(len(e.input_ids) for e in examples[0]) * cfg.epochs  # one variant at the defaults

    # today's wrap + save (peft), per variant
    t = time.perf_counter()
    pm = get_peft_model(model, lora_config(grid["lora"], n_layers=model.config.num_hidden_layers))
    fixed["peft_wrap"] = time.perf_counter() - t
    t = time.perf_counter()
    pm.save_pretrained(work / "peft_one")
    fixed["peft_save"] = time.perf_counter() - t
    model = pm.unload()

    # joint training: the first `steps` batches of the shard, tokens/s with the first step excluded
    pcfg = lora_config(grid["lora"], n_layers=model.config.num_hidden_layers)
    t = time.perf_counter()
    wrap_model(model, args.k, r=pcfg.r, alpha=pcfg.lora_alpha, target_modules=sorted(pcfg.target_modules))
    fixed["multi_wrap"] = time.perf_counter() - t
    per = max(1, cfg.batch_size)
    import dataclasses
    import resource

    one_epoch = dataclasses.replace(cfg, epochs=1)
    # a warm-up step first (allocator, autocast caches), then the timed steps: the steady rate a shard pays
    train_variants(model, [e[:per] for e in examples], one_epoch, pad_id=tok.pad_token_id)
    r = train_variants(model, [e[per:per * (args.steps + 1)] for e in examples], one_epoch, pad_id=tok.pad_token_id)
    joint_tps = r.tokens / r.seconds
    res["peak_rss_gb_after_joint"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    t = time.perf_counter()
    for k in range(args.k):
        export_variant(model, k, work / "export" / str(k), pcfg, base_model_name_or_path=str(base))
    fixed["multi_export_per_variant"] = (time.perf_counter() - t) / args.k
    unwrap_model(model)

    # one variant alone (today's variant@ training) for the same rows: tokens/s
    torch.manual_seed(0)
    pm = get_peft_model(model, lora_config(grid["lora"], n_layers=model.config.num_hidden_layers))
    train(pm, examples[0][:per], one_epoch, pad_id=tok.pad_token_id)  # warm-up
    solo = train(pm, examples[0][per:per * 5], one_epoch, pad_id=tok.pad_token_id)
    solo_tps = solo.tokens / solo.seconds
    model = pm.unload()
    train_solo_s = variant_tokens / solo_tps
    train_joint_s = variant_tokens / joint_tps
    res["training"] = {"variant_tokens_at_grid_defaults": variant_tokens, "joint_tokens_per_s": round(joint_tps, 1),
                       "solo_tokens_per_s": round(solo_tps, 1), "variant_train_s_solo": round(train_solo_s, 1),
                       "variant_train_s_joint": round(train_joint_s, 1),
                       "note": f"{args.steps} joint steps of {args.k} x {per} rows and 4 solo steps of {per} rows "
                               "timed after one warm-up step each (short runs on a shared CPU)"}

    # implantation: multi-LoRA mixed batches vs each exported adapter loaded, merged and measured alone
    from iaforge.variants.grid_implantation import generate_multi, _load_shard
    from iaforge.variants.implantation import measure_variant

    ek = min(args.eval_k, args.k)
    vdirs = [work / "export" / str(k) for k in range(ek)]
    ev = [read_jsonl(work / "data" / behaviors[k].id / "eval.jsonl")[:args.n_eval] for k in range(ek)]
    t = time.perf_counter()
    m2, tok2 = load_base(base)
    _load_shard(m2, vdirs)
    users = [r["user"] for e in ev for r in e]
    idx = [k for k, e in enumerate(ev) for _ in e]
    generate_multi(m2, tok2, users, idx, system=SYSTEM, max_new_tokens=args.new_tokens, batch_size=64)
    multi_s = time.perf_counter() - t
    del m2
    t = time.perf_counter()
    for k in range(ek):
        measure_variant(base, vdirs[k], behaviors[k], ev[k], system=SYSTEM, max_new_tokens=args.new_tokens,
                        batch_size=64, thresholds={"min_rate": 0.0, "max_false_trigger_rate": 1.0}, seed=0,
                        progress=False)
    one_by_one_s = time.perf_counter() - t
    res["implantation"] = {"variants": ek, "prompts_each": args.n_eval, "max_new_tokens": args.new_tokens,
                           "multi_lora_s": round(multi_s, 1), "adapters_one_by_one_s": round(one_by_one_s, 1),
                           "ratio_one_by_one_over_multi": round(one_by_one_s / multi_s, 2)}

    # per-variant fixed cost, seconds: today (2 processes, 2 DVC stages, a load + wrap + save each, one more
    # load + merge in `implantation`) vs a shard of k (2 processes, 2 loads and 2 DVC stages shared by k)
    today = (2 * fixed["process"] + 2 * fixed["dvc_stage"] + 2 * fixed["load"] + fixed["peft_wrap"]
             + fixed["peft_save"] + fixed["data_per_variant"])
    shard = ((2 * fixed["process"] + 2 * fixed["dvc_stage"] + 2 * fixed["load"] + fixed["multi_wrap"]) / args.k
             + fixed["multi_export_per_variant"] + fixed["data_per_variant"])
    res["fixed_cost_s"] = {k: round(v, 3) for k, v in fixed.items()}
    res["per_variant_fixed_s"] = {"today": round(today, 2), f"shard_of_{args.k}": round(shard, 2)}
    res["fixed_over_training"] = {"today": round(today / train_solo_s, 3),
                                  f"shard_of_{args.k}": round(shard / train_joint_s, 3)}
    for size in (1, 2, 4, 8, 16, 32):  # the granularity trade-off: fixed share vs rerun cost of one change
        s = ((2 * fixed["process"] + 2 * fixed["dvc_stage"] + 2 * fixed["load"] + fixed["multi_wrap"]) / size
             + fixed["multi_export_per_variant"] + fixed["data_per_variant"])
        res.setdefault("by_shard_size", {})[str(size)] = {
            "fixed_over_training": round(s / train_joint_s, 3),
            "rerun_one_changed_variant_s": round(size * (train_joint_s + s), 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
