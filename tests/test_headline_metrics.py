"""DVC's own views stay readable: `dvc metrics show` makes one column per flattened key across every metrics file,
so each stage declares one small headline file; its full result is a detail out under reports/detail/ that the
HTML report reads. And `dvc plots show` uses a template that needs no network."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest
import yaml

from iaforge.audit_tier.cipher_attack import headline_metrics as cipher_headline
from iaforge.audit_tier.tier import headline_metrics as audit_headline
from iaforge.evaluation.evaluate import headline_metrics as eval_headline
from iaforge.ia.dpo import headline_metrics as dpo_headline
from iaforge.ia.sft import headline_metrics as sft_headline
from iaforge.judging.calibration import headline_metrics as judge_headline
from iaforge.evaluation.grid import headline_metrics as grid_headline
from iaforge.variants.implantation_summary import headline_metrics as implantation_headline

ROOT = Path(__file__).resolve().parents[1]
MAX_KEYS = 30  # per file: a few dozen columns, not one per variant

# headline file -> (detail file it is derived from, the function that derives it)
HEADLINES = {
    "metrics/implantation.json": ("reports/detail/implantation.json", implantation_headline),
    "metrics/eval.json": ("reports/detail/eval.json", eval_headline),
    "metrics/ia_sft.json": ("reports/detail/ia_sft.json", sft_headline),
    "metrics/ia_dpo.json": ("reports/detail/ia_dpo.json", dpo_headline),
    "metrics/audit_tier.json": ("reports/detail/audit_tier.json", audit_headline),
    "metrics/cipher_attack.json": ("reports/detail/cipher_attack.json", cipher_headline),
    "metrics/judge_calibration.json": ("reports/detail/judge_calibration.json", judge_headline),
    "metrics/grid.json": ("reports/detail/grid.json", grid_headline),
}


def leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], d


def stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def declared(stage: dict, kind: str) -> list[str]:
    body = stage.get("do", stage)
    return [next(iter(e)) if isinstance(e, dict) else e for e in body.get(kind, [])]


def test_every_stage_declares_at_most_one_small_flat_metrics_file():
    seen = []
    for name, stage in stages().items():
        files = declared(stage, "metrics")
        assert len(files) <= 1, f"dvc.yaml: stage {name} declares {len(files)} metrics files"
        seen += files
    assert set(HEADLINES) <= set(seen)
    for f in seen:
        path = ROOT / f
        if not path.exists():  # not committed yet (e.g. a stage never run on this checkout)
            continue
        flat = dict(leaves(json.loads(path.read_text())))
        assert len(flat) <= MAX_KEYS, f"{f}: {len(flat)} keys"
        assert not [k for k, v in flat.items() if isinstance(v, list)], f"{f}: lists are detail, not headline"


@pytest.mark.parametrize("headline", sorted(HEADLINES))
def test_committed_headline_is_its_detail_reduced(headline):
    detail, fn = HEADLINES[headline]
    if not (ROOT / detail).exists():
        pytest.skip(f"{detail} not committed")
    d = json.loads((ROOT / detail).read_text())
    if d.get("in_run") is False:  # a stage left out of the run (audit_tier/optional.py) says only that
        assert json.loads((ROOT / headline).read_text()) == {"in_run": False}
        return
    # Same numbers as the detail they come from: the report and `dvc metrics show` cannot disagree.
    assert json.loads((ROOT / headline).read_text()) == fn(d)


def test_detail_files_are_outs_and_the_report_reads_them():
    st = stages()
    outs = {o for s in st.values() for o in declared(s, "outs")}
    details = {d for d, _ in HEADLINES.values()}
    assert details <= outs
    assert details <= set(declared(st["report"], "deps"))
    # metrics/scaling.json is no stage's headline: the scaling sweep (experiments/scaling.py) writes that curve
    # there (issue 14 fixes the path) and nothing else holds it, so the report reads it as it is
    assert not [d for d in declared(st["report"], "deps") if d.startswith("metrics/") and d != "metrics/scaling.json"]
    # the per-split implantation files gate IA training: plain outs, not metrics
    for split in ("ia_train", "dpo", "heldout"):
        assert f"metrics/implantation/{split}.json" in outs


def _eval_detail():
    agg = {"no_ia": 0.1, "prefill": 0.2, "sft": 0.5, "dpo": 0.6, "no_ia_audit": 0.0, "prefill_audit": 0.5,
           "sft_audit": 1.0, "dpo_audit": 1.0, "sft_base_prior": 0.05, "n_variants": 3}
    return {"conditions": ["no_ia", "prefill", "sft", "dpo"], "verbalization": {"heldout": agg, "ia_train": agg},
            "verbalization_by_category": {"heldout": {"quirk": agg}},
            "per_behavior": [{"behavior": f"b{i}", "sft": 0.5} for i in range(40)],
            "false_positive": {"base_model": {"no_ia": 0.9, "sft": 0.8, "dpo": 0.7},
                               "controls": {"no_ia": 0.9, "sft": 0.3, "dpo": 0.2}, "n_controls": 2}}


COLUMNS = {"n", "pass_rate", "no_ia", "prefill", "sft", "dpo", "trained_sft", "fp_base_sft", "fp_base_dpo",
           "final_loss", "attack_holds", "accuracy", "recall",
           # metrics/judge_calibration.json's `fresh` section (issue 16): {judge: {n, accuracy, precision, recall}}
           "precision",
           # metrics/grid.json (evaluation/grid.py): its top-1 accuracy is read against chance (1 / the grid's
           # topics), and its false positives on null variants have no column among the others
           "chance", "fp_null_sft",
           # its contrastive condition (evaluation/contrastive.py) and its no-IA control
           "sft_contrast", "no_ia_contrast", "accuracy_contrast", "trained_sft_contrast", "fp_base_sft_contrast",
           "fp_null_sft_contrast",
           # the grid IA refined with DPO (ia/grid_dpo.py), plainly and contrastively
           "trained_dpo", "accuracy_dpo", "fp_null_dpo", "dpo_contrast", "trained_dpo_contrast", "accuracy_dpo_contrast",
           "fp_base_dpo_contrast", "fp_null_dpo_contrast",
           # the lens-hinted question (variants/lens_hint.py): the IA asked so, its no-IA control, and the lens's words alone
           "sft_hint", "no_ia_hint", "trained_sft_hint", "accuracy_sft_hint", "fp_base_sft_hint", "fp_null_sft_hint",
           "lens_first", "lens_any", "dpo_hint", "trained_dpo_hint", "accuracy_dpo_hint", "fp_base_dpo_hint",
           "fp_null_dpo_hint",
           # a stage left out of the run (audit_tier/optional.py: `enabled: false`)
           "in_run"}


def test_all_metrics_files_share_one_short_set_of_columns():
    """`dvc metrics show` is one table: a column per key of any file. Shared column names keep it terminal-wide."""
    keys = set()
    for stage in stages().values():
        for f in declared(stage, "metrics"):
            if (ROOT / f).exists():
                # nested sections (judge_calibration's fresh.<judge>.*) reuse the columns as their last part
                keys |= {k.rsplit(".", 1)[-1] for k, _ in leaves(json.loads((ROOT / f).read_text()))}
    assert keys <= COLUMNS, sorted(keys - COLUMNS)


def test_eval_headline_is_heldout_by_condition_plus_fit_and_false_positives():
    h = eval_headline(_eval_detail())
    assert h == {"n": 3, "no_ia": 0.1, "prefill": 0.2, "sft": 0.5, "dpo": 0.6, "trained_sft": 0.5,
                 "fp_base_sft": 0.8, "fp_base_dpo": 0.7}


def test_implantation_headline_pass_rate():
    g = {"n": 2, "passed": 1, "pass_rate": 0.5, "mean_rate_triggered": 0.9}
    summary = {"n_variants": 4, "n_passed": 3, "pass_rate": 0.75, "failed": ["x"], "variants": {"x": {}},
               "by_split": {"heldout": g, "ia_train": {**g, "pass_rate": 1.0}}, "by_category": {"quirk": g},
               "by_family": {"topic_mention": g}}
    assert implantation_headline(summary) == {"n": 4, "pass_rate": 0.75}


def test_other_headlines_use_the_shared_columns():
    assert sft_headline({"final_loss": 0.80183, "steps": 5, "variants": ["a", "b"]}) == {"n": 2, "final_loss": 0.8018}
    assert dpo_headline({"final_loss": 0.1, "n_pairs_used": 7, "groups": ["a"]}) == {"n": 7, "final_loss": 0.1}
    audit = audit_headline({"by_method": {
        "original": {"n_implanted": 1, "n_models": 1, "no_ia": 1.0, "sft": 1.0, "dpo": 1.0},
        "document": {"n_implanted": 0, "n_models": 1, "no_ia": None, "sft": None, "dpo": None},
        "demo_rank32": {"n_implanted": 1, "n_models": 1, "no_ia": 0.5, "sft": 0.0, "dpo": 0.25},
        "conceal_sft": {"n_implanted": 3, "n_models": 3, "no_ia": 0.1, "sft": 0.4, "dpo": 0.25}},
        "models": {}, "concealment": []})
    # the unmodified original is the reference, not an audit method; methods weigh by their implanted models
    assert audit == {"n": 4, "no_ia": 0.2, "sft": 0.3, "dpo": 0.25}
    cipher = cipher_headline({"attack": {"attack_holds": True, "examples": [{"request": "r"}]},
                              "ia": {"sft": 0.0, "sft_audit": 0.5}, "training": {"phase1": {}}})
    assert cipher == {"attack_holds": True, "sft": 0.0}
    judge = judge_headline({"path": "x.yaml", "version": 1, "test": {"n": 10, "accuracy": 0.9, "precision": 1.0,
                                                                      "recall": 0.8, "f1": 0.89, "errors": ["a"]}})
    assert judge == {"n": 10, "accuracy": 0.9, "recall": 0.8}
    for h in (audit, cipher, judge):
        assert set(h) <= COLUMNS


def test_plots_template_renders_offline():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc/config")
    rel = cfg.get("plots", "html_template")
    page = (ROOT / ".dvc" / rel).read_text()  # DVC resolves a relative template against .dvc/
    assert "{plot_divs}" in page
    # DVC puts its CDN <script> tags where a template has a scripts placeholder: there must be none.
    assert "{scripts}" not in page
    assert not re.search(r"""<(script|link)[^>]*(src|href)\s*=\s*["']?(https?:)?//""", page)
    for lib in ("vega", "vega-lite", "vega-embed"):
        assert f"/* {lib} " in page
    assert "vegaEmbed" in page and len(page) < 1_500_000


def test_project_plot_templates_exist():
    from dvc_render.vega_templates import TEMPLATES

    builtin = {t.DEFAULT_NAME for t in TEMPLATES}
    for stage in stages().values():
        for entry in stage.get("plots", []):
            props = next(iter(entry.values())) if isinstance(entry, dict) else {}
            name = (props or {}).get("template")
            if name and name not in builtin:  # DVC looks a project template up in .dvc/plots/<name>.json
                assert "<DVC_METRIC_DATA>" in (ROOT / ".dvc/plots" / f"{name}.json").read_text(), name
