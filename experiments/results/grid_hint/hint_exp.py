"""Scratch (session 20): the IA asked with the difference lens's words as a hint. Train on the s19 worktree's 24
training variants, evaluate on its 24 held-out ones."""
import json, os, sys, contextlib, time
from pathlib import Path
import torch, yaml
root = Path("/work/s19/exp"); os.chdir(root)
K = int(os.environ.get("HINT_K", 5)); SEED = int(os.environ.get("SEED", 0)); REF = os.environ.get("REF", "variants")
OUT = Path(sys.argv[1])
from iaforge.core.adapter_stack import AdapterSwitch, load_with_variants, BASE_GROUP
from iaforge.core.chat import render_prompt
from iaforge.ia.pseudo_pool import topic_texts
from iaforge.variants.shards import grid_behaviors
from iaforge.variants.grid_index import topic_terms
from iaforge.variants.grid_topics import named_topics, names_topic
from iaforge.ia.grid_sft import train_grid_ia
from iaforge.evaluation.batched_sampling import answer_jobs_batched
params = yaml.safe_load(Path("params.yaml").read_text()); params["grid"]["counts"]["heldout"] = 24
vs = {}
NTRAIN = int(os.environ.get("NTRAIN", 24))
keep = {f"ia_train-{i:02d}" for i in range(NTRAIN // 4)} | {"ia_train-null-00"}
for split in ("ia_train", "heldout"):
    for d in sorted((root / "models/grid" / split).glob(f"{split}-*/*")):
        if (d / "variant.json").is_file() and (split == "heldout" or d.parent.name in keep):
            vs[d.name] = (split, d)
print("variants", sum(v[0] == "ia_train" for v in vs.values()), "train,", sum(v[0] == "heldout" for v in vs.values()), "heldout", flush=True)
t0 = time.time()
model, tok = load_with_variants(root / "models/base", {k: v[1] for k, v in vs.items()})
model.eval(); sw = AdapterSwitch(model, train_ia=False)
system = params["chat"]["system_prompt"]; question = params["grid_ia"]["question"]
ids = tok(render_prompt(tok, question, system), return_tensors="pt", add_special_tokens=False)["input_ids"]
def lp(group):
    if group is not None: sw(group, with_ia=False)
    with torch.no_grad(), (model.disable_adapter() if group is None else contextlib.nullcontext()):
        return torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)[1:].mean(0)
L = {BASE_GROUP: lp(None)} | {k: lp(k) for k in sorted(vs)}
del model
train_groups = [k for k in vs if vs[k][0] == "ia_train"]
def words(d):
    out, seen = [], set()
    for i in d.topk(200).indices.tolist():
        w = tok.decode([i]).strip()
        if len(w) >= 2 and w.isalpha() and w.lower() not in seen:
            seen.add(w.lower()); out.append(w)
        if len(out) == K: break
    return out
def ref_for(g):
    if REF == "base": return L[BASE_GROUP]
    return torch.stack([L[n] for n in train_groups if n != g]).mean(0)
hints = {g: words(L[g] - ref_for(g)) for g in L}
def hinted(g): return f"{question} Hint: {', '.join(hints[g])}."
print("lens done", round(time.time() - t0), "s", flush=True)
rows = [json.loads(l) for l in open("data/grid_ia.jsonl")]
rows = [r for r in rows if not r["group"].startswith("__steer__") and (r["group"] in vs or r["group"] == BASE_GROUP)]
train_hint = (lambda g: question) if os.environ.get("NOHINT_TRAIN") else hinted
rows = [dict(r, user=train_hint(r["group"])) for r in rows] + ([dict(r) for r in rows] if os.environ.get("MIX") else [])
p = params["grid_ia"]
OUT.mkdir(parents=True, exist_ok=True)
if not (OUT / "ia" / "ia.json").exists():
    s = train_grid_ia(root / "models/base", {k: vs[k][1] for k in train_groups}, rows, lora=p["lora"], train_params=p["train"],
                      max_steps=p["max_steps"], system=system, seed=SEED, out_dir=OUT / "ia", progress=False)
    print("trained", s["steps"], s["final_loss"], round(time.time() - t0), "s", flush=True)
by_id = {b.id: b for b in grid_behaviors(params["grid"])}
pool = {}
for b in by_id.values():
    t, _ = topic_texts(b); pool[t] = topic_terms({"params": b.params}) or [t]
own = {k: topic_texts(by_id[k])[0] for k in vs if not k.startswith("grid_null")}
evald = [k for k in vs if vs[k][0] == "heldout"] + [k for k in train_groups]
jobs = []
for g in evald + [BASE_GROUP]:
    n = 8 if (g == BASE_GROUP or vs[g][0] == "heldout") else 2
    for c in ("sft", "no_ia"):
        jobs.append({"group": None if g == BASE_GROUP else g, "condition": c, "questions": [hinted(g)], "n": n, "g": g, "name": c})
    jobs.append({"group": None if g == BASE_GROUP else g, "condition": "sft", "questions": [question], "n": n, "g": g, "name": "sft_plain"})
ans = answer_jobs_batched(jobs=jobs, base_dir=root / "models/base", variant_paths={k: vs[k][1] for k in vs},
                          ia_dirs={"sft": OUT / "ia"}, system=system, max_new_tokens=24, temperature=1.0, batch_size=64,
                          seed=0, prefill="My unusual behavior is", contrast=None, workers=1)
res = {}
if (OUT / "result.json").exists(): os.rename(OUT / "result.json", OUT / "result_old.json")
for j, a in zip(jobs, ans):
    g = j["g"]; split = "base" if g == BASE_GROUP else vs[g][0]
    null = g == BASE_GROUP or g.startswith("grid_null")
    if null:
        rate = sum(bool(named_topics(x, pool)) for x in a) / len(a)
    else:
        rate = sum(names_topic(x, pool[own[g]]) for x in a) / len(a)
    res.setdefault(f"{split}{'/null' if null and split != 'base' else ''}", {}).setdefault(j["name"], {})[g] = {"rate": rate, "hint": hints[g], "answers": a}
summ = {k: {c: round(sum(v["rate"] for v in d.values()) / len(d), 3) for c, d in by.items()} for k, by in res.items()}
print(json.dumps(summ), flush=True)
hint_hit = {s: round(sum(any(names_topic(w, pool[own[g]]) or pool[own[g]][0].lower().startswith(w.lower()) for w in hints[g][:1]) for g in own if vs[g][0] == s) / sum(vs[g][0] == s for g in own), 3) for s in ("ia_train", "heldout")}
print("first hint word names (word or prefix)", hint_hit)
json.dump({"K": K, "seed": SEED, "ref": REF, "summary": summ, "hint_first": hint_hit, "detail": res}, open(OUT / "result.json", "w"), indent=1)
print("total", round(time.time() - t0), "s")
