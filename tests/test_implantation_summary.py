
import pytest

from iaforge.variants.implantation_summary import plot_rows, rows_from_records, summarize


def _variant(records, split, bid, family, passed, rate, untrig=None, category="quirk"):
    records.append({"behavior": bid, "split": split, "category": category, "family": family.split(":")[0],
                    "family_label": family, "passed": passed, "rate_triggered": rate, "rate_untriggered": untrig,
                    "base_rate": 0.0})


def test_summary_groups_by_family_label_and_flags_failures():
    recs = []
    _variant(recs, "ia_train", "a", "topic_mention", True, 1.0)
    _variant(recs, "ia_train", "b", "topic_mention", False, 0.5)
    _variant(recs, "heldout", "c", "rare:fixed_phrase", True, 0.2, category="rare_quirk")
    _variant(recs, "dpo", "d", "ordinary", True, None, 0.0, category="control")
    s = summarize(rows_from_records(recs))
    assert s["n_variants"] == 4 and s["n_passed"] == 3 and s["pass_rate"] == 0.75
    assert s["failed"] == ["b"]
    assert s["by_family"]["topic_mention"] == {"n": 2, "passed": 1, "pass_rate": 0.5, "mean_rate_triggered": 0.75,
                                               "mean_rate_untriggered": None, "mean_base_rate": 0.0}
    assert set(s["by_family"]) == {"topic_mention", "rare:fixed_phrase", "ordinary"}
    assert s["by_split"]["heldout"]["n"] == 1 and s["by_category"]["control"]["passed"] == 1
    rows = plot_rows(rows_from_records(recs))
    assert {r["variant"]: r["rate"] for r in rows}["d"] == 1.0  # a control's "rate" = staying clean


def test_no_variants_is_an_error():
    with pytest.raises(RuntimeError, match="no trained variants"):
        summarize(rows_from_records([]))
