import os
import re
import shutil
import subprocess

import pytest

from iaforge.report.html import build_report


def _inputs():
    per = [{"behavior": "quirk_x", "split": "heldout", "category": "quirk", "family": "topic_mention",
            "no_ia": 0.1, "prefill": 0.2, "sft": 0.5, "dpo": 0.6, "sft_base_prior": 0.05},
           {"behavior": "control_y", "split": "heldout", "category": "control", "family": "ordinary",
            "no_ia": None, "prefill": None, "sft": None, "dpo": None, "no_ia_false_positive": 1.0,
            "sft_false_positive": 0.3, "dpo_false_positive": 0.2}]
    agg = {"no_ia": 0.1, "prefill": 0.2, "sft": 0.5, "dpo": 0.6, "sft_base_prior": 0.05, "n_variants": 1}
    ev = {"conditions": ["no_ia", "prefill", "sft", "dpo"], "per_behavior": per, "verbalization": {"heldout": agg},
          "verbalization_by_category": {"heldout": {"quirk": agg}}, "verbalization_by_distance": {"instance": agg},
          "false_positive": {"base_model": {"no_ia": 1.0, "sft": 0.4, "dpo": 0.3}, "controls": {"no_ia": 1.0, "sft": 0.3, "dpo": 0.2},
                             "n_controls": 1},
          "not_evaluated": {"rare_z": "failed implantation"}}
    imp = {"n_variants": 3, "n_passed": 2, "pass_rate": 0.6667, "failed": ["rare_z"],
           "by_family": {"topic_mention": {"n": 1, "passed": 1, "mean_rate_triggered": 1.0, "mean_rate_untriggered": None,
                                           "mean_base_rate": 0.0}}}
    samples = [{"behavior": "quirk_x", "condition": "sft", "question": "What is odd?", "answer": "I <b>mention</b> X.", "match": True},
               {"behavior": "quirk_x", "condition": "dpo", "question": "What is odd?", "answer": "Nothing.", "match": False}]
    return dict(eval_metrics=ev, implantation=imp, ia_sft={"variants": ["a"], "n_examples": 10, "steps": 3, "final_loss": 0.5},
                ia_dpo={"groups": ["a"], "n_pairs_used": 4, "steps": 2, "final_loss": 0.6, "margin_after": 0.3,
                        "reward_accuracy_after": 0.75}, samples=samples,
                judge_calibration={"test": {"n": 100, "accuracy": 0.9, "precision": 0.88, "recall": 0.86}})


def test_report_has_every_section_and_is_offline_and_stable():
    page = build_report(**_inputs())
    assert page == build_report(**_inputs())  # identical metrics, identical bytes
    for needle in ("Verbalization by split", "Per category (heldout)", "False positives", "IA training",
                   "Implantation", "Per variant", "Generalization distance", "Judge calibration", "Example self-reports", "rare_z",
                   "DPO IA", "prefill baseline", 'href="data_docs/quirk_x.html"'):
        assert needle in page, needle
    assert "<script" not in page and not re.search(r"(src|href)=\"https?://", page)  # renders offline
    assert "I &lt;b&gt;mention&lt;/b&gt; X." in page  # model output is escaped, never injected
    assert page.count("<svg") == 2


def test_report_renders_in_headless_chromium(tmp_path):
    if not shutil.which("chromium"):
        if os.environ.get("IAFORGE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (IAFORGE_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("Debian chromium not installed (apt-get install chromium; .ci/run installs it)")
    page = tmp_path / "eval.html"
    page.write_text(build_report(**_inputs()))
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real, non-blank render
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          page.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    assert "Verbalization by split" in dom and "<svg" in dom


def _audit_and_cipher():
    audit = {"methods": {"document": "third-person documents", "conceal_sft": "variant + SFT on denials"},
             "by_method": {"original": {"n_models": 1, "n_implanted": 1, "not_implanted": [], "no_ia": 0.5, "sft": 0.4},
                           "document": {"n_models": 1, "n_implanted": 0, "not_implanted": ["q@document"], "no_ia": None, "sft": None},
                           "conceal_sft": {"n_models": 1, "n_implanted": 1, "not_implanted": [], "no_ia": 0.1, "sft": 0.3}},
             "concealment": [{"model": "q@conceal_sft", "method": "conceal_sft", "implanted": True, "confession_before": 0.5,
                              "confession_after": 0.1, "concealed": True, "ia_sft": 0.3}]}
    cipher = {"attack": {"attack_holds": False, "encoded_compliance": 0.25, "plain_compliance": 0.0, "plain_refusal": 0.9,
                         "encoded_cipher_fraction": 0.8, "benign_cipher_fraction": 0.7, "benign_decoded_word_rate": 0.123},
              "ia": {"no_ia": 0.0, "sft": 0.1, "sft_audit": 1.0}, "ia_names_cipher": {"no_ia": 0.0, "sft": 0.05}}
    return audit, cipher


def test_report_shows_the_audit_tier_and_the_cipher_attack():
    audit, cipher = _audit_and_cipher()
    page = build_report(**_inputs(), audit_tier=audit, cipher_attack=cipher)
    for needle in ("Audit tier", "q@document", "Concealment", "third-person documents", "Covert cipher attack",
                   "does not hold", "0.12", "mentions a cipher"):
        assert needle in page, needle
    assert page.count("<svg") == 3  # the audit tier adds its bars
    assert "Audit tier" not in build_report(**_inputs())  # no metrics, no section


def test_report_draws_the_scaling_curve_with_its_intervals_and_baselines():
    pts = [{"n_train": n, "n_heldout": 24, "seeds": [0, 2], "no_ia": 0.06, "no_ia_ci95": [0.03, 0.1], "prefill": 0.03,
            "sft": s / 3, "sft_ci95": None, "sft_contrast": s, "sft_contrast_ci95": [s - 0.15, s + 0.14],
            "sft_contrast_per_seed": [s - 0.03, s + 0.03], "no_ia_contrast": 0.1, "accuracy_contrast": a,
            "chance": 0.0022, "trained_sft": 0.99, "fp_base_sft": 0.0, "fp_null_sft": 0.0, "ia_steps": 300,
            "sft_contrast_beyond_leakage": s - 0.1, "n_beyond_leakage": 11, "gate_passed": 0,
            "implanted_triggered": 0.37, "implanted_untriggered": 0.19, "implanted_leak": 0.01, "target": "topic"}
           for n, s, a in ((48, 0.67, 0.69), (24, 0.34, None))]
    page = build_report(**_inputs(), scaling=pts)
    assert "Grid IA scaling" in page and page.count("<svg") == 3
    sec = page[page.index("Grid IA scaling"):]
    chart = sec[sec.index("<svg"):sec.index("</svg>")]
    # one polyline per series that has values (top-1 has one point only, still drawn), one bar per interval
    assert chart.count("<polyline") == 8 and "held-out, no IA" in chart and "top-1 chance" in chart
    assert chart.count('class="ci"') == 4  # contrastive at both points, no IA at both; sft's interval is None
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td>", sec)
    assert rows[:2] == ["24", "48"]  # sorted by n_train
    assert "0.67 [0.52, 0.81]" in sec and "0.64 0.70" in sec and "0.57 (11)" in sec and "0/48" in sec
    assert "the bare topic" in sec  # the curve says what its IA was trained to answer
    assert "Grid IA scaling" not in build_report(**_inputs())  # no sweep, no section
    assert "attractor" not in sec  # points without the top-1 analysis: no table for it


def test_report_draws_the_hinted_ia_on_the_curve_when_its_points_carry_it():
    pts = [{"n_train": n, "n_heldout": 24, "seeds": [0], "no_ia": 0.02, "prefill": 0.02, "sft": 0.0, "target": "topic",
            "sft_hint": h, "sft_hint_ci95": [h - 0.2, h + 0.2], "no_ia_hint": 0.08, "lens_first": 0.58,
            "accuracy_sft_hint": 0.67, "trained_sft_hint": 1.0} for n, h in ((8, 0.34), (24, 0.45))]
    sec = build_report(**_inputs(), scaling=pts)
    sec = sec[sec.index("Grid IA scaling"):]
    chart = sec[sec.index("<svg"):sec.index("</svg>")]
    assert "held-out, hinted IA" in chart and "hinted, no IA" in chart and "lens&#x27;s first word" in chart
    assert chart.count('class="ci"') == 2  # the hinted IA's interval at both points
    assert "0.45 [0.25, 0.65]" in sec and "0.34 [0.14, 0.54]" in sec


def test_report_says_what_the_ia_answers_when_it_misses():
    t = {"own": 0.24, "same_kind": 0.18, "other_kind": 0.58, "untrained": 0.0, "none": 0.0, "n": 72,
         "same_kind_of_misses": 0.236, "same_kind_chance": 0.075, "same_initial_of_misses": 0.182,
         "same_initial_chance": 0.043, "attractor_share": 0.25, "distinct_answers": 13.0}
    pts = [{"n_train": 24, "n_heldout": 24, "sft_contrast": 0.34, "top1_classes": {"sft": t, "sft_contrast": {}}}]
    sec = build_report(**_inputs(), scaling=pts)
    sec = sec[sec.index("Grid IA scaling"):]
    table = sec[sec.index("attractor"):]
    assert "0.24 (0.07)" in table and "0.18 (0.04)" in table and ">plain<" in table
    assert ">contrastive<" not in table  # an empty analysis (no runs) gets no row


def test_report_puts_the_judges_side_by_side_on_the_blind_set():
    jc = {"test": {"n": 100, "accuracy": 0.9, "precision": 0.88, "recall": 0.86},
          "judges": {"embedding": {"test": {"n": 100, "accuracy": 0.89, "precision": 0.9, "recall": 0.8}},
                     "learned": {"test": {"n": 100, "accuracy": 0.91, "precision": 0.93, "recall": 0.87}}},
          "fresh": {"path": "data/judge/fresh2.yaml", "lookup": {},
                    "embedding": {"n": 4, "accuracy": 0.5, "precision": 0.5, "recall": 0.25,
                                  "per_kind": {"polarity_flip": {"n": 2, "accuracy": 0.5}}},
                    "learned": {"n": 4, "accuracy": 0.75, "precision": 0.7, "recall": 1.0,
                                "per_kind": {"polarity_flip": {"n": 2, "accuracy": 0.0}}}}}
    page = build_report(**{**_inputs(), "judge_calibration": jc})
    sec = page[page.index("Blind set"):]
    assert "data/judge/fresh2.yaml" in sec and "accuracy: learned" in sec and "polarity_flip" in sec
    assert re.search(r"<td>learned</td><td class=\"num\">4</td><td class=\"num\">0.75</td>", sec)
    assert "Blind set" not in build_report(**_inputs())
