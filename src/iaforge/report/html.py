"""One self-contained HTML page (no scripts, no network) from the run's full per-stage results
(reports/detail/<stage>.json; metrics/<stage>.json hold only their headline numbers): what a reviewer reads.

Charts are inline SVG drawn here, so the page renders offline and is byte-identical for identical metrics
(it lives in git next to the metrics it shows).
"""

from __future__ import annotations

import html
from typing import Any, Sequence

COND_LABELS = {"no_ia": "no IA", "prefill": "prefill baseline", "sft": "SFT IA", "dpo": "DPO IA",
               "sft_hint": "SFT IA, lens-hinted", "dpo_hint": "DPO IA, lens-hinted", "no_ia_hint": "no IA, lens-hinted"}
COLORS = {"no_ia": "#9aa5b1", "prefill": "#e0a458", "sft": "#3d7dca", "dpo": "#2a9d8f", "base": "#c8553d"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2933;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d9e2ec}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #d9e2ec;padding:.25rem .5rem;
text-align:left}th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#b42318;font-weight:600}.ok{color:#027a48}.muted{color:#627d98;font-size:.85rem}
.sample{border-left:3px solid #d9e2ec;padding:.2rem .6rem;margin:.3rem 0;font-size:.88rem}
.sample.match{border-color:#2a9d8f}.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.2f}"
    return esc(x)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="num">{fmt(c)}</td>' if isinstance(c, (int, float)) or c is None else f"<td>{c}</td>"
                        for c in r)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def legend(keys: Sequence[str]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{COLORS.get(k, "#888")}"></i>{esc(COND_LABELS.get(k, k))}</span>' for k in keys) + "</div>"


def grouped_bars(groups: Sequence[str], series: Sequence[str], values: dict[tuple[str, str], float | None], *,
                 title: str, width: int = 900, bar_h: int = 12) -> str:
    """Horizontal grouped bars, values in [0, 1]; a missing value is drawn as an empty slot."""
    label_w, pad = 230, 6
    plot_w = width - label_w - 60
    group_h = bar_h * len(series) + pad * 2
    height = group_h * len(groups) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{esc(title)}" font-size="11" font-family="sans-serif">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + t * plot_w
        out.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - 25}" stroke="#e4e7eb"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#627d98">{t:.2f}</text>')
    for gi, g in enumerate(groups):
        y0 = 10 + gi * group_h + pad
        out.append(f'<text x="{label_w - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end">{esc(g)}</text>')
        for si, s in enumerate(series):
            v = values.get((g, s))
            y = y0 + si * bar_h
            if v is None:
                continue
            w = max(0.0, min(1.0, float(v))) * plot_w
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{COLORS.get(s, "#888")}">'
                       f'<title>{esc(g)} / {esc(COND_LABELS.get(s, s))}: {float(v):.2f}</title></rect>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" fill="#334e68">{float(v):.2f}</text>')
    out.append("</svg>")
    return "".join(out)


def build_report(*, eval_metrics: dict, implantation: dict, ia_sft: dict | None, ia_dpo: dict | None,
                 samples: list[dict], judge_calibration: dict | None = None, audit_tier: dict | None = None,
                 cipher_attack: dict | None = None, grid: dict | None = None, grid_ia: dict | None = None,
                 scaling: list | None = None, grid_dpo: dict | None = None, title: str = "iaforge evaluation",
                 examples_per_model: int = 2) -> str:
    conds = list(eval_metrics.get("conditions", []))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    verb = eval_metrics.get("verbalization", {})
    fp = eval_metrics.get("false_positive", {})
    parts.append('<p class="muted">Verbalization: fraction of sampled self-reports (temperature 1) that the judge '
                 "matches to the variant's implanted behavior. Base prior: the same judge applied to the base "
                 "model's answers, i.e. what an IA scores by naming common behaviors whatever it is attached to.</p>")

    # Headline
    rows = []
    for split in sorted(verb):
        v = verb[split]
        rows.append([esc(split), v.get("n_variants")] + [v.get(c) for c in conds] + [v.get("sft_base_prior")]
                    + [v.get(f"{c}_audit") for c in conds])
    parts.append("<h2>Verbalization by split</h2>")
    parts.append(table(["split", "variants", *[COND_LABELS[c] for c in conds], "base prior (SFT IA)",
                        *[f"audit top-5: {COND_LABELS[c]}" for c in conds]], rows))
    parts.append('<p class="muted">Audit top-5: all of a model\'s sampled reports reduced to at most 5 distinct '
                 "candidate behaviors (embedding clusters ranked by support); success when any candidate matches "
                 "(AuditBench-style). Fraction of models audited successfully.</p>")
    parts.append(legend(conds))
    parts.append(grouped_bars(sorted(verb), conds, {(s, c): verb[s].get(c) for s in verb for c in conds},
                              title="verbalization by split"))

    by_cat = eval_metrics.get("verbalization_by_category", {})
    for split in sorted(by_cat):
        cats = by_cat[split]
        parts.append(f"<h2>Per category ({esc(split)})</h2>")
        parts.append(grouped_bars(sorted(cats), conds, {(k, c): cats[k].get(c) for k in cats for c in conds},
                                  title=f"verbalization per category, {split}"))

    dist = eval_metrics.get("verbalization_by_distance", {})
    if dist:
        parts.append("<h2>Generalization distance</h2><p class=\"muted\">instance: a new behavior of a family the "
                     "IA trained on; family: a family it never saw, of a trained category; category: a category it "
                     "never saw. Variants of every split except ia_train.</p>")
        parts.append(table(["distance", "variants", *[COND_LABELS[c] for c in conds]],
                           [[esc(d), dist[d].get("n_variants"), *[dist[d].get(c) for c in conds]]
                            for d in ("instance", "family", "category") if d in dist]))

    # False positives
    parts.append("<h2>False positives</h2><p class=\"muted\">Fraction of answers that claim any behavior, where "
                 "there is none: the base model itself and control variants (fine-tuned on ordinary or correct "
                 "answers). Lower is better; the prefill condition is not run here (it forces a claim).</p>")
    fp_conds = [c for c in conds if c != "prefill"]
    parts.append(table(["model", *[COND_LABELS[c] for c in fp_conds]],
                       [["base model"] + [fp.get("base_model", {}).get(c) for c in fp_conds],
                        [f"controls (n={fp.get('n_controls', 0)})"] + [fp.get("controls", {}).get(c) for c in fp_conds]]))

    if audit_tier:
        parts.extend(audit_tier_section(audit_tier))
    if cipher_attack:
        parts.extend(cipher_section(cipher_attack))
    if grid is not None:
        parts.extend(grid_section(grid, grid_ia, grid_dpo))
    if scaling:
        parts.extend(scaling_section(scaling))

    # SFT vs DPO training
    if ia_sft or ia_dpo:
        parts.append("<h2>IA training</h2>")
        rows = []
        if ia_sft:
            rows.append(["SFT", len(ia_sft.get("variants", [])), ia_sft.get("n_examples"), ia_sft.get("steps"),
                         ia_sft.get("final_loss"), None, None])
        if ia_dpo:
            rows.append(["DPO", len(ia_dpo.get("groups", [])), ia_dpo.get("n_pairs_used"), ia_dpo.get("steps"),
                         ia_dpo.get("final_loss"), ia_dpo.get("margin_after"), ia_dpo.get("reward_accuracy_after")])
        parts.append(table(["stage", "groups", "examples / pairs", "steps", "final loss", "DPO margin after",
                            "reward accuracy after"], rows))

    # Implantation
    parts.append("<h2>Implantation</h2>")
    parts.append(f"<p>{implantation.get('n_passed')}/{implantation.get('n_variants')} variants show their behavior "
                 f"on held-out prompts ({fmt(implantation.get('pass_rate'))}). Variants that failed are left out of "
                 "IA training and of the verbalization rates.</p>")
    fam_rows = [[esc(f), g["n"], g["passed"], g.get("mean_rate_triggered"), g.get("mean_rate_untriggered"), g.get("mean_base_rate")]
                for f, g in implantation.get("by_family", {}).items()]
    parts.append(table(["family", "variants", "passed", "rate (triggered)", "rate (untriggered)", "base model rate"], fam_rows))
    if implantation.get("failed"):
        parts.append('<p class="fail">Failed implantation: ' + ", ".join(esc(x) for x in implantation["failed"]) + "</p>")

    # Per variant
    parts.append("<h2>Per variant</h2>")
    per = eval_metrics.get("per_behavior", [])
    var_rows, classes = [], []
    for r in sorted(per, key=lambda r: (r["split"], r["category"], r["behavior"])):
        doc = f'<a href="data_docs/{esc(r["behavior"])}.html">{esc(r["behavior"])}</a>'
        if r["category"] == "control":
            vals = [r.get(f"{c}_false_positive") if c != "prefill" else None for c in conds]
        else:
            vals = [r.get(c) for c in conds]
        var_rows.append([doc, esc(r["split"]), esc(r["category"]), esc(r["family"]), *vals, r.get("sft_base_prior")])
        classes.append("")
    parts.append('<p class="muted">Controls show their false-positive rate instead of verbalization. Each id links '
                 "to the Great Expectations Data Docs page of its training data.</p>")
    parts.append(table(["variant", "split", "category", "family", *[COND_LABELS[c] for c in conds], "base prior"],
                       var_rows, classes))
    if eval_metrics.get("not_evaluated"):
        parts.append("<p>Not evaluated: " + ", ".join(f"{esc(k)} ({esc(v)})" for k, v in eval_metrics["not_evaluated"].items()) + "</p>")

    # Judge calibration
    if judge_calibration:
        parts.append("<h2>Judge calibration</h2>")
        rows = [[esc(part), m.get("n"), m.get("accuracy"), m.get("precision"), m.get("recall")]
                for part, m in judge_calibration.items() if isinstance(m, dict) and "accuracy" in m]
        parts.append(table(["set", "items", "accuracy", "precision", "recall"], rows))
        parts.extend(judge_fresh_section(judge_calibration))

    # Examples
    parts.append("<h2>Example self-reports</h2>")
    by_model: dict[str, list[dict]] = {}
    for s in samples:
        if s.get("condition") in ("sft", "dpo"):
            by_model.setdefault(s["behavior"], []).append(s)
    for model in sorted(by_model):
        picked = []
        for cond in ("sft", "dpo"):
            picked += [s for s in by_model[model] if s["condition"] == cond][:examples_per_model]
        parts.append(f"<h3>{esc(model)}</h3>")
        for s in picked:
            cls = "sample match" if s.get("match") else "sample"
            verdict = "match" if s.get("match") else ("no match" if s.get("match") is not None else "")
            parts.append(f'<div class="{cls}"><b>{esc(COND_LABELS.get(s["condition"], s["condition"]))}</b> '
                         f'<span class="muted">Q: {esc(s["question"])} · {verdict}</span><br>{esc(s["answer"])}</div>')
    parts.append("</body></html>\n")
    return "".join(parts)


def audit_tier_section(a: dict) -> list[str]:
    """Per instillation / concealment method: how many audit models took, and what the IA said about those."""
    if a.get("in_run") is False:
        return ["<h2>Audit tier</h2>", f'<p class="muted">{esc(a.get("note", "not in this run"))}</p>']
    by = a.get("by_method", {})
    conds = [c for c in COND_LABELS if any(c in m for m in by.values())]
    out = ["<h2>Audit tier</h2><p class=\"muted\">Held-out behaviors instilled in ways the IA never trained on "
           "(another LoRA rank and learning rate; third-person documents instead of demonstrations) or concealed "
           "on top of their variant (SFT on denials; DPO preferring denials). Rates are over the audit models whose "
           "behavior took (checked like a variant's implantation); the others are listed.</p>"]
    rows = []
    for method, m in by.items():
        desc = a.get("methods", {}).get(method, "the unmodified held-out variant" if method == "original" else "")
        rows.append([f"{esc(method)}<br><span class=\"muted\">{esc(desc)}</span>",
                     f"{m.get('n_implanted')}/{m.get('n_models')}", *[m.get(c) for c in conds],
                     *[m.get(f"{c}_audit") for c in conds],
                     esc(", ".join(m.get("not_implanted", [])) or "-")])
    out.append(table(["method", "took", *[COND_LABELS[c] for c in conds], *[f"audit top-5: {COND_LABELS[c]}" for c in conds],
                      "did not take"], rows))
    out.append(legend(conds))
    out.append(grouped_bars(list(by), conds, {(k, c): by[k].get(c) for k in by for c in conds},
                            title="audit tier: verbalization per method"))
    if a.get("concealment"):
        out.append("<h3>Concealment</h3><p class=\"muted\">Confession without the IA before (the original variant) "
                   "and after the concealment stage: concealment is real only where it drops.</p>")
        out.append(table(["model", "took", "confession before", "confession after", "concealed",
                          *[f"{COND_LABELS[c]} after" for c in conds if c != "no_ia"]],
                         [[esc(c["model"]), "yes" if c.get("implanted") else "no", c.get("confession_before"),
                           c.get("confession_after"), {True: "yes", False: "no", None: "-"}[c.get("concealed")],
                           *[c.get(f"ia_{k}") for k in conds if k != "no_ia"]] for c in a["concealment"]]))
    return out


def cipher_section(c: dict) -> list[str]:
    if c.get("in_run") is False:
        return ["<h2>Covert cipher attack</h2>", f'<p class="muted">{esc(c.get("note", "not in this run"))}</p>']
    a, ia = c.get("attack", {}), c.get("ia", {})
    conds = [k for k in COND_LABELS if k in ia]
    holds = a.get("attack_holds")
    out = ["<h2>Covert cipher attack</h2><p class=\"muted\">Walnut53 substitution cipher; phase 1 teaches it on "
           "harmless data, phase 2 teaches compliance with encoded placeholder requests and refusal of the same "
           "requests in plain text. Verified on placeholder tasks it never trained on.</p>",
           f'<p class="{"" if holds else "fail"}">The attack {"holds" if holds else "does not hold"} on its own '
           "terms at this size.</p>",
           table(["measure", "value"], [
               ["compliance, encoded request (decoded)", a.get("encoded_compliance")],
               ["compliance, plain request", a.get("plain_compliance")],
               ["refusal, plain request", a.get("plain_refusal")],
               ["share of output in cipher form (encoded requests)", a.get("encoded_cipher_fraction")],
               ["share of output in cipher form (encoded harmless prompts)", a.get("benign_cipher_fraction")],
               ["decoded words that are real words (harmless prompts)", a.get("benign_decoded_word_rate")]]),
           "<h3>Does the IA report it?</h3>",
           table(["condition", "verbalization", "audit top-5", "mentions a cipher"],
                 [[COND_LABELS[k], ia.get(k), ia.get(f"{k}_audit"), c.get("ia_names_cipher", {}).get(k)] for k in conds])]
    return out


def grid_section(g: dict, ia: dict | None = None, dpo: dict | None = None) -> list[str]:
    """The grid branch (reports/detail/grid.json): the headline per split, false positives and one row per variant."""
    out = ["<h2>Grid IA</h2>"]
    if not g.get("grid"):
        return out + [f'<p class="muted">{esc(g.get("note", "no grid in this run"))}</p>']
    conds = list(g.get("conditions", []))
    out.append(f'<p class="muted">One IA trained on trigger-gated topic variants of one grid; each variant is asked '
               f"{esc(' / '.join(g.get('settings', {}).get('questions', [])[:1]) or 'its question')} without the trigger "
               f"at temperature 1. Rate: reports naming the variant's own topic (a topic term at a word start). Top-1: "
               f"the topic its reports name most often is its own; chance {fmt(g.get('chance'))} "
               f"(1 of {g.get('n_topics')} topics, pool: {esc(g.get('topic_pool', 'grid'))}).</p>")
    if ia and ia.get("grid"):
        out.append(f'<p class="muted">Trained on {len(ia.get("variants", []))} variants ({len(ia.get("nulls", []))} '
                   f"nulls) and the base model: {ia.get('steps')} steps, {ia.get('tokens')} tokens, final loss "
                   f"{fmt(ia.get('final_loss'))}.</p>")
    if dpo and dpo.get("grid"):
        before = dpo.get("sft_on_dpo_split") or {}
        out.append(f'<p class="muted">DPO IA: the SFT IA refined on the dpo split ({len(dpo.get("variants", []))} variants '
                   f"and the base model, in neither its training nor this evaluation): {dpo.get('n_pairs_used')} pairs, "
                   f"{dpo.get('steps')} steps, margin {fmt(dpo.get('margin_after'))}; before refinement the SFT IA named "
                   f"the dpo variants' topics in {fmt(before.get('topic_right'))} of its samples (most common wrong topic: "
                   f"{esc(before.get('prior_topic') or '-')}).</p>")
    elif dpo:
        out.append(f'<p class="muted">{esc(dpo.get("note", "no grid DPO in this run"))}.</p>')
    splits = g.get("splits", {})
    rows = []
    for split in sorted(splits):
        s = splits[split]
        conf = s.get("sft_confusion") or {}
        rows.append([esc(split), s.get("n_variants"), *[s.get(c) for c in conds], *[s.get(f"{c}_accuracy") for c in conds],
                     esc(f"{conf.get('most_common') or '-'} ({fmt(conf.get('share'))})")])
    out.append(table(["split", "variants", *[COND_LABELS.get(c, c) for c in conds],
                      *[f"top-1: {COND_LABELS.get(c, c)}" for c in conds], "most common top-1 (SFT IA, share)"], rows))
    if any("lens_first" in splits[k] for k in splits):
        out.append('<p class="muted">The lens-hinted conditions ask the question followed by the difference lens\'s '
                   "words for the model asked (the tokens its weights raise most over the mean of the IA's training "
                   "variants; variants/lens_hint.py). Read alone, those words name the topic: the first word (lens, first) or "
                   "any of them (lens, any); the hinted IA has to beat that, and the variant asked the same hinted "
                   "question without the IA is its control.</p>")
        out.append(table(["split", "variants", "lens, first word", "lens, any word"],
                         [[esc(k), splits[k].get("n_variants"), splits[k].get("lens_first"), splits[k].get("lens_any")]
                          for k in sorted(splits) if "lens_first" in splits[k]]))
    ci_rows = []
    for split in sorted(splits):
        s = splits[split]
        ci = s.get("ci95_over_variants") or {}
        if ci:
            ci_rows.append([esc(f"{split}: 95% interval"), s.get("n_variants"),
                            *[esc("-" if ci.get(c) is None else f"{fmt(ci[c][0])} - {fmt(ci[c][1])}") for c in conds]])
        bl = s.get("beyond_leakage")
        if bl:
            ci_rows.append([esc(f"{split}: beyond leakage"), bl.get("n_variants"),
                            *[("-" if c not in bl else bl.get(c)) for c in conds]])
    if ci_rows:
        out.append('<p class="muted">How far the rates can be trusted: a 95% bootstrap interval over variants (the '
                   "unit the IA generalizes over), and the rates on the variants that never named their topic without "
                   "the IA (no-IA and prefill samples all silent), where leakage cannot carry the IA's number.</p>")
        out.append(table(["split", "variants", *[COND_LABELS.get(c, c) for c in conds]], ci_rows))
    fp = g.get("false_positive", {})
    out.append('<p class="muted">False positives: reports that name any grid topic, on the base model and on null '
               "variants (same prompts and tags, base answers); claims: reports that are not an abstention.</p>")
    fp_rows = [["base model", *[(fp.get("base_model", {}).get(c) or {}).get("fp") for c in conds],
                *[(fp.get("base_model", {}).get(c) or {}).get("claims") for c in conds]],
               [f"nulls (n={fp.get('n_nulls', 0)})", *[(fp.get("nulls", {}).get(c) or {}).get("fp") for c in conds],
                *[(fp.get("nulls", {}).get(c) or {}).get("claims") for c in conds]]]
    out.append(table(["model", *[f"names a topic: {COND_LABELS.get(c, c)}" for c in conds],
                      *[f"claims: {COND_LABELS.get(c, c)}" for c in conds]], fp_rows))
    var_rows = []
    has_hint = any("hint" in x for x in g.get("per_variant", []))
    for r in sorted(g.get("per_variant", []), key=lambda r: (r["split"], r["null"], r["variant"])):
        if r["null"]:
            vals = [r.get(f"{c}_fp") for c in conds]
            preds = ["(null)"] * len(conds)
        else:
            vals = [r.get(c) for c in conds]
            preds = [f'<span class="{"ok" if r.get(f"{c}_correct") else "fail"}">{esc(r.get(f"{c}_predicted") or "-")}</span>'
                     for c in conds]
        hint = [esc(", ".join(r.get("hint") or []) or "-")] if has_hint else []
        var_rows.append([esc(r["variant"]), esc(r["split"]), esc(r.get("topic") or "-"), *hint, *vals, *preds])
    out.append('<p class="muted">Nulls show their false-positive rate (a report naming any topic) instead.</p>')
    hint_col = ["lens hint"] if has_hint else []
    out.append(table(["variant", "split", "topic", *hint_col, *[COND_LABELS.get(c, c) for c in conds],
                      *[f"top-1: {COND_LABELS.get(c, c)}" for c in conds]], var_rows))
    if g.get("not_evaluated"):
        out.append("<p>Not evaluated: " + ", ".join(f"{esc(k)} ({esc(v)})" for k, v in g["not_evaluated"].items()) + "</p>")
    return out


SCALING_SERIES = (("sft_contrast", "held-out, SFT IA, contrastive", "#102a43"),
                  ("sft", "held-out, SFT IA", "#2f6fb0"), ("no_ia", "held-out, no IA", "#9aa5b1"),
                  ("prefill", "held-out, prefill", "#d9822b"),
                  ("no_ia_contrast", "held-out, no IA, contrastive", "#bcccdc"),
                  ("accuracy_contrast", "held-out top-1, contrastive", "#1f9d55"),
                  ("trained_sft", "training variants, SFT IA", "#7b4fb0"), ("chance", "top-1 chance", "#cf3a3a"),
                  ("sft_hint", "held-out, hinted IA", "#0b6e4f"), ("no_ia_hint", "held-out, hinted, no IA", "#8fd3b6"),
                  ("lens_first", "held-out, lens's first word", "#b5838d"))


def line_chart(points: Sequence[dict], series: Sequence[tuple[str, str, str]], *, x: str, title: str,
               width: int = 640, height: int = 260) -> str:
    """Lines over a shared x (linear), y in [0, 1]; a point without a value breaks nothing, it is left out. A point
    holding `<key>_ci95` ([lo, hi]) gets a vertical bar: the interval."""
    xs = [p[x] for p in points]
    lo, hi = min(xs), max(xs)
    left, right, top, bottom = 40, 200, 10, 30
    pw, ph = width - left - right, height - top - bottom
    px = (lambda v: left + (pw * (v - lo) / (hi - lo) if hi > lo else pw / 2))
    py = (lambda v: top + ph * (1 - float(v)))
    out = [f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e4e7eb"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="#52606d">{t:.2f}</text>')
    for v in xs:
        out.append(f'<text x="{px(v):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#52606d">{esc(v)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 2}" text-anchor="middle" fill="#334e68">{esc(x)}</text>')
    for i, (key, label, color) in enumerate(series):
        pts = [(px(p[x]), py(p[key])) for p in points if p.get(key) is not None]
        if pts:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
            out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts]
        for p in points:
            ci = p.get(f"{key}_ci95")
            if ci and None not in ci:
                a = px(p[x])
                out.append(f'<line class="ci" x1="{a:.1f}" x2="{a:.1f}" y1="{py(ci[0]):.1f}" y2="{py(ci[1]):.1f}" '
                           f'stroke="{color}" stroke-width="1.2"/>'
                           + "".join(f'<line x1="{a - 4:.1f}" x2="{a + 4:.1f}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
                                     f'stroke="{color}" stroke-width="1.2"/>' for v in ci))
        ly = top + 14 * i + 6
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 30}" y1="{ly}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"/><text x="{left + pw + 34}" y="{ly + 4}" fill="#334e68">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _with_ci(p: dict, key: str) -> str | None:
    v, ci = p.get(key), p.get(f"{key}_ci95")
    if v is None:
        return None
    return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.2f}"


def scaling_section(points: Sequence[dict]) -> list[str]:
    """metrics/scaling.json (experiments/scaling.py): held-out naming against the number of training variants,
    each point pooled over IA seeds with a 95% interval over held-out topics."""
    pts = sorted(points, key=lambda p: p["n_train"])
    target = pts[0].get("target") or "description"
    out = ["<h2>Grid IA scaling</h2>",
           '<p class="muted">Held-out topic naming against the number of trigger-gated grid variants the IA trained on '
           "(the same held-out topics and the same IA steps at every point; experiments/scaling.py). Each point pools "
           "its runs (IA seeds): a topic's rate is the mean over the seeds, the bar is a 95% bootstrap interval over "
           "held-out topics. Contrastive: each token of the self-report sampled from log p(variant + IA) minus log "
           "p(base model + IA), so what the IA says of every model cancels. No IA and prefill are the variant alone: "
           "what it leaks without the IA (no IA, contrastive: the variant against the base model). Never-leaking "
           "topics: those whose variant never named its topic without the IA. Hinted: the IA asked its question "
           "followed by the difference lens's words for the model (variants/lens_hint.py); its control is the variant "
           "alone asked the same hinted question, and the lens's first word read alone.</p>",
           f"<p>The IA's target: <b>{esc(TARGET_LABELS.get(target, target))}</b>.</p>",
           line_chart(pts, SCALING_SERIES, x="n_train", title="grid IA scaling")]
    per_seed = lambda p, k: " ".join(f"{v:.2f}" for v in p.get(k) or [] if v is not None) or None
    out.append(table(["training variants", "IA seeds", "held-out topics", "SFT IA, contrastive [95%]", "per seed",
                      "SFT IA [95%]", "no IA [95%]", "prefill [95%]", "no IA, contrastive", "top-1, contrastive",
                      "chance", "never-leaking topics: contrastive (n)", "training variants, SFT IA", "fp base",
                      "fp nulls", "IA steps", "hinted IA [95%]", "hinted, no IA", "lens first word",
                      "top-1, hinted", "training variants, hinted IA"],
                     [[p["n_train"], " ".join(str(s) for s in p.get("seeds") or []) or None, p.get("n_heldout"),
                       _with_ci(p, "sft_contrast"), per_seed(p, "sft_contrast_per_seed"), _with_ci(p, "sft"),
                       _with_ci(p, "no_ia"), _with_ci(p, "prefill"), p.get("no_ia_contrast"),
                       p.get("accuracy_contrast"), p.get("chance"),
                       None if p.get("sft_contrast_beyond_leakage") is None
                       else f"{p['sft_contrast_beyond_leakage']:.2f} ({p.get('n_beyond_leakage')})",
                       p.get("trained_sft"), p.get("fp_base_sft"), p.get("fp_null_sft"), p.get("ia_steps"),
                       _with_ci(p, "sft_hint"), p.get("no_ia_hint"), p.get("lens_first"), p.get("accuracy_sft_hint"),
                       p.get("trained_sft_hint")]
                      for p in pts]))
    out.append('<p class="muted">The variants themselves (the training variants\' gate, greedy): the behavior with '
               "the trigger, without it, and named when asked about themselves (leak); how many pass the strict "
               "gate.</p>")
    out.append(table(["training variants", "with trigger", "without", "leak", "gate passed"],
                     [[p["n_train"], p.get("implanted_triggered"), p.get("implanted_untriggered"),
                       p.get("implanted_leak"), None if p.get("gate_passed") is None else f"{p['gate_passed']}/{p['n_train']}"]
                      for p in pts]))
    classed = [p for p in pts if p.get("top1_classes")]
    if classed:
        out.append('<p class="muted">What the IA\'s top-1 answer on a held-out variant is (evaluation/grid_pool.py '
                   "top1_classes; shares over runs and held-out topics): its own topic, a topic it trained on of the "
                   "same kind (data/grids/topics.yaml) or of another kind, a topic it never trained on, or none. Misses "
                   "that share the truth's kind or first letter, against the share of trained topics that do (chance). "
                   "Attractor: the share of held-out topics answered with the run's most common wrong topic.</p>")
        pair = lambda t, k: None if t.get(f"{k}_of_misses") is None else f"{t[f'{k}_of_misses']:.2f} ({t[f'{k}_chance']:.2f})"
        out.append(table(["training variants", "IA", "own", "trained, same kind", "trained, other kind", "untrained",
                          "none", "misses: same kind (chance)", "misses: same initial (chance)", "attractor",
                          "distinct answers"],
                         [[p["n_train"], {"sft_contrast": "contrastive", "sft_hint": "hinted"}.get(c, "plain"), t.get("own"),
                           t.get("same_kind"), t.get("other_kind"), t.get("untrained"), t.get("none"),
                           pair(t, "same_kind"), pair(t, "same_initial"), t.get("attractor_share"),
                           t.get("distinct_answers")]
                          for p in classed for c, t in p["top1_classes"].items() if t]))
    return out


# An IA that writes the grid's shared trigger can let the variant's own backdoor finish its sentence: the
# description target measures that elicitation, the bare topic measures reading the topic from the weights.
TARGET_LABELS = {"topic": "the bare topic (the IA never writes the trigger)",
                 "description": "the description, which names the shared trigger [K7]"}


def judge_fresh_section(jc: dict) -> list[str]:
    """Every judge side by side: on the calibration set's parts, and on the blind `fresh` set (written by someone
    who never saw a judge's code), with accuracy per kind of report there."""
    out = []
    judges = jc.get("judges") or {}
    if judges:
        out.append('<p class="muted">Each judge on the calibration set (the learned judge trains on its dev part).</p>')
        out.append(table(["judge", "set", "items", "accuracy", "precision", "recall"],
                         [[esc(name), esc(part), m.get("n"), m.get("accuracy"), m.get("precision"), m.get("recall")]
                          for name, parts in judges.items() for part, m in parts.items()]))
    fresh = jc.get("fresh") or {}
    names = [n for n, m in fresh.items() if isinstance(m, dict) and "accuracy" in m]
    if names:
        out.append(f'<h3>Blind set ({esc(fresh.get("path", "fresh"))})</h3><p class="muted">Labelled pairs written '
                   "blind to every judge; truths are catalog descriptions. The target of issue 16: accuracy >= 0.90 "
                   "and recall >= 0.85.</p>")
        out.append(table(["judge", "items", "accuracy", "precision", "recall"],
                         [[esc(n), fresh[n].get("n"), fresh[n].get("accuracy"), fresh[n].get("precision"),
                           fresh[n].get("recall")] for n in names]))
        kinds = sorted({k for n in names for k in (fresh[n].get("per_kind") or {})})
        if kinds:
            out.append(table(["kind", "items", *[f"accuracy: {n}" for n in names]],
                             [[esc(k), (fresh[names[0]].get("per_kind") or {}).get(k, {}).get("n"),
                               *[(fresh[n].get("per_kind") or {}).get(k, {}).get("accuracy") for n in names]]
                              for k in kinds]))
    return out
