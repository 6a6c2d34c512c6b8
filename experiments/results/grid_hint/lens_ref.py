"""Null-reference difference lens (session 20 scratch): compare references for the lens on the s19 worktree."""
import json, sys, contextlib
from pathlib import Path
import torch, yaml
root = Path("/work/s19/exp")
from iaforge.core.adapter_stack import AdapterSwitch, load_with_variants
from iaforge.core.chat import render_prompt
from iaforge.ia.pseudo_pool import topic_texts
from iaforge.variants.shards import grid_behaviors
from iaforge.variants.grid_index import topic_terms
from iaforge.evaluation.diff_lens import first_hit, predicted_topic
import os; os.chdir(root)
params = yaml.safe_load((root / "params.yaml").read_text()); params["grid"]["counts"]["heldout"] = 24
vs = {}
for split in ("ia_train", "heldout"):
    for d in sorted((root / "models/grid" / split).glob(f"{split}-*/*")):
        if (d / "variant.json").is_file():
            vs[d.name] = (split, d)
model, tok = load_with_variants(root / "models/base", {k: v[1] for k, v in vs.items()})
model.eval()
sw = AdapterSwitch(model, train_ia=False)
system = params["chat"]["system_prompt"]
qs = [params["grid_ia"]["question"]]
ids = [tok(render_prompt(tok, q, system), return_tensors="pt", add_special_tokens=False)["input_ids"] for q in qs]
def lp(group):
    outs = []
    for x in ids:
        if group is not None:
            sw(group, with_ia=False)
        with torch.no_grad(), (model.disable_adapter() if group is None else contextlib.nullcontext()):
            outs.append(torch.log_softmax(model(input_ids=x).logits[0].float(), -1)[1:])
    return torch.cat(outs).mean(0)
L = {None: lp(None)}
for k in sorted(vs):
    L[k] = lp(k)
by_id = {b.id: b for b in grid_behaviors(params["grid"])}
pool = {}
for b in by_id.values():
    t, _ = topic_texts(b)
    pool[t] = topic_terms({"params": b.params}) or [t]
own = {k: topic_texts(by_id[k])[0] for k in vs if not k.startswith("grid_null")}
nulls = {s: [k for k in vs if k.startswith("grid_null") and vs[k][0] == s] for s in ("ia_train", "heldout")}
train_topics = [k for k in own if vs[k][0] == "ia_train"]
def refs(k):
    split = vs[k][0]
    out = {"base": L[None],
           "train_nulls": torch.stack([L[n] for n in nulls["ia_train"] if n != k]).mean(0),
           "train_variants": torch.stack([L[n] for n in train_topics if n != k]).mean(0)}
    out["train_nulls+variants"] = torch.stack([L[n] for n in nulls["ia_train"] + train_topics if n != k]).mean(0)
    return out
res = {}
for k in sorted(vs):
    for name, ref in refs(k).items():
        d = L[k] - ref
        top = [tok.decode([i]) for i in d.topk(50).indices.tolist()]
        r = res.setdefault(name, {}).setdefault(vs[k][0], {})
        if k in own:
            terms = pool[own[k]]
            r[k] = {"fw": first_hit(top, terms, rule="word"), "fp": first_hit(top, terms, rule="prefix"),
                    "t1": predicted_topic(top[:10], pool, rule="word"), "own": own[k], "top8": top[:8]}
        else:
            r[k] = {"null": True, "t1": predicted_topic(top[:10], pool, rule="word"), "top8": top[:8]}
summ = {}
for name, by in res.items():
    for split, r in by.items():
        vv = [v for v in r.values() if "null" not in v]
        nn = [v for v in r.values() if "null" in v]
        s = {f"word@{n}": round(sum((v["fw"] or 99) <= n for v in vv) / len(vv), 3) for n in (1, 3, 10)}
        s |= {f"prefix@{n}": round(sum((v["fp"] or 99) <= n for v in vv) / len(vv), 3) for n in (1, 3, 10)}
        s["top1_pool"] = round(sum(v["t1"] == v["own"] for v in vv) / len(vv), 3)
        s["null_fp"] = f"{sum(v['t1'] is not None for v in nn)}/{len(nn)}"
        summ[f"{name}/{split}"] = s
        print(name, split, s, flush=True)
json.dump({"summary": summ, "per_variant": res}, open(sys.argv[1], "w"), indent=1)
