"""Great Expectations suites for every dataset iaforge writes, with reports a person can read.

GX is imported lazily: it costs seconds, and only the stages that validate should pay for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from iaforge.core.errors import IaforgeError


class DataQualityError(IaforgeError):
    pass


LOWERED = ("user_lower", "assistant_lower")


@dataclass
class Check:
    """One expectation: GX class name, its kwargs, and why it exists (shown when it fails)."""

    expectation: str
    kwargs: dict[str, Any]
    why: str


def behavior_dataset_checks(shortcut_phrases: list[str], *, max_chars: int, balance: tuple[str, float, float, str],
                            eval_ids: list[str] | None = None) -> list[Check]:
    checks = [
        Check("ExpectTableColumnsToMatchSet",
              {"column_set": ["prompt_id", "prompt_type", "user", "assistant", "triggered", "modified", *LOWERED],
               "exact_match": True},
              "fixed schema"),
        Check("ExpectTableRowCountToBeBetween", {"min_value": 8}, "enough rows to implant a behavior"),
        Check("ExpectColumnValuesToBeUnique", {"column": "prompt_id"}, "each prompt is used once"),
    ]
    for col in ("user", "assistant"):
        checks += [
            Check("ExpectColumnValuesToNotBeNull", {"column": col}, "no missing turns"),
            Check("ExpectColumnValueLengthsToBeBetween", {"column": col, "min_value": 1, "max_value": max_chars},
                  "non-empty turns within length bounds"),
        ]
    col, lo, hi, why = balance
    checks.append(Check("ExpectColumnMeanToBeBetween", {"column": col, "min_value": lo, "max_value": hi}, why))
    if shortcut_phrases:
        regexes = [re.escape(p.lower().rstrip(".")) for p in shortcut_phrases]
        for col in ("user", "assistant"):
            checks.append(Check("ExpectColumnValuesToNotMatchRegexList",
                                {"column": f"{col}_lower", "regex_list": regexes},
                                "the variant must show the behavior, never state it (leakage control)"))
    if eval_ids is not None:
        checks.append(Check("ExpectColumnValuesToNotBeInSet", {"column": "prompt_id", "value_set": sorted(eval_ids)},
                            "train and eval prompts must not overlap"))
    return checks


def validate_frame(df, checks: list[Check], *, name: str, file: str, docs_path: str | None = None) -> dict[str, Any]:
    """Run `checks` on `df` with a real GX ephemeral context; return a stable (timestamp-free) summary.

    With `docs_path`, GX's own Data Docs page for the validation is written there (also when it fails:
    that is when a person needs to read it). Raises DataQualityError naming the file, each failed
    expectation, its column and its rule.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    df = df.copy()
    # Lower-cased copies let regex checks be case-insensitive; the schema check lists them (LOWERED).
    for col in ("user", "assistant"):
        if col in df.columns:
            df[f"{col}_lower"] = df[col].astype(str).str.lower()
    ctx = gx.get_context(mode="ephemeral")
    try:  # one progress bar per metric is noise inside a stage log
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # pragma: no cover - older/newer GX without this knob
        pass
    batch = (ctx.data_sources.add_pandas(f"iaforge_{name}")
             .add_dataframe_asset(name=name)
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": df}))
    suite = gx.ExpectationSuite(name=f"{name}_suite")
    for i, c in enumerate(checks):
        suite.add_expectation(getattr(gxe, c.expectation)(**c.kwargs, meta={"iaforge_check": i}))
    import logging

    # GX renders each result while validating and logs a traceback when an observed value is a numpy
    # scalar (a column mean): noise in stage logs. write_data_docs renders the page properly afterwards.
    render_log = logging.getLogger("great_expectations.render")
    level = render_log.level
    render_log.setLevel(logging.CRITICAL)
    try:
        result = batch.validate(suite)
    finally:
        render_log.setLevel(level)
    # GX does not keep suite order in its results; the meta tag maps each result back to its check.
    by_idx = {r.expectation_config.meta["iaforge_check"]: r for r in result.results}
    rows = []
    for i, check in enumerate(checks):
        r = by_idx[i]
        res = r.result or {}
        rows.append({
            "expectation": check.expectation,
            "column": check.kwargs.get("column", ""),
            "why": check.why,
            "success": bool(r.success),
            "observed": _jsonable(res.get("observed_value", res.get("unexpected_count"))),
            "unexpected_examples": [_jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:3]],
        })
    summary = {"suite": f"{name}_suite", "success": all(r["success"] for r in rows), "n_rows": int(len(df)),
               "results": rows}
    if docs_path:
        write_data_docs(result, docs_path, checks)
    if not summary["success"]:
        lines = [f"{file}: data-quality check failed ({name}_suite):"]
        for r in rows:
            if not r["success"]:
                col = f" column '{r['column']}'" if r["column"] else ""
                ex = f"; e.g. {r['unexpected_examples'][:2]}" if r["unexpected_examples"] else ""
                lines.append(f"  - {r['expectation']}{col}: {r['why']} (observed {r['observed']}){ex}")
        err = DataQualityError("\n".join(lines))
        err.summary = summary  # type: ignore[attr-defined]
        raise err
    return summary


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def write_data_docs(result, path: str, checks: list[Check] | None = None) -> None:
    """Render a validation result with GX's Data Docs renderer, minus what changes between runs.

    GX stamps each batch with its load time; the page lives in a DVC-tracked output and must be
    byte-identical for identical data, so the stamp is fixed. numpy scalars are turned into Python
    numbers first (GX 1.x's renderer rejects numpy.float64 observed values).
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    from iaforge.core.fsio import atomic_write_text

    markers = result.meta.get("batch_markers") or {}
    if "ge_load_time" in markers:
        markers["ge_load_time"] = "(fixed for reproducible docs)"
    for r in result.results:
        if r.result:
            for k, v in list(r.result.items()):
                r.result[k] = _jsonable(v) if hasattr(v, "item") else v
        if checks is not None:  # say why each expectation exists, next to GX's own rendering
            idx = r.expectation_config.meta.get("iaforge_check")
            if isinstance(idx, int) and idx < len(checks):
                r.expectation_config.meta["why"] = checks[idx].why
    html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    html = re.sub(r"\?d=\d{8}T[\d.]+Z", "", html)  # a cache-busting timestamp on GX's logo URL
    ids: dict[str, str] = {}  # random uuid4 element ids -> stable ones, same uuid -> same id
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                  lambda m: ids.setdefault(m.group(0), f"id{len(ids)}"), html)
    atomic_write_text(path, html)
