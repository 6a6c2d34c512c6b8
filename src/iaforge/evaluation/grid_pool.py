"""Pool grid runs that differ only in the IA's seed (issue 14's scaling curve): per held-out topic the mean over
runs, a 95% bootstrap interval over topics, and the paired difference between two sets of runs.

The unit is the held-out topic: the IA generalizes over topics, and 8 samples of one topic are not 8 independent
tries at reading an unseen one. The no-IA and prefill conditions do not involve the IA, and `grid_eval` seeds each
report by variant, condition, question and sample, so their draws are the same in every run of a pool.

A run is a folder as `experiments/scaling.py --seeds` and `experiments/results/grid_seeds/run.sh` save it:
`metrics.json` (metrics/grid.json), `grid_detail.json` (reports/detail/grid.json), `grid_ia.json`
(reports/detail/grid_ia.json) and `implantation.json` (variant id -> its gate record).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from iaforge.evaluation.grid import _mean, topic_interval  # grid_eval's own mean and interval

# A run's conditions are those its grid_eval asked: one absent from a run is absent from its point (None), never a 0.
# lens_first / lens_any: the difference lens's words read alone (a yes/no per topic, sampled nothing).
CONDITIONS = ("no_ia", "prefill", "sft", "sft_contrast", "no_ia_contrast", "sft_hint", "no_ia_hint", "lens_first",
              "lens_any")
IA_CONDITIONS = ("sft", "sft_contrast", "sft_hint")  # the IA's own: top-1, per-seed rates and beyond-leakage rates
# metrics/grid.json keys that are a run's own rates (training fit, false positives): averaged over the pool
RUN_KEYS = ("trained_sft", "trained_sft_contrast", "trained_sft_hint", "fp_base_sft", "fp_base_sft_contrast",
            "fp_base_sft_hint", "fp_null_sft", "fp_null_sft_contrast", "fp_null_sft_hint", "chance")
RUN_FILES = ("metrics.json", "grid_detail.json")


class RunFolderError(ValueError):
    pass


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None


def load_run(folder: str | Path) -> dict[str, Any]:
    """One saved run: its held-out rows by topic (each with its variant's gate record), its training variants
    and IA settings, and its headline metrics."""
    folder = Path(folder)
    missing = [f for f in RUN_FILES if not (folder / f).is_file()]
    if missing:
        raise RunFolderError(f"{folder}: not a saved grid run, missing {', '.join(missing)}")
    detail, metrics = _read(folder / "grid_detail.json"), _read(folder / "metrics.json")
    ia = _read(folder / "grid_ia.json") if (folder / "grid_ia.json").is_file() else {}
    imp = _read(folder / "implantation.json") if (folder / "implantation.json").is_file() else {}
    if "per_variant" not in detail:
        raise RunFolderError(f"{folder / 'grid_detail.json'}: field per_variant missing (reports/detail/grid.json)")
    rows = [dict(r) for r in detail["per_variant"] if r["split"] == "heldout" and not r.get("null")]
    for r in rows:  # the variant's own gate (greedy): how far the behavior implanted
        m = imp.get(r["variant"], {})
        r["gate"] = {k: m.get(k) for k in ("rate_triggered", "rate_untriggered", "leak_rate", "passed")} if m else None
    trained = [v for v in ia.get("variants", []) if not v.startswith("grid_null__")]
    trained_topics = sorted({r["topic"] for r in detail["per_variant"]
                             if r["split"] == "ia_train" and not r.get("null") and r.get("topic")})
    # reports/detail/grid_ia.json does not record the seed: the folder's name does (<...>_seed<N>)
    m = re.search(r"seed(\d+)$", folder.name)
    return {"name": folder.name, "n_train": len(trained), "trained": trained, "trained_topics": trained_topics, "seed": int(m.group(1)) if m else None,
            "ia_steps": ia.get("steps"), "ia_tokens": ia.get("tokens"), "target": ia.get("target"),
            "metrics": metrics, "implantation": imp, "heldout": {r["topic"]: r for r in rows}}


def shared_topics(runs: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(set.intersection(*(set(r["heldout"]) for r in runs))) if runs else []


def quiet_topics(runs: Sequence[dict[str, Any]], topics: Sequence[str]) -> list[str]:
    """Topics whose variant never named its topic without the IA (no-IA and prefill samples all 0 in every run):
    on these, amplified leakage cannot carry the number."""
    return [t for t in topics if all((r["heldout"][t].get("no_ia") or 0) == 0 and (r["heldout"][t].get("prefill") or 0) == 0
                                     for r in runs)]


def asked(runs: Sequence[dict[str, Any]], topics: Sequence[str], key: str) -> bool:
    """Whether every run measured `key` on every topic (a condition its grid_eval asked)."""
    return bool(runs and topics) and all(r["heldout"][t].get(key) is not None for r in runs for t in topics)


def per_topic_means(runs: Sequence[dict[str, Any]], topics: Sequence[str], key: str) -> list[float]:
    return [sum(r["heldout"][t].get(key) or 0.0 for r in runs) / len(runs) for t in topics]


def pooled(runs: Sequence[dict[str, Any]], topics: Sequence[str], n_boot: int = 10000) -> dict[str, Any]:
    """Each condition's mean over topics (each topic averaged over the runs) with its interval over topics, and
    top-1 (the topic the reports name most is the variant's own), averaged the same way."""
    out: dict[str, Any] = {}
    if not topics:
        return out
    for c in CONDITIONS:
        if not asked(runs, topics, c):
            continue
        xs = per_topic_means(runs, topics, c)
        lo_hi = topic_interval(xs, n=n_boot)
        out[c] = {"mean": round(sum(xs) / len(xs), 3),
                  "ci95_over_topics": [round(v, 3) for v in lo_hi] if lo_hi else None}
    for c in IA_CONDITIONS:
        if c not in out:
            continue
        top1 = [sum(bool(r["heldout"][t].get(f"{c}_correct")) for r in runs) / len(runs) for t in topics]
        out[f"top1_{c}"] = round(sum(top1) / len(top1), 3)
    return out


def paired_difference(runs: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], topics: Sequence[str],
                      key: str, n_boot: int = 10000) -> dict[str, Any]:
    """Per topic, the pool's mean minus the baseline pool's mean; the mean difference with its interval over
    topics, and how many topics went up and down."""
    diff = [a - b for a, b in zip(per_topic_means(runs, topics, key), per_topic_means(base, topics, key))]
    lo_hi = topic_interval(diff, n=n_boot)
    return {"mean": round(sum(diff) / len(diff), 3), "ci95_over_topics": [round(v, 3) for v in lo_hi] if lo_hi else None,
            "topics_up": sum(x > 0 for x in diff), "topics_down": sum(x < 0 for x in diff)}


TOP1_CLASSES = ("own", "same_kind", "other_kind", "untrained", "none")


def top1_classes(runs: Sequence[dict[str, Any]], topics: Sequence[str], kinds: dict[str, str],
                 condition: str = "sft") -> dict[str, Any]:
    """What the IA's top-1 answer on a held-out variant is (the topic its reports name most): its own topic, a
    topic the IA trained on of the held-out topic's kind (data/grids/topics.yaml: animal, food, ...), a trained
    topic of another kind, a topic it never trained on, or none. Shares over (run, held-out topic) pairs.

    `same_kind_of_misses` (same_kind / the misses that name a trained topic) is read against `same_kind_chance`:
    the share of trained topics that share the held-out topic's kind, the rate a miss drawn at random from the
    trained topics would have. Above it, a miss is a neighbour the IA snapped to, not a default answer. The same
    for the topic's first letter (`same_initial_*`): a reader of the spelling as well as of the meaning.

    `attractor_share`: per run, the share of held-out topics whose top-1 is the run's most common wrong answer
    (an IA that collapses onto one default topic), averaged over runs; `distinct_answers`: per run, how many
    different topics its top-1 answers name, averaged."""
    counts = dict.fromkeys(TOP1_CLASSES, 0)
    chance_kind, chance_initial = [], []
    same_initial = 0
    attractor, distinct = [], []

    def initial(topic: str) -> str:
        return topic[:1].lower()

    for r in runs:
        answers = [r["heldout"][t].get(f"{condition}_predicted") for t in topics]
        wrong = [p for t, p in zip(topics, answers) if p is not None and p != t]
        if topics:
            attractor.append(max((wrong.count(p) for p in set(wrong)), default=0) / len(topics))
            distinct.append(len({p for p in answers if p is not None}))
        trained = set(r.get("trained_topics") or [])
        for t in topics:
            kind = kinds.get(t)
            if trained:
                chance_kind.append(sum(kinds.get(u) == kind and u != t for u in trained) / len(trained))
                chance_initial.append(sum(initial(u) == initial(t) and u != t for u in trained) / len(trained))
            p = r["heldout"][t].get(f"{condition}_predicted")
            cls = ("none" if p is None else "own" if p == t else "untrained" if p not in trained
                   else "same_kind" if kind is not None and kinds.get(p) == kind else "other_kind")
            counts[cls] += 1
            same_initial += cls in ("same_kind", "other_kind") and initial(p) == initial(t)
    total = sum(counts.values())
    if not total:
        return {}
    missed = counts["same_kind"] + counts["other_kind"]

    def share(x: int) -> float | None:
        return round(x / missed, 3) if missed else None

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None

    return {**{k: round(v / total, 3) for k, v in counts.items()}, "n": total, "misses_trained": missed,
            "same_kind_of_misses": share(counts["same_kind"]), "same_kind_chance": mean(chance_kind),
            "same_initial_of_misses": share(same_initial), "same_initial_chance": mean(chance_initial),
            "attractor_share": mean(attractor), "distinct_answers": mean(distinct)}


def implanted(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The gate records of the variants the IA trained on (the same variants in every run of a pool)."""
    recs = [runs[0]["implantation"][v] for v in runs[0]["trained"] if v in runs[0]["implantation"]]
    return {"implanted_triggered": _mean([r.get("rate_triggered") for r in recs]),
            "implanted_untriggered": _mean([r.get("rate_untriggered") for r in recs]),
            "implanted_leak": _mean([r.get("leak_rate") for r in recs]),
            "gate_passed": sum(bool(r.get("passed")) for r in recs) if recs else None}


def curve_point(runs: Sequence[dict[str, Any]], kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """One point of the scaling curve from runs of the same training variants and held-out topics (IA seeds
    differ): pooled rates with intervals over topics, each seed's own rate, and the part beyond leakage; with
    `kinds` (topic -> kind), what the top-1 answers are when they miss (`top1_classes`)."""
    if not runs:
        raise RunFolderError("a curve point needs at least one run")
    ns = {r["n_train"] for r in runs}
    trained = {tuple(sorted(r["trained"])) for r in runs}
    if len(ns) != 1 or len(trained) != 1:
        raise RunFolderError(f"runs {[r['name'] for r in runs]} trained on different variants: not one point")
    held = {tuple(sorted(r["heldout"])) for r in runs}
    if len(held) != 1:
        raise RunFolderError(f"runs {[r['name'] for r in runs]} were measured on different held-out topics: not one point")
    seeds = [r["seed"] for r in runs]
    if None not in seeds and len(set(seeds)) != len(seeds):
        raise RunFolderError(f"runs {[r['name'] for r in runs]} repeat an IA seed ({seeds}): pool distinct seeds")
    topics = shared_topics(runs)
    quiet = quiet_topics(runs, topics)
    pool = pooled(runs, topics)
    beyond = pooled(runs, quiet) if quiet else {}
    point: dict[str, Any] = {
        "n_train": ns.pop(), "n_heldout": len(topics), "runs": [r["name"] for r in runs], "seeds": seeds,
        "ia_steps": runs[0]["ia_steps"], "target": runs[0]["target"],
        **{c: (pool.get(c) or {}).get("mean") for c in CONDITIONS},
        **{f"{c}_ci95": (pool.get(c) or {}).get("ci95_over_topics") for c in CONDITIONS},
        **{f"{c}_per_seed": [r["metrics"].get(c) for r in runs] if c in pool else None for c in IA_CONDITIONS},
        "accuracy": pool.get("top1_sft"), "accuracy_contrast": pool.get("top1_sft_contrast"),
        "accuracy_sft_hint": pool.get("top1_sft_hint"),
        **{k: _mean([r["metrics"].get(k) for r in runs]) for k in RUN_KEYS},
        "n_beyond_leakage": len(quiet),
        **{f"{c}_beyond_leakage": (beyond.get(c) or {}).get("mean") for c in IA_CONDITIONS},
        **implanted(runs)}
    if kinds:
        point["top1_classes"] = {c: top1_classes(runs, topics, kinds, c) for c in IA_CONDITIONS if c in pool}
    return point


def group_runs(runs: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Runs by the number of variants the IA trained on (one curve point each)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["n_train"], []).append(r)
    return dict(sorted(out.items()))
