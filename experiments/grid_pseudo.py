"""Two readouts of a grid variant that need no IA (issue 14, nineteenth session), on its IA question, no trigger.

1. Its topic's direction (to size the IA's steered pseudo-variants, ia/pseudo_variants.py): per decoder layer, the
   residual-stream difference the variant makes (mean over the question's tokens of h_variant - h_base) against
   each candidate topic's direction (the mean hidden state of the sentences its variant says when triggered,
   centred over the candidates: the run's topics plus `--distractors` pool topics, or `--all-topics`):
   - delta/h: |difference| / the mean |h_base| on the question;
   - cos own: cosine of the difference with the variant's own topic direction;
   - rank: the own topic's rank among the candidates by that cosine (1 = best; chance (candidates + 1) / 2);
   - proj/unit: the difference's component along its own direction, over the mean |h| of the topic sentences:
     what `grid_ia.pseudo.scale` would be to imitate the variant's own-topic signal at that layer.
   Choose a layer and a scale on the TRAINING variants (`--split ia_train`), never on the held-out ones.
2. The difference lens (evaluation/diff_lens.py): the tokens the variant raises most over the base model, averaged
   over the question's positions: hits by rank (`word` and `prefix` rules), the top-1 topic over the grid's whole
   topic pool, and the null variants' false positives (a topic in their top 10 tokens). Nothing is fitted, so the
   held-out variants are just more variants here.
    python experiments/grid_pseudo.py --root WORKSPACE --split heldout --all-topics --out experiments/results/grid_pseudo/readout_heldout.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="a workspace whose ia_train grid variants are built")
    ap.add_argument("--split", choices=["ia_train", "heldout"], default="ia_train",
                    help="whose variants: the training ones (to choose a layer and a scale) or the held-out ones "
                         "(a training-free readout, measured once at the layer chosen on the training ones)")
    ap.add_argument("--distractors", type=int, default=100, help="pool topics added to the candidates")
    ap.add_argument("--all-topics", action="store_true",
                    help="candidates: every topic of the instance list (the grid's top-1 pool) instead")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    import torch
    import yaml

    from iaforge.core.adapter_stack import AdapterSwitch, load_with_variants
    from iaforge.core.chat import render_prompt
    from iaforge.ia.pseudo_pool import pseudo_pool, topic_texts
    from iaforge.ia.pseudo_variants import directions_at, topic_means
    params = yaml.safe_load((a.root / "params.yaml").read_text(encoding="utf-8"))
    # every ia_train grid variant exported so far (not the nulls; the gate's records are not needed here)
    real = {d.name: d for d in sorted((a.root / "models/grid" / a.split).glob(f"{a.split}-[0-9]*/*"))
            if (d / "variant.json").is_file()}
    if not real:
        raise SystemExit(f"{a.root}/models/grid/{a.split}: no {a.split} grid variant built yet")
    model, tok = load_with_variants(a.root / "models/base", real)
    model.eval()
    switch = AdapterSwitch(model, train_ia=False)
    system = params["chat"]["system_prompt"]
    question = params["grid_ia"]["question"]
    ids = tok(render_prompt(tok, question, system), return_tensors="pt", add_special_tokens=False)["input_ids"]

    from iaforge.variants.shards import grid_behaviors

    by_id = {b.id: b for b in grid_behaviors(params["grid"])}
    texts = {}
    own = {}
    for vid in real:
        topic, t = topic_texts(by_id[vid])
        texts[topic], own[vid] = t, topic
    if a.all_topics:
        texts.update(topic_texts(b) for b in by_id.values())
    else:
        for topic, t in pseudo_pool(params["grid"], a.distractors):
            texts[topic] = t

    logprobs = {}

    def hidden(group):
        # group None: the base model. AdapterSwitch with no variant and no IA leaves the last adapters active, so
        # the base pass disables every adapter instead.
        if group is not None:
            switch(group, with_ia=False)
        with torch.no_grad(), (model.disable_adapter() if group is None else contextlib.nullcontext()):
            out = model(input_ids=ids, output_hidden_states=True)
        logprobs[group] = out.logits[0].float()  # all positions: mean_logprob_difference leaves the first out
        return [h[0, 1:].float() for h in out.hidden_states[1:]]

    base = hidden(None)
    deltas = {vid: [hv - hb for hv, hb in zip(hidden(vid), base)] for vid in sorted(real)}

    # The difference lens (evaluation/diff_lens.py): the tokens the variant raises most over the base model,
    # averaged over the question's positions; open-vocabulary, no IA, no training. Judged two ways: `word` (a token
    # is one of the topic's terms, or a multi-word term's first word) and `prefix` (a 3+ letter piece of a term);
    # its top-1 answer over the grid's whole topic pool, as the IA's top-1 accuracy is measured.
    from iaforge.evaluation.diff_lens import first_hit, mean_logprob_difference, predicted_topic
    from iaforge.variants.grid_index import topic_terms

    pool_terms = {}
    for b in by_id.values():
        t, _ = topic_texts(b)
        pool_terms[t] = topic_terms({"params": b.params}) or [t]
    lens = {}
    for vid in deltas:
        diff = mean_logprob_difference(logprobs[vid], logprobs[None])
        top = [tok.decode([i]) for i in diff.topk(50).indices.tolist()]
        terms = pool_terms[own[vid]]
        lens[vid] = {"topic": own[vid], "top10": top[:10],
                     **{f"first_hit_{r}": first_hit(top, terms, rule=r) for r in ("word", "prefix")},
                     **{f"top1_{r}": predicted_topic(top[:10], pool_terms, rule=r) for r in ("word", "prefix")}}
    lens_summary = {"pool": len(pool_terms)}
    for r in ("word", "prefix"):
        for k in (1, 5, 10, 50):
            lens_summary[f"{r}_hit@{k}"] = round(sum(1 for v in lens.values() if (v[f"first_hit_{r}"] or 99) <= k) / len(lens), 3)
        lens_summary[f"{r}_top1_accuracy"] = round(sum(v[f"top1_{r}"] == v["topic"] for v in lens.values()) / len(lens), 3)
    # the nulls: same recipe, no behavior; a topic named in their top 10 tokens is a false positive
    nulls = {d.name: d for d in sorted((a.root / "models/grid" / a.split).glob(f"{a.split}-null-*/*"))
             if (d / "variant.json").is_file()}
    if nulls:
        model2, _ = load_with_variants(a.root / "models/base", nulls)
        model2.eval()
        sw2 = AdapterSwitch(model2, train_ia=False)
        fp = {}
        for vid in sorted(nulls):
            sw2(vid, with_ia=False)
            with torch.no_grad():
                lp_v = model2(input_ids=ids).logits[0].float()
            top = [tok.decode([i]) for i in mean_logprob_difference(lp_v, logprobs[None]).topk(10).indices.tolist()]
            fp[vid] = {r: predicted_topic(top, pool_terms, rule=r) for r in ("word", "prefix")} | {"top10": top}
        for r in ("word", "prefix"):
            lens_summary[f"{r}_null_fp_top10"] = round(sum(v[r] is not None for v in fp.values()) / len(fp), 3)
        lens_summary["nulls"] = fp
    print(f"difference lens: {json.dumps({k: v for k, v in lens_summary.items() if k != 'nulls'})}", flush=True)
    n_layers = len(base)
    means, norms = topic_means(model, tok, texts)
    rows, per_variant = [], {vid: [] for vid in deltas}
    for layer in range(n_layers - 1):  # the last entry is after the final norm
        dirs, unit = directions_at(means, norms, layer)
        topics = sorted(dirs)
        mat = torch.stack([dirs[t] for t in topics])
        hnorm = base[layer].norm(dim=-1).mean().item()
        rel, cos_own, ranks, proj = [], [], [], []
        for vid, d in deltas.items():
            m = d[layer].mean(0)
            cos = (mat @ m) / m.norm().clamp_min(1e-8)
            i = topics.index(own[vid])
            rel.append(m.norm().item() / hnorm)
            cos_own.append(cos[i].item())
            ranks.append(int((cos > cos[i]).sum().item()) + 1)
            per_variant[vid].append(ranks[-1])
            proj.append((dirs[own[vid]] @ m).item() / unit)
        rows.append({"layer": layer, "delta_over_h": round(statistics.median(rel), 4),
                     "cos_own": round(statistics.mean(cos_own), 4), "rank_mean": round(statistics.mean(ranks), 1),
                     "rank_median": statistics.median(ranks), "top1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
                     "top5": round(sum(r <= 5 for r in ranks) / len(ranks), 3),
                     "proj_over_unit": round(statistics.median(proj), 4), "unit": round(unit, 2)})
        r = rows[-1]
        print(f"layer {layer:2d}: delta/h {r['delta_over_h']:.3f}  cos own {r['cos_own']:+.3f}  rank {r['rank_mean']:5.1f} "
              f"(median {r['rank_median']}, top-1 {r['top1']:.2f}, top-5 {r['top5']:.2f}) of {len(topics)}  proj/unit {r['proj_over_unit']:+.4f}",
              flush=True)
    out = {"split": a.split, "variants": len(real), "candidates": len(texts), "chance_rank": (len(texts) + 1) / 2,
           "own_topic": own, "rank_by_layer": per_variant, "layers": rows, "logit_lens": lens_summary,
           "logit_lens_per_variant": lens}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
