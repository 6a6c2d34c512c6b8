"""Does contrastive sampling (variant + IA against base + IA, evaluation/contrastive.py) turn the grid IA's rank
signal into named topics, and at what cost in false positives?

Run in a workspace that holds a grid point (params.yaml with its grid_shards, models/grid, models/grid_ia,
reports/grid/implantation), e.g. the n=72 point:
    cd <workspace> && PYTHONPATH=<repo>/src python <repo>/experiments/grid_contrast.py --name n072 --alphas 0 0.5 1
writes <repo>/experiments/results/grid_scaling/contrast_<name>.json. Judged as grid_eval judges: a sample names the
variant's topic by the topic's terms; a false positive is a sample on the base model or a null variant that names
any grid topic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--train-sample", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--ia", type=Path, default=Path("models/grid_ia"),
                    help="the grid IA folder (another point's IA on this workspace's variants: held-out ones the same)")
    ap.add_argument("--condition", default="sft", choices=["sft", "no_ia"],
                    help="both sides' condition: no_ia is the control (the variant alone against the base alone)")
    ap.add_argument("--base-samples", type=int, default=None, help="samples on the base model and nulls (FP)")
    ap.add_argument("--only-nulls", action="store_true", help="only the base model and the null variants (FP)")
    a = ap.parse_args(argv)

    import torch

    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.adapters import attach
    from iaforge.core.config import stage_params
    from iaforge.core.fsio import read_json, write_json
    from iaforge.evaluation.contrastive import AdapterPicker, sample_groups
    from iaforge.evaluation.evaluate import IA_ADAPTERS
    from iaforge.evaluation.grid import grid_topic_pool, named_topics, names_topic, predicted_topic
    from iaforge.variants.grid_index import load_grid_variants, topic_of

    torch.set_num_threads(1)
    root = Path.cwd()
    params = stage_params("grid_ia", "grid", "grid_shards", "chat")
    ia = read_json(a.ia / "ia.json")
    loaded = load_grid_variants(root / "models/grid", root / "reports/grid/implantation", params["grid_shards"],
                                splits=["ia_train", "heldout"], include_failed=True)
    trained = set(ia["variants"])
    train_real = sorted(v for v in trained if not loaded[v]["null"])
    step = max(1, len(train_real) // a.train_sample)
    chosen = set(train_real[::step][:a.train_sample])
    keep = {k: v for k, v in loaded.items()
            if v["null"] or (not a.only_nulls and (v["split"] == "heldout" or k in chosen))}
    pool = grid_topic_pool(params["grid"]["entry"], root / "data/grids")
    model, tok = load_with_variants(root / "models/base", {k: Path(v["path"]) for k, v in keep.items()})
    model = attach(model, a.ia, IA_ADAPTERS["sft"])
    model.eval()
    switch = AdapterPicker.for_conditions(model)
    question = params["grid_ia"]["question"]
    groups = [None, *sorted(keep)]
    res = {"name": a.name, "condition": a.condition, "question": question, "beta": a.beta, "samples": a.samples, "n_train": len(train_real),
           "ia_steps": ia.get("steps"), "alphas": {}}
    for alpha in a.alphas:
        t0 = time.perf_counter()
        kw = dict(condition=a.condition, system=params["chat"]["system_prompt"], alpha=alpha, beta=a.beta,
                  max_new_tokens=a.max_new_tokens, seed=0)
        nulls = [g for g in groups if g is None or keep[g]["null"]]
        out = sample_groups(model, tok, switch, [g for g in groups if g not in nulls], question, n=a.samples, **kw)
        out.update(sample_groups(model, tok, switch, nulls, question, n=a.base_samples or a.samples, **kw))
        per = {}
        for g, answers in out.items():
            v = keep.get(g)
            if g is None or v["null"]:
                per[str(g)] = {"split": "base" if g is None else f"{v['split']}_null",
                               "fp": sum(bool(named_topics(r, pool)) for r in answers) / len(answers),
                               "answers": answers}
            else:
                topic = topic_of(v["behavior"])
                per[g] = {"split": v["split"], "topic": topic,
                          "named": sum(names_topic(r, pool[topic]) for r in answers) / len(answers),
                          "top1": predicted_topic(answers, pool) == topic, "answers": answers}
        summary = {}
        for split in ("heldout", "ia_train"):
            rows = [p for p in per.values() if p["split"] == split]
            if not rows:
                continue
            summary[split] = {"named": round(sum(p["named"] for p in rows) / len(rows), 3),
                              "top1": round(sum(p["top1"] for p in rows) / len(rows), 3), "n": len(rows)}
        for split in ("base", "heldout_null", "ia_train_null"):
            rows = [p for p in per.values() if p["split"] == split]
            if rows:
                summary[split] = {"fp": round(sum(p["fp"] for p in rows) / len(rows), 3), "n": len(rows)}
        res["alphas"][str(alpha)] = {"summary": summary, "per_variant": per, "seconds": round(time.perf_counter() - t0)}
        print(f"alpha {alpha}: {json.dumps(summary)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        write_json(REPO / "experiments/results/grid_scaling" / f"contrast_{a.name}{'' if a.condition == 'sft' else '_' + a.condition}.json", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
