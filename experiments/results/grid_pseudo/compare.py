"""Session 19: pseudo-variant arms vs baseline on this machine's 24+24 variants (paired by topic)."""
import json, sys
from pathlib import Path
from iaforge.evaluation.grid_pool import load_run, pooled, paired_difference, shared_topics
R = Path(__file__).resolve().parent / "runs"
def runs(pattern):
    return [load_run(p) for p in sorted(R.glob(pattern)) if (p / "metrics.json").is_file()]
base = runs("h24_n24_seed*")
pseudo = runs("h24_n24_pseudo72_seed*")
out = {}
for name, rs in (("baseline", base), ("pseudo72", pseudo)):
    if not rs: continue
    t = shared_topics(rs)
    p = pooled(rs, t)
    out[name] = {"seeds": [r["seed"] for r in rs], "pooled": p, "per_seed": {r["seed"]: r["metrics"] for r in rs},
                 "ia_steps": [r["ia_steps"] for r in rs]}
    print(name, [r["seed"] for r in rs], {k: p[k]["mean"] if isinstance(p[k], dict) else p[k] for k in p})
    for r in rs:
        m = r["metrics"]
        print("   seed", r["seed"], "sft", m["sft"], "contrast", m["sft_contrast"], "top1", m["accuracy"], m["accuracy_contrast"],
              "trained", m["trained_sft"], "fp null", m["fp_null_sft"], m["fp_null_sft_contrast"], "fp base", m["fp_base_sft"], "steps", r["ia_steps"])
if base and pseudo:
    seeds = sorted({r["seed"] for r in base} & {r["seed"] for r in pseudo})
    b = [r for r in base if r["seed"] in seeds]; q = [r for r in pseudo if r["seed"] in seeds]
    t = shared_topics(b + q)
    out["paired"] = {k: paired_difference(q, b, t, k) for k in ("sft", "sft_contrast")}
    print("paired pseudo - baseline, seeds", seeds, out["paired"])
    # the gates: same variants in both arms?
    same = all(b[0]["implantation"].get(v) == q[0]["implantation"].get(v) for v in b[0]["implantation"])
    print("gate records identical across arms:", same); out["gate_records_identical"] = same
    # what pseudo-trained IA answers on held-out: how often a pseudo topic
    pseudo_topics = set()
    ia = json.load(open(R / f"h24_n24_pseudo72_seed{seeds[0]}" / "grid_ia.json"))
    pseudo_topics = set((ia.get("pseudo") or {}).get("topics", []))
    for name, rs in (("baseline", b), ("pseudo72", q)):
        for c in ("sft", "sft_contrast"):
          cnt = {"own": 0, "pseudo": 0, "real_trained": 0, "other": 0, "none": 0}
          for r in rs:
            for topic, row in r["heldout"].items():
                if True:
                    pred = row.get(f"{c}_predicted")
                    if pred is None: cnt["none"] += 1
                    elif pred == topic: cnt["own"] += 1
                    elif pred in pseudo_topics: cnt["pseudo"] += 1
                    elif pred in r["trained_topics"]: cnt["real_trained"] += 1
                    else: cnt["other"] += 1
          print(name, c, "top-1 answers:", cnt); out[f"top1_answers_{name}_{c}"] = cnt
json.dump(out, open(Path(__file__).resolve().parent / "compare.json", "w"), indent=1, default=str)
# does the IA name the topics the difference lens names?
import os
lf = Path(__file__).resolve().parent / "readout_heldout.json"
lens = json.load(open(lf))["logit_lens_per_variant"]
hit = {r["topic"]: (r["first_hit_word"] == 1) for r in lens.values()}
for name, rs in (("baseline", base), ("pseudo72", pseudo)):
    if not rs: continue
    for c in ("sft", "sft_contrast"):
        on = [sum(r["heldout"][t][c] for r in rs) / len(rs) for t in hit if hit[t]]
        off = [sum(r["heldout"][t][c] for r in rs) / len(rs) for t in hit if not hit[t]]
        print(f"{name} {c}: IA rate on the {len(on)} topics the lens names first {sum(on)/len(on):.3f}; on the {len(off)} it does not {sum(off)/len(off):.3f}")
        out[f"ia_vs_lens_{name}_{c}"] = {"lens_hit": round(sum(on)/len(on), 3), "lens_miss": round(sum(off)/len(off), 3), "n_hit": len(on), "n_miss": len(off)}
json.dump(out, open(Path(__file__).resolve().parent / "compare.json", "w"), indent=1, default=str)
