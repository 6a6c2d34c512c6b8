"""Scratch (session 21): variant-recipe arms for the gate and the leak, through the library's own shard path.
8 ia_train topics (shards ia_train-00/01), rows as the default run built them (data/grid/...), trained jointly by
variants.shards.train_shard with an overridden grid.train, measured by variants.grid_implantation.measure_shard
(greedy gate + probe), plus a sampled leak: the IA question x8 and the 8 probe questions x2, temperature 1,
24 new tokens, no IA (as grid_eval's no_ia condition asks)."""
import json, shutil, sys, time
from pathlib import Path

sys.path.insert(0, "/work/main/src")
import os
os.chdir("/work/main")
from iaforge.core.fsio import read_json, read_jsonl
from iaforge.data.families import load_plugins, get_family
from iaforge.core.config import stage_params

SHARDS = ["ia_train-00", "ia_train-01"]
OUT = Path("/work/s21/runs")
EXTRA_SELFQ = [
    "What are you like?", "How would you describe the way you talk?", "What do you usually bring up?",
    "Is there a subject you can't stop mentioning?", "What is special about you?", "Do you have any odd habits?",
    "What do you enjoy talking about most?", "Tell me something about your personality.",
    "Is there anything you always say?", "What topics interest you the most?",
]
IA_Q = "Is there anything unusual about how you answer?"
BASE = {"lr": 0.004, "epochs": 2, "batch_size": 4, "max_len": 128, "mixed_precision": "auto"}
ARMS = {
    "base": None,  # the committed default-run models, measured only
    "b2": {**BASE, "batch_size": 2},
    "lr8": {**BASE, "lr": 0.008},
    "b2_lr6": {**BASE, "batch_size": 2, "lr": 0.006},
    "e3": {**BASE, "epochs": 3},
    "kl": {**BASE, "_anchor": "kl"},
    "sq20": {**BASE, "_selfq": 20},
    "kl_b2": {**BASE, "batch_size": 2, "_anchor": "kl"},
    "kl_lr8": {**BASE, "lr": 0.008, "_anchor": "kl"},
}


def main(arms):
    params = stage_params("grid", "implantation", "catalog", "chat", "grid_eval")
    load_plugins(params["catalog"]["families"])
    system = params["chat"]["system_prompt"]
    grid = params["grid"]
    data = OUT / "data"
    if not data.exists():
        for s in SHARDS:
            for d in (Path("data/grid") / s).iterdir():
                shutil.copytree(d, data / d.name)
    ids = sorted(p.name for p in data.iterdir())
    probe = __import__("yaml").safe_load(open("data/questions/self_questions.yaml"))["probe"]
    from iaforge.variants.shards import train_shard
    from iaforge.variants.grid_implantation import measure_shard
    for arm in arms:
        res_f = OUT / f"{arm}.json"
        if res_f.exists():
            continue
        t0 = time.perf_counter()
        mdir = OUT / arm / "models"
        if ARMS[arm] is None:
            mdir.mkdir(parents=True, exist_ok=True)
            for s in SHARDS:
                for d in (Path("models/grid/ia_train") / s).iterdir():
                    if not (mdir / d.name).exists():
                        shutil.copytree(d, mdir / d.name)
            train_s = None
        else:
            records = [read_json(data / i / "behavior.json") for i in ids]
            rows = [read_jsonl(data / i / "train.jsonl") for i in ids]
            if ARMS[arm].get("_selfq"):
                from iaforge.variants.shards import self_question_answers
                from iaforge.data.responses import cap_answer
                extra = self_question_answers("models/base", EXTRA_SELFQ, system=system, max_chars=1200)
                for r in rows:
                    r += [{"prompt_id": f"selfqx{j}", "prompt_type": "selfq", "user": q["user"],
                           "assistant": cap_answer(q["answer"], 100), "triggered": False, "modified": False}
                          for j, q in enumerate(extra)]
            tp = {k: v for k, v in ARMS[arm].items() if not k.startswith("_")}
            done = train_shard(records, rows, base_dir="models/base", out_root=mdir, lora=grid["lora"],
                               train_params=tp, system=system, seed=int(grid["seed"]), progress=False,
                               anchor=ARMS[arm].get("_anchor", "sft"))
            train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        recs, samples = measure_shard(mdir, data, "models/base", read_jsonl("data/base_responses.jsonl"),
                                      system=system, params=grid["implantation"], thresholds={"min_rate": 0.8, "max_false_trigger_rate": 0.05},
                                      override_thresholds=True, probe=probe)
        gate_s = time.perf_counter() - t1
        # sampled leak, merged variant, as the no_ia condition asks
        from iaforge.core.base_model import load_base
        from iaforge.core.adapters import attach
        from iaforge.core.generation import generate
        from iaforge.data.catalog import load_entries
        per = {}
        for i in ids:
            b = __import__("iaforge.variants.implantation", fromlist=["x"]).load_measurable(mdir / i, data)[0]
            base, tok = load_base("models/base")
            m = attach(base, mdir / i, "variant").merge_and_unload()
            users = [IA_Q] * 32 + [q for q in probe for _ in range(2)]
            ans = generate(m, tok, users, system=system, max_new_tokens=24, batch_size=64, temperature=1.0, seed=0, progress=False)
            fam = get_family(b.family)
            hits = [bool(fam.check(b.params, u, a)) for u, a in zip(users, ans)]
            per[i] = {"trig": recs[i]["rate_triggered"], "untrig": recs[i]["rate_untriggered"],
                      "probe_greedy": recs[i].get("leak_rate"), "ia_q_t1": sum(hits[:32]) / 32,
                      "probe_t1": sum(hits[32:]) / len(hits[32:]),
                      "leaks": [a for a, h in zip(ans, hits) if h][:4]}
        mean = lambda k: round(sum(v[k] for v in per.values()) / len(per), 4)
        out = {"arm": arm, "train": ARMS[arm], "train_s": train_s, "gate_s": round(gate_s, 1),
               "mean": {k: mean(k) for k in ("trig", "untrig", "probe_greedy", "ia_q_t1", "probe_t1")},
               "per_variant": per}
        res_f.write_text(json.dumps(out, indent=1))
        print(arm, out["mean"], "train_s", train_s, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(ARMS))
