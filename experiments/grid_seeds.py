"""Held-out grid naming over several IA seeds, with an interval over topics (issue 14, fifteenth session).

Each argument is a folder holding one run's `grid_detail.json` (reports/detail/grid.json) and `metrics.json`
(metrics/grid.json), as `experiments/results/grid_seeds/<run>/`. Runs that share variants and held-out set (only
`grid_ia.seed` differs) are pooled: a held-out topic's rate is the mean over the runs, and the interval is a
bootstrap over topics (the unit the IA generalizes over; 8 samples of one topic are not independent draws of
"can the IA read an unseen topic"). The no-IA and prefill conditions do not involve the IA, and `grid_eval`
seeds each report by variant, condition, question and sample, so their draws are the same in every run.

"Beyond leakage": the same rates over the held-out topics whose variant never named its topic without the IA
(no-IA and prefill samples both 0), so amplified leakage cannot carry the number.

    python experiments/grid_seeds.py experiments/results/grid_seeds/h24_n48_seed{0,2} \
        --against experiments/results/grid_seeds/h24_n24_seed{0,2} --out summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iaforge.evaluation.grid_pool import (CONDITIONS, load_run, paired_difference, pooled, quiet_topics,
                                          shared_topics)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--against", nargs="+", type=Path, default=[],
                    help="baseline runs on the same held-out topics: the paired difference per topic, with its interval")
    a = ap.parse_args()
    runs = [load_run(f) for f in a.runs]
    topics = shared_topics(runs)
    quiet = quiet_topics(runs, topics)
    per_run = {r["name"]: {c: round(sum(r["heldout"][t].get(c) or 0.0 for t in topics) / len(topics), 3)
                           for c in CONDITIONS} for r in runs}
    per_topic = {t: {"gate": runs[0]["heldout"][t].get("gate"),
                     "no_ia": runs[0]["heldout"][t].get("no_ia"), "prefill": runs[0]["heldout"][t].get("prefill"),
                     "sft": [r["heldout"][t].get("sft") for r in runs],
                     "sft_contrast": [r["heldout"][t].get("sft_contrast") for r in runs]} for t in topics}
    summary = {"runs": [r["name"] for r in runs], "n_train": {r["name"]: r["n_train"] for r in runs},
               "n_heldout": len(topics), "per_run": per_run,
               "pooled": pooled(runs, topics),
               "beyond_leakage": {"topics": quiet, "pooled": pooled(runs, quiet)},
               "per_topic": per_topic}
    print(f"{len(runs)} runs, {len(topics)} held-out topics ({len(quiet)} never named without the IA)")
    print("| run | " + " | ".join(CONDITIONS) + " |")
    for name, m in per_run.items():
        print(f"| {name} | " + " | ".join(f"{m[c]:.2f}" for c in CONDITIONS) + " |")
    for label, p in (("pooled", summary["pooled"]), ("beyond leakage", summary["beyond_leakage"]["pooled"])):
        print(label + ": " + ", ".join(f"{c} {v['mean']:.2f} [{v['ci95_over_topics'][0]:.2f}, {v['ci95_over_topics'][1]:.2f}]"
                                        for c, v in p.items() if isinstance(v, dict)))
    print("| topic | gate: triggered / untriggered | no IA | prefill | plain per run | contrastive per run |")
    for t, v in per_topic.items():
        g = v["gate"] or {}
        print(f"| {t} | {g.get('rate_triggered')} / {g.get('rate_untriggered')} | {v['no_ia']} | {v['prefill']} | "
              f"{' '.join(str(x) for x in v['sft'])} | {' '.join(str(x) for x in v['sft_contrast'])} |")
    if a.against:
        base = [load_run(f) for f in a.against]
        summary["against"] = {"runs": [r["name"] for r in base], "paired_difference": {}}
        for c in ("sft", "sft_contrast"):
            d = paired_difference(runs, base, topics, c)
            summary["against"]["paired_difference"][c] = d
            print(f"against {', '.join(r['name'] for r in base)}: {c} {d['mean']:+.2f} "
                  f"[{d['ci95_over_topics'][0]:+.2f}, {d['ci95_over_topics'][1]:+.2f}], "
                  f"{d['topics_up']} topics up, {d['topics_down']} down")
    if a.out:
        a.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
