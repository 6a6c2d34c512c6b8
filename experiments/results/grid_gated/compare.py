"""e6 (gated, worktree) vs e2 (main's default) grid: gates, rates, paired held-out deltas."""
import json, glob, random
def gates(root):
    out = {}
    for f in glob.glob(f"{root}/reports/grid/implantation/*/*.json"):
        for k, r in json.load(open(f)).items():
            if r["family_label"] != "null":
                out[k] = (r["split"], r["rate_triggered"], r["rate_untriggered"], r.get("leak_rate"), r["passed"])
    return out
res = {}
for name, root in (("e2", "/work/main"), ("e6", "/work/s21/exp")):
    g = gates(root)
    m = json.load(open(f"{root}/metrics/grid.json"))
    d = json.load(open(f"{root}/reports/detail/grid.json"))
    pv = {v["variant"]: v for v in d["per_variant"] if not v["null"]}
    mean = lambda xs: round(sum(xs) / len(xs), 4)
    res[name] = {"metrics": m,
                 "gate": {s: {"trig": mean([v[1] for v in g.values() if v[0] == s]), "untrig": mean([v[2] for v in g.values() if v[0] == s]),
                              "probe_leak": mean([v[3] for v in g.values() if v[0] == s]), "passed": sum(v[4] for v in g.values() if v[0] == s),
                              "n": sum(v[0] == s for v in g.values())} for s in ("ia_train", "heldout")},
                 "heldout": {k: {c: v.get(c) for c in ("no_ia", "prefill", "sft_hint", "no_ia_hint", "lens_first", "hint")} for k, v in pv.items() if v["split"] == "heldout"}}
    print(name, json.dumps(res[name]["gate"]), {k: m[k] for k in ("no_ia", "prefill", "sft_hint", "no_ia_hint", "lens_first", "lens_any", "accuracy_sft_hint", "trained_sft_hint", "fp_base_sft_hint", "fp_null_sft_hint")})
ks = sorted(res["e6"]["heldout"])
for k in ks:
    a, b = res["e2"]["heldout"][k], res["e6"]["heldout"][k]
    print(k[14:].ljust(12), "e2", a["no_ia"], a["sft_hint"], a["no_ia_hint"], a["hint"][:3], "| e6", b["no_ia"], b["sft_hint"], b["no_ia_hint"], b["hint"][:3])
diff = [res["e6"]["heldout"][k]["sft_hint"] - res["e2"]["heldout"][k]["sft_hint"] for k in ks]
rng = random.Random(0)
boots = sorted(sum(rng.choice(diff) for _ in diff) / len(diff) for _ in range(10000))
print("paired e6-e2 sft_hint", round(sum(diff) / len(diff), 3), [round(boots[250], 3), round(boots[9750], 3)])
json.dump(res, open("/work/s21/compare.json", "w"), indent=1)
