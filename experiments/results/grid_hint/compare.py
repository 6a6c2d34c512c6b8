"""Session 20 arms (arms/<arm>.json, written by hint_exp.py) -> compare.json: held-out rates with 95% bootstrap
intervals over the 24 topics, and the hinted IA minus its no-IA control, paired by topic. Run from the repo root:
    python experiments/results/grid_hint/compare.py"""
import json, random
from pathlib import Path
from iaforge.evaluation.grid import topic_interval
ARMS = [("hinted IA, seed 0", "hint_k5_s0"), ("hinted IA, seed 2", "hint_k5_s2"), ("rows of both forms, seed 0", "hint_mix_k5_s0"),
        ("8 training topics, seed 0", "hint_n8_k5_s0"), ("16 training topics, seed 0", "hint_n16_k5_s0"),
        ("IA trained plain, asked hinted, seed 0", "nohint_train_k5_s0"), ("k 3, seed 0", "hint_k3_s0"),
        ("k 10, seed 0", "hint_k10_s0")]
HERE = Path(__file__).resolve().parent
out = {}
for name, d in ARMS:
    f = HERE / "arms" / f"{d}.json"
    if not f.exists():
        continue
    r = json.loads(f.read_text())
    det = r["detail"]
    row = {}
    for cond in ("sft", "no_ia", "sft_plain"):
        if cond not in det["heldout"]:
            continue
        rates = [v["rate"] for v in det["heldout"][cond].values()]
        row[cond] = (round(sum(rates) / len(rates), 3), topic_interval(rates))
        row[f"train_{cond}"] = round(sum(v["rate"] for v in det["ia_train"][cond].values()) / len(det["ia_train"][cond]), 3)
        row[f"fp_null_{cond}"] = round(sum(v["rate"] for v in det["heldout/null"][cond].values()) / len(det["heldout/null"][cond]), 3)
        row[f"fp_base_{cond}"] = det["base"][cond]["__base__"]["rate"]
    s, n = det["heldout"]["sft"], det["heldout"]["no_ia"]
    diffs = [s[g]["rate"] - n[g]["rate"] for g in s]
    rng = random.Random(0)
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(2000))
    row["paired_ia_minus_no_ia"] = (round(sum(diffs) / len(diffs), 3), [round(means[50], 3), round(means[1949], 3)],
                                    {"up": sum(x > 0 for x in diffs), "down": sum(x < 0 for x in diffs)})
    out[name] = row
    print(name, json.dumps(row))
(HERE / "compare.json").write_text(json.dumps(out, indent=1) + "\n")
