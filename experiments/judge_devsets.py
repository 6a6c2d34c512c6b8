"""Does training the learned judge's WEIGHTS on hand-written (truth, report, match) items generalize to a new writer?

Hand-labelled items (the calibration set's dev part, the fresh sets) become training pairs the way the judge sees
them at judging time: each item's truths are the catalog entry's description and paraphrases (load_fresh, the
same lookup judge_calibration --fresh uses), one Pair (truth, report, match) per truth, kind `devset`. They join the
catalog pairs of the shipped params (iaforge.judging.pairs.generate_pairs); the rules and threshold stay as shipped.

Leave one writer out: for each held-out set H in fresh..fresh5, train on catalog pairs + calibration dev + the
other four fresh sets, score on H (items whose (truth, report) or report text also occurs in a training set are
counted and, with --drop-shared, dropped from training). Nothing named fresh6 is ever read.

    # the shipped judge on every fresh set
    python experiments/judge_devsets.py score --model models/judge
    # leave-one-writer-out, one variant
    python experiments/judge_devsets.py lowo --variant devsets
    # the final judge (round 6) is stage judge_train with judge_train.dev_sets (params.yaml): `dvc repro judge_train`

Run with nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 (one thread, as judge_train).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "data" / "catalog"
TOPICS = ROOT / "data" / "grids" / "topics.yaml"
CALIBRATION = ROOT / "data" / "judge" / "calibration.yaml"
FRESH = ("fresh", "fresh2", "fresh3", "fresh4", "fresh5")   # never fresh6
RESULTS = ROOT / "experiments" / "results" / "judge_devsets.json"


def fresh_path(name: str) -> Path:
    assert name in FRESH, name
    return ROOT / "data" / "judge" / f"{name}.yaml"


def load_set(name: str):
    """CalibrationItems of a hand-labelled set: 'caldev' (calibration dev part) or a fresh set (catalog truths)."""
    from iaforge.judging.calibration import load_calibration, load_fresh

    if name == "caldev":
        return tuple(load_calibration(CALIBRATION).part("dev"))
    return load_fresh(fresh_path(name), CATALOG, TOPICS)[0]


def items_to_pairs(items, source: str):
    """One Pair per (truth of the item, report), label = match, kind `devset`."""
    from iaforge.judging.pairs import Pair

    return [Pair(t, it.report, int(it.match), "devset", f"{source}:{it.id}") for it in items for t in it.truths]


def norm(s: str) -> str:
    return " ".join(s.split()).lower()


def score(judge, items) -> dict[str, Any]:
    from iaforge.judging.calibration import metrics, predict

    m = metrics(items, predict(judge, items))
    return {k: m[k] for k in ("n", "accuracy", "precision", "recall", "confusion")}


# ---------------------------------------------------------------------------------------------- variants

def base_config():
    """The shipped judge_train params (params.yaml), as judge_train builds them."""
    from iaforge.core.config import stage_params
    from iaforge.judging.learned_train import TrainConfig

    return TrainConfig.from_params(stage_params("judge_train")["judge_train"], "judge_train")


# name -> (config overrides, weight: how many copies of each hand-written pair)
VARIANTS = {
    "devsets": ({}, 1),
    "devsets_x2": ({}, 2),
    "devsets_e2": ({"epochs": 2}, 1),
    "devsets_cross": ({"architecture": "cross"}, 1),
}


def build_training(cfg, held_out: str | None, drop_shared: bool, weight: int, log=print):
    """Catalog pairs (shipped params, calibration dev NOT via use_calibration_dev) + calibration dev + fresh sets
    except `held_out`, as pairs; returns (pairs, info)."""
    from iaforge.judging.learned_train import build_pairs
    from iaforge.judging.pairs import dedupe

    # the hand-labelled sets are added below, one held out: never through params judge_train.dev_sets
    cat = build_pairs(CATALOG, TOPICS, CALIBRATION, replace(cfg, use_calibration_dev=False, dev_sets=[]))
    train_sets = ["caldev"] + [f for f in FRESH if f != held_out]
    hand = []
    for s in train_sets:
        hand += items_to_pairs(load_set(s), s)
    info: dict[str, Any] = {"train_sets": train_sets, "catalog_pairs": len(cat)}
    if held_out:
        h = load_set(held_out)
        h_pairs = {(t, it.report) for it in h for t in it.truths}
        h_reports = {norm(it.report) for it in h}
        info["shared_truth_report_pairs"] = len({(p.truth, p.report) for p in hand} & h_pairs)
        info["shared_reports"] = len({norm(p.report) for p in hand} & h_reports)
        info["held_out_items_with_shared_report"] = sum(norm(it.report) in {norm(p.report) for p in hand}
                                                        for it in h)
        info["catalog_pairs_with_held_out_report"] = sum(norm(p.report) in h_reports for p in cat)
        if drop_shared:
            hand = [p for p in hand if norm(p.report) not in h_reports]
        info["dropped_shared"] = drop_shared
    # hand-written label wins over a catalog pair with the same (truth, report): dedupe keeps kind `calibration`
    hand = [replace(p, kind="calibration") for p in hand]
    hand = dedupe(hand)
    info["hand_pairs"] = len(hand)
    info["hand_positive"] = sum(p.label for p in hand)
    pairs = dedupe(cat + hand)
    if weight > 1:
        pairs = pairs + [p for p in pairs if p.kind == "calibration"] * (weight - 1)
    info["pairs"] = len(pairs)
    info["positive"] = sum(p.label for p in pairs)
    log(f"training: {len(cat)} catalog + {len(hand)} hand pairs x{weight} -> {len(pairs)} pairs "
        f"({info['positive']} positive); {json.dumps({k: v for k, v in info.items() if k.startswith('shared') or k.startswith('held') or k.startswith('catalog_pairs_with')})}")
    return pairs, info


def train(cfg, pairs, log=print):
    from iaforge.judging.learned import LearnedJudge
    from iaforge.judging.learned_train import train_model

    t0 = time.perf_counter()
    tok, model, rows = train_model(pairs, cfg, log=log)
    judge = LearnedJudge.from_loaded(tok, model, threshold=cfg.threshold, rules=cfg.rules,
                                     leak_threshold=cfg.leak_threshold, max_length=cfg.max_length,
                                     architecture=cfg.architecture)
    return tok, model, rows, judge, time.perf_counter() - t0


def variant_config(name: str):
    over, weight = VARIANTS[name]
    return replace(base_config(), **over), weight


THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def hand_reports(exclude: str) -> set[str]:
    """Normalised reports of every hand-labelled training set except `exclude` (for the leak-free subset of H)."""
    return {norm(it.report) for s in ["caldev", *FRESH] if s != exclude for it in load_set(s)}


def sweep(judge, cfg, h: str, m_clean_from=None) -> dict[str, Any]:
    """The judge on H at its own threshold (the headline), plus: H without the items whose report text occurs in
    a training set (`clean`), a threshold sweep on H and on the calibration test part (held out of every
    training set, so a threshold can be picked there without looking at H), the ids predicted positive."""
    from iaforge.judging.calibration import load_calibration, metrics, predict

    items = load_set(h)
    shared = hand_reports(h)
    clean = [i for i, it in enumerate(items) if norm(it.report) not in shared]
    cal_test = tuple(load_calibration(CALIBRATION).part("test"))
    keep = ("n", "accuracy", "precision", "recall")
    t0, out = judge.threshold, {"sweep": {}, "sweep_calibration_test": {}}
    for t in THRESHOLDS:
        judge.threshold = t
        pred = predict(judge, items)
        m = metrics(items, pred)
        out["sweep"][str(t)] = {k: m[k] for k in keep}
        out["sweep_calibration_test"][str(t)] = {k: v for k, v in metrics(cal_test, predict(judge, cal_test)).items()
                                                 if k in keep}
        if t == t0:
            out.update({k: m[k] for k in (*keep, "confusion")})
            out["predicted_positive"] = sorted(it.id for it, p in zip(items, pred) if p)
            mc = metrics([items[i] for i in clean], [pred[i] for i in clean])
            out["clean"] = {k: mc[k] for k in keep}
    judge.threshold = t0
    return out


# ---------------------------------------------------------------------------------------------- commands

def load_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def save_results(res: dict[str, Any]) -> None:
    # means over the held-out sets, per judge
    means = {}
    for name, per in res.get("lowo", {}).items():
        rows = [per[h] for h in FRESH if h in per]
        if len(rows) == len(FRESH):
            means[name] = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("accuracy", "precision",
                                                                                     "recall")}
            means[name]["n"] = sum(r["n"] for r in rows)
    res["mean_over_held_out"] = means
    # held-out sets every variant has (a variant not run on all five: compare on the common ones only)
    done = [set(h for h in FRESH if h in per) for per in res.get("lowo", {}).values()]
    common = [h for h in FRESH if all(h in d for d in done)] if done else []
    res["mean_over_common_held_out"] = {"sets": common, **{
        name: {k: round(sum(per[h][k] for h in common) / len(common), 4) for k in ("accuracy", "precision", "recall")}
        for name, per in res.get("lowo", {}).items()}} if common else {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")


def cmd_score(a):
    from iaforge.judging.learned import LearnedJudge

    judge = LearnedJudge(a.model)
    out = {}
    for name in a.sets:
        m = sweep(judge, None, name) if name in FRESH else score(judge, load_set(name))
        out[name] = m
        print(f"{a.model} on {name:<7} n={m['n']:<4} accuracy {m['accuracy']:.4f}  precision {m['precision']:.4f}  "
              f"recall {m['recall']:.4f}", flush=True)
    if a.record:
        res = load_results()
        res.setdefault("lowo", {})[a.record] = {k: v for k, v in out.items() if k in FRESH}
        save_results(res)


def cmd_lowo(a):
    res = load_results()
    cfg, weight = variant_config(a.variant)
    key = a.variant + ("_dropshared" if a.drop_shared else "")
    for h in a.held_out:
        done = res.get("lowo", {}).get(key, {}).get(h)
        if done and not a.force:
            print(f"{key} {h}: done already", flush=True)
            continue
        pairs, info = build_training(cfg, h, a.drop_shared, weight)
        _, _, rows, judge, secs = train(cfg, pairs)
        m = sweep(judge, cfg, h)
        m["train"] = {**info, "loss": rows, "seconds": round(secs)}
        print(f"{key} held out {h:<7} n={m['n']:<4} accuracy {m['accuracy']:.4f}  precision {m['precision']:.4f}  "
              f"recall {m['recall']:.4f}  ({secs:.0f} s)", flush=True)
        res = load_results()
        res.setdefault("lowo", {}).setdefault(key, {})[h] = m
        res.setdefault("variants", {})[key] = {"overrides": VARIANTS[a.variant][0], "hand_weight": weight,
                                               "drop_shared": a.drop_shared}
        save_results(res)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("--model", default="models/judge")
    s.add_argument("--sets", nargs="+", default=list(FRESH), choices=list(FRESH) + ["caldev"])
    s.add_argument("--record", help="store the scores as this judge's row of the leave-one-out table")
    s.set_defaults(fn=cmd_score)
    s = sub.add_parser("lowo")
    s.add_argument("--variant", default="devsets", choices=list(VARIANTS))
    s.add_argument("--held-out", nargs="+", default=list(FRESH), choices=list(FRESH))
    s.add_argument("--drop-shared", action="store_true", help="drop training pairs whose report occurs in H")
    s.add_argument("--force", action="store_true")
    s.set_defaults(fn=cmd_lowo)
    a = ap.parse_args(argv)
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
