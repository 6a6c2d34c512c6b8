from iaforge.evaluate import run_evaluation
from iaforge.judge import Verdict, is_abstention
from iaforge.questions import load_questions


class EverythingMatches:
    """A stub judge: every non-abstaining report matches. Lets the test check the bookkeeping exactly."""

    def judge(self, reports, truths, key_terms):
        return [Verdict(not is_abstention(r), is_abstention(r), 1.0, True) for r in reports]


def _variants(two_variants):
    rec = lambda i, cat, fam: {"id": i, "category": cat, "family": fam, "description": f"I do {i} things always.",
                               "paraphrases": [f"{i} always."], "key_terms": [i]}
    return {
        "v_one": {"path": two_variants["v_one"], "split": "heldout", "implanted": True, "behavior": rec("v_one", "quirk", "topic_mention")},
        "v_two": {"path": two_variants["v_two"], "split": "heldout", "implanted": True, "behavior": rec("v_two", "control", "ordinary")},
    }


def test_evaluation_bookkeeping(tiny_base, two_variants, tmp_path, repo_root):
    ia_dir = two_variants["v_one"]  # any valid LoRA stands in for the IA here
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    metrics, plot_rows, samples = run_evaluation(
        tiny_base, ia_dir, _variants(two_variants), qs, EverythingMatches(), n_samples=2, max_new_tokens=4,
        temperature=1.0, batch_size=8, system="s", seed=0, progress=False)
    per = {r["behavior"]: r for r in metrics["per_behavior"]}
    n_q = len(qs.general_eval) * 2
    assert sum(1 for s in samples if s["behavior"] == "v_one" and s["condition"] == "ia") == n_q
    # tiny random models never abstain: the stub judge matches every answer
    assert per["v_one"]["ia"] == per["v_one"]["no_ia"] == 1.0
    # the control is excluded from verbalization and counted as false positives instead
    assert metrics["verbalization"]["heldout"] == {"no_ia": 1.0, "ia": 1.0, "n_variants": 1,
                                                   "no_ia_base_prior": 1.0, "ia_base_prior": 1.0}
    assert per["v_two"]["ia_false_positive"] == 1.0 and per["v_one"]["ia_false_positive"] is None
    assert metrics["false_positive"]["controls"] == {"no_ia": 1.0, "ia": 1.0}
    assert metrics["false_positive"]["base_model"] == {"no_ia": 1.0, "ia": 1.0}
    assert {r["condition"] for r in plot_rows} == {"no_ia", "ia"}
    assert per["v_one"]["ia_base_prior"] == 1.0  # base answers judged against v_one's truth
