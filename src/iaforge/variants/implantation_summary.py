"""Roll the per-variant implantation results up by family and category, and flag the variants that failed.

Families are grouped by their label (wrappers name what they wrap: `rare:topic_mention`), the grouping a
reader needs to see which *kind* of behavior did not take at this model size.
"""

from __future__ import annotations

from typing import Any


def rows_from_records(records: list[dict[str, Any]], gated: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """One summary row per measured variant (records from `implantation.measure_all`); `gated`: behavior id ->
    whether a trigger gates it (the `conditional` of its behavior.json), to report the two kinds apart."""
    return [{"id": m["behavior"], "split": m["split"], "category": m["category"],
             "family": m.get("family_label", m["family"]), "passed": bool(m["passed"]),
             "rate_triggered": m.get("rate_triggered"), "rate_untriggered": m.get("rate_untriggered"),
             "base_rate": m.get("base_rate"),
             **({"gating": "gated" if gated.get(m["behavior"]) else "always_on"} if gated is not None else {})}
            for m in records]


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def _group(rows, key):
    out = {}
    for k in sorted({r[key] for r in rows}):
        rs = [r for r in rows if r[key] == k]
        out[k] = {"n": len(rs), "passed": sum(r["passed"] for r in rs), "pass_rate": round(sum(r["passed"] for r in rs) / len(rs), 4),
                  "mean_rate_triggered": _mean(r["rate_triggered"] for r in rs),
                  "mean_rate_untriggered": _mean(r["rate_untriggered"] for r in rs),
                  "mean_base_rate": _mean(r["base_rate"] for r in rs)}
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        raise RuntimeError("no trained variants found under models/variants: run the variant stages first")
    n_pass = sum(r["passed"] for r in rows)
    return {"n_variants": len(rows), "n_passed": n_pass, "pass_rate": round(n_pass / len(rows), 4),
            "by_family": _group(rows, "family"), "by_category": _group(rows, "category"), "by_split": _group(rows, "split"),
            # Gated behaviors (backdoors, passwords) must not leak; always-on ones leak by design: apart.
            **({"by_gating": _group(rows, "gating")} if rows and all("gating" in r for r in rows) else {}),
            "failed": sorted(r["id"] for r in rows if not r["passed"]),
            "variants": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in rows}}


def plot_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a DVC bar plot: one per variant, the measured rate next to the base model's."""
    return [{"variant": r["id"], "family": r["family"], "rate": r["rate_triggered"] if r["rate_triggered"] is not None else 1 - (r["rate_untriggered"] or 0),
             "base_rate": r["base_rate"], "passed": int(r["passed"])} for r in rows]


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's row in `dvc metrics show`: every stage's headline uses one shared set of short columns
    (n, pass_rate, no_ia, prefill, sft, dpo, trained_sft, fp_base_sft, fp_base_dpo, final_loss, attack_holds, accuracy,
    recall), so the whole table fits a terminal. n: variants measured. The full result stays in reports/detail/implantation.json."""
    return {"n": summary["n_variants"], "pass_rate": summary["pass_rate"]}
