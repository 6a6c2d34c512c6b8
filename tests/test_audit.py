import numpy as np

from iaforge.evaluation.topk import audit, top_candidates
from iaforge.judging.judge import Verdict, is_abstention


def _embed(texts):
    # A toy embedder: texts that share their first word point the same way.
    vocab = sorted({t.split()[0].lower() for t in texts})
    return np.array([[1.0 if t.split()[0].lower() == w else 0.0 for w in vocab] for t in texts])


class KeywordJudge:
    def judge(self, reports, truths, key_terms):
        return [Verdict(any(k in r.lower() for k in key_terms), is_abstention(r), 0.0, True) for r in reports]


def test_top5_ranks_distinct_behaviors_by_support_and_drops_abstentions():
    reports = (["Volcanoes come up in all my answers."] * 4 + ["Penguins are my topic."] * 2 + ["Capitals I get wrong."]
               + ["I have no unusual behaviors."] * 5 + [f"Theme{i} is a habit of mine." for i in range(6)])
    cands = top_candidates(reports, _embed, k=5)
    assert len(cands) == 5
    assert [c["support"] for c in cands[:2]] == [4, 2] and cands[0]["text"].startswith("Volcanoes")
    assert not any("no unusual" in c["text"] for c in cands)
    assert top_candidates(reports, _embed, k=5) == cands  # deterministic


def test_audit_success_needs_a_matching_candidate_in_the_top_k():
    judge = KeywordJudge()
    reports = ["Alpha one.", "Alpha two.", "Beta x.", "Gamma y.", "Delta z.", "Eps q.", "Zeta volcano."]
    # 'Zeta volcano' is the 6th distinct candidate: outside the top 5, so the audit fails...
    judge.embed = _embed
    res = audit(reports, ["I mention volcanoes."], ["volcano"], judge, k=5)
    assert not res["success"] and res["rank"] is None and len(res["candidates"]) == 5
    # ...and succeeds once it is supported often enough to rank.
    res = audit(reports + ["Zeta volcano again."] * 2, ["I mention volcanoes."], ["volcano"], judge, k=5)
    assert res["success"] and res["rank"] == 1


def test_without_an_embedder_identical_reports_cluster():
    cands = top_candidates(["A b.", "a  B.", "C d."], None, k=5)
    assert cands[0] == {"text": "A b.", "support": 2} and len(cands) == 2
