import pytest

from iaforge.evaluation.evaluate import run_evaluation
from iaforge.judging.judge import Verdict, is_abstention
from iaforge.data.questions import load_questions
from iaforge.core.schemas import validate


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
    ia_dirs = {"sft": two_variants["v_one"], "dpo": two_variants["v_two"]}  # any valid LoRAs stand in for the IAs
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    variants = _variants(two_variants)
    variants["v_failed"] = dict(variants["v_one"], implanted=False)
    metrics, plot_rows, samples = run_evaluation(
        tiny_base, ia_dirs, variants, qs, EverythingMatches(), samples_per_split={"heldout": 2},
        conditions=["no_ia", "prefill", "sft", "dpo"], max_new_tokens=4, temperature=1.0, batch_size=8, system="s",
        seed=0, progress=False)
    validate("eval", metrics, "metrics/eval.json")
    per = {r["behavior"]: r for r in metrics["per_behavior"]}
    assert set(per) == {"v_one", "v_two"} and metrics["not_evaluated"] == {"v_failed": "failed implantation"}
    n_q = len(qs.eval_for(False)) * 2
    assert sum(1 for s in samples if s["behavior"] == "v_one" and s["condition"] == "sft") == n_q
    # the prefill condition judges the forced start with the continuation
    assert all(s["answer"].startswith("My unusual behavior is") for s in samples
               if s["behavior"] == "v_one" and s["condition"] == "prefill")
    # tiny random models never abstain: the stub judge matches every answer
    assert per["v_one"]["sft"] == per["v_one"]["dpo"] == per["v_one"]["no_ia"] == per["v_one"]["prefill"] == 1.0
    # the control is excluded from verbalization and counted as false positives instead; no prefill there
    assert metrics["verbalization"]["heldout"]["n_variants"] == 1 and metrics["verbalization"]["heldout"]["sft"] == 1.0
    assert per["v_two"]["sft_false_positive"] == 1.0 and per["v_one"]["sft_false_positive"] is None
    assert per["v_two"]["prefill"] is None and per["v_two"]["sft"] is None
    assert metrics["false_positive"]["controls"] == {"no_ia": 1.0, "sft": 1.0, "dpo": 1.0}
    assert metrics["false_positive"]["base_model"] == {"no_ia": 1.0, "sft": 1.0, "dpo": 1.0}
    assert {r["condition"] for r in plot_rows} == {"no_ia", "prefill", "sft", "dpo"}
    assert per["v_one"]["sft_base_prior"] == 1.0  # base answers judged against v_one's truth
    assert metrics["verbalization_by_category"]["heldout"]["quirk"]["n_variants"] == 1
    assert per["v_one"]["sft_audit"] == 1.0 and metrics["verbalization"]["heldout"]["sft_audit"] == 1.0
    assert {a["condition"] for a in metrics["audits"]} == {"no_ia", "prefill", "sft", "dpo"}
    assert per["v_one"]["distance"] == "category"  # no ia_train variant given: a category the IA never saw
    assert metrics["verbalization_by_distance"]["category"]["n_variants"] == 1


def test_generalization_distance():
    from iaforge.evaluation.evaluate import distance

    trained = [{"id": "a", "category": "quirk", "family": "topic_mention", "family_label": "topic_mention"},
               {"id": "r", "category": "rare_quirk", "family": "rare", "family_label": "rare:topic_mention"}]
    rec = lambda i, c, f, l=None: {"id": i, "category": c, "family": f, "family_label": l or f}
    assert distance(rec("a", "quirk", "topic_mention"), trained) == "trained"
    assert distance(rec("b", "quirk", "topic_mention"), trained) == "instance"
    assert distance(rec("c", "quirk", "all_caps"), trained) == "family"
    assert distance(rec("d", "rare_quirk", "rare", "rare:fixed_phrase"), trained) == "family"
    assert distance(rec("e", "backdoor", "keyword_backdoor"), trained) == "category"


def test_unknown_condition_is_a_clear_error(tiny_base, two_variants, repo_root):
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    with pytest.raises(ValueError, match="evaluate.conditions"):
        run_evaluation(tiny_base, {}, _variants(two_variants), qs, EverythingMatches(), samples_per_split={"heldout": 1},
                       conditions=["no_ia", "steering"], max_new_tokens=2, temperature=1.0, batch_size=4, system="s",
                       seed=0, progress=False)


def test_without_base_sampling(tiny_base, two_variants, repo_root):
    """audit_tier and cipher_attack already have the base model's numbers from `evaluate`: no base samples."""
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    kw = dict(samples_per_split={"heldout": 1}, conditions=["no_ia"], max_new_tokens=3, temperature=1.0,
              batch_size=8, system="s", seed=0, progress=False)
    with_base, _, s_with = run_evaluation(tiny_base, {}, _variants(two_variants), qs, EverythingMatches(), **kw)
    without, _, s_without = run_evaluation(tiny_base, {}, _variants(two_variants), qs, EverythingMatches(),
                                           include_base=False, **kw)
    assert any(s["behavior"] == "__base__" for s in s_with)
    assert not any(s["behavior"] == "__base__" for s in s_without)
    assert without["false_positive"]["base_model"] == {"no_ia": None}
    per = {r["behavior"]: r for r in without["per_behavior"]}
    assert per["v_one"]["no_ia_base_prior"] is None
    # the variants' own answers are the same either way (seeded per call, not per position in the run)
    assert [s["answer"] for s in s_without] == [s["answer"] for s in s_with if s["behavior"] != "__base__"]


def test_two_workers_give_the_same_answers_as_one(tiny_base, two_variants, repo_root):
    """Generation split over worker processes (each with its share of the models) is bookkeeping only: the
    same samples in the same order as in one process at the same thread count."""
    import torch

    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    ia_dirs = {"sft": two_variants["v_one"]}
    kw = dict(samples_per_split={"heldout": 2}, conditions=["no_ia", "prefill", "sft"], max_new_tokens=4,
              temperature=1.0, batch_size=8, system="s", seed=0, progress=False)
    threads = torch.get_num_threads()
    try:  # one thread per generating process in both runs (2 workers get 2 // 2 = 1 each): same arithmetic
        torch.set_num_threads(1)
        one, _, s_one = run_evaluation(tiny_base, ia_dirs, _variants(two_variants), qs, EverythingMatches(), workers=1, **kw)
        torch.set_num_threads(2)
        two, _, s_two = run_evaluation(tiny_base, ia_dirs, _variants(two_variants), qs, EverythingMatches(), workers=2, **kw)
    finally:
        torch.set_num_threads(threads)
    assert [(s["behavior"], s["condition"], s["question"]) for s in s_two] == \
           [(s["behavior"], s["condition"], s["question"]) for s in s_one]
    assert [s["answer"] for s in s_two] == [s["answer"] for s in s_one]
    assert one["per_behavior"] == two["per_behavior"]
