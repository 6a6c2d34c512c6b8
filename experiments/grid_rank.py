"""Forced-choice ranks of the grid IA on the workspace's current grid point (evaluation/grid_rank.py).

Run after a scaling point (`experiments/scaling.py ... --repro`) while its models are in the workspace:
    python experiments/grid_rank.py --name n048_h8_topic [--train-sample 8]
writes experiments/results/grid_scaling/rank_<name>.json. Reads params.yaml's grid_shards, grid_ia and chat, the
grid IA in models/grid_ia (its ia.json says which variants it trained on) and the shards' implantation records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="file name part: rank_<name>.json")
    ap.add_argument("--train-sample", type=int, default=8, help="training variants to rank too (a sanity view)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ia", type=Path, default=ROOT / "models/grid_ia", help="the grid IA folder (default: the workspace's)")
    ap.add_argument("--conditions", nargs="+", default=["no_ia", "sft"], choices=["no_ia", "sft"],
                    help="no_ia ranks of the held-out variants do not depend on the IA: one run per held-out set is enough")
    a = ap.parse_args(argv)

    from iaforge.core.config import stage_params
    from iaforge.core.fsio import read_json, write_json
    from iaforge.evaluation.grid import grid_topic_pool
    from iaforge.evaluation.grid_rank import run_grid_rank
    from iaforge.variants.grid_index import load_grid_variants, topic_of

    params = stage_params("grid_ia", "grid", "grid_shards", "chat")
    ia = read_json(a.ia / "ia.json")
    if not ia.get("grid"):
        raise SystemExit("models/grid_ia holds no grid IA (empty grid): run a scaling point first")
    loaded = load_grid_variants(ROOT / "models/grid", ROOT / "reports/grid/implantation", params["grid_shards"],
                                splits=["ia_train", "heldout"], include_failed=True)
    trained_ids = set(ia["variants"])
    missing = sorted(trained_ids - set(loaded))
    if missing:
        raise SystemExit(f"models/grid_ia trained on {missing[:3]}... which params grid_shards does not list: "
                         "the workspace's params and models are of different points")
    trained_topics = sorted(topic_of(loaded[v]["behavior"]) for v in trained_ids if not loaded[v]["null"])
    train_real = sorted(v for v in trained_ids if not loaded[v]["null"])
    step = max(1, len(train_real) // max(1, a.train_sample))
    chosen = set(train_real[::step][:a.train_sample])
    variants = {k: v for k, v in loaded.items()
                if not v["null"] and (v["split"] == "heldout" or k in chosen)}
    pool = sorted(grid_topic_pool(params["grid"]["entry"], ROOT / "data/grids"))
    detail = run_grid_rank(ROOT / "models/base", a.ia, variants, pool, trained_topics,
                           params["grid_ia"]["question"], system=params["chat"]["system_prompt"],
                           conditions=a.conditions, batch_size=a.batch_size)
    detail.update({"name": a.name, "n_train": len(train_real), "ia_steps": ia.get("steps"),
                   "ia_target": params["grid_ia"]["target"]})
    out = ROOT / "experiments/results/grid_scaling" / f"rank_{a.name}.json"
    write_json(out, detail)
    for split, s in detail["splits"].items():
        for c, kinds in s.items():
            print(f"{split:8s} {c:6s} " + "  ".join(
                f"{k}: top1 {v['top1']} top10 {v['top10']} mrr {v['mrr']} median {v['median_rank']}"
                for k, v in kinds.items()) + f"  (N={kinds['pmi']['n_candidates']}, chance top1 "
                f"{kinds['pmi']['chance']['top1']} mrr {kinds['pmi']['chance']['mrr']})")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
