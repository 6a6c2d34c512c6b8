"""Pool the saved runs of each arm (twenty-second session; runs/ here: h24_n<N>_<arm>_seed<S>) and compare arms
topic by topic on the 24 held-out topics (evaluation/grid_pool.py). Writes compare.json beside this file.
    python experiments/results/grid_pseudo_hint/compare.py"""

import json
import re
import sys
from pathlib import Path

from iaforge.evaluation.grid_pool import curve_point, load_run, paired_difference, shared_topics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from scaling import topic_kinds  # noqa: E402

NAME = re.compile(r"^h(\d+)_n(\d+)_(.+)_seed(\d+)$")
KEYS = ("sft_hint", "sft_hint_ci95", "sft_hint_per_seed", "accuracy_sft_hint", "no_ia_hint", "no_ia", "prefill",
        "lens_first", "lens_any", "trained_sft_hint", "fp_base_sft_hint", "fp_null_sft_hint", "sft", "fp_null_sft",
        "seeds", "ia_steps", "implanted_triggered", "implanted_untriggered", "implanted_leak")


def main() -> int:
    arms: dict[tuple[int, str], list] = {}
    for f in sorted((HERE / "runs").iterdir()):
        m = NAME.match(f.name)
        if m:
            arms.setdefault((int(m.group(2)), m.group(3)), []).append(load_run(f))
    kinds = topic_kinds(HERE.parents[2])
    out: dict = {"arms": {}, "paired": {}}
    for (n, arm), runs in sorted(arms.items()):
        p = curve_point(runs, kinds)
        out["arms"][f"n{n}_{arm}"] = {k: p.get(k) for k in KEYS} | {"runs": p["runs"],
                                                                     "top1_hint": p.get("top1_classes", {}).get("sft_hint")}
        print(f"n={n:>3} {arm:12s} seeds {p['seeds']}: hinted IA {p['sft_hint']} {p['sft_hint_ci95']} per seed "
              f"{p['sft_hint_per_seed']} top-1 {p['accuracy_sft_hint']} | no IA hinted {p['no_ia_hint']} plain "
              f"{p['no_ia']} prefill {p['prefill']} | lens {p['lens_first']} | train {p['trained_sft_hint']} | "
              f"fp base {p['fp_base_sft_hint']} nulls {p['fp_null_sft_hint']}")
    for (n, arm), runs in sorted(arms.items()):
        if arm == "gated" or (n, "gated") not in arms:
            continue
        base = arms[(n, "gated")]
        seeds = sorted({r["seed"] for r in runs} & {r["seed"] for r in base})  # the same IA seeds on both sides
        a = [r for r in runs if r["seed"] in seeds]
        b = [r for r in base if r["seed"] in seeds]
        if not seeds:
            continue
        d = paired_difference(a, b, shared_topics(a + b), "sft_hint")
        out["paired"][f"n{n}_{arm}_minus_gated"] = {"seeds": seeds, **d}
        print(f"n={n} {arm} - gated (seeds {seeds}): {d}")
    (HERE / "compare.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
