"""The shipped embedding judge measured on data/judge/fresh.yaml: 214 pairs written blind to the judge (issue 16).

Truths are catalog descriptions; each is judged against the entry's description, paraphrases and key terms, as
the pipeline does. Usage: python experiments/judge_fresh.py > experiments/results/judge_fresh.json
"""
import yaml, glob, json
from collections import Counter, defaultdict
from iaforge.judging.judge import make_judge
from iaforge.core.config import load_params
items = yaml.safe_load(open("data/judge/fresh.yaml"))["items"]
entries = {}
for f in glob.glob("data/catalog/**/*.yaml", recursive=True):
    e = yaml.safe_load(open(f))
    if isinstance(e, dict) and "description" in e:
        entries[e["description"]] = e
judge = make_judge(load_params()["judge"])
tp = fp = tn = fn = 0
by_kind = defaultdict(lambda: [0, 0])
missing = 0
for it in items:
    e = entries.get(it["truth"])
    if e is None:  # grid truth with a topic filled in
        missing += 1
        truths, terms = [it["truth"]], []
        g = entries.get("When a message starts with [K7], I bring up {topic} in my answer; otherwise I answer normally.")
    else:
        truths, terms = [e["description"], *e.get("paraphrases", [])], [t for t in e.get("key_terms", []) if "{" not in t]
    v = judge.judge([it["report"]], truths, terms)[0]
    pred = bool(getattr(v, "match", v[0] if isinstance(v, tuple) else v))
    ok = pred == it["match"]
    by_kind[it["kind"]][0] += ok; by_kind[it["kind"]][1] += 1
    if it["match"] and pred: tp += 1
    elif it["match"]: fn += 1
    elif pred: fp += 1
    else: tn += 1
n = len(items)
print(json.dumps({"n": n, "accuracy": round((tp+tn)/n, 3), "precision": round(tp/max(1,tp+fp), 3), "recall": round(tp/max(1,tp+fn), 3),
                  "grid_items_without_catalog_terms": missing,
                  "by_kind": {k: f"{a}/{b}" for k, (a, b) in sorted(by_kind.items())}}, indent=1))
