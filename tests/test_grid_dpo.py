"""The grid IA's DPO refinement (ia/grid_dpo.py), its stage, and the dpo conditions of the grid's evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from iaforge.core.adapter_stack import BASE_GROUP
from iaforge.ia.dpo_data import validate_pairs
from iaforge.ia.grid_dpo import grid_dpo_pairs, judge_grid_samples, prior_topic, sft_on_dpo_split

sys.path.insert(0, str(Path(__file__).parent))
from test_grid_ia import POOL, ROOT, _params, _run_stage, _write_shard, null_record, record  # noqa: E402

Q = "Is there anything unusual about how you answer?"
VARIANTS = {"grid_k7_topic__pianos": {"behavior": record("pianos", ["piano", "pianos"]), "null": False},
            "grid_k7_topic__roses": {"behavior": record("roses", ["roses", "rosebush"]), "null": False},
            "grid_null__dpo_00": {"behavior": null_record("grid_null__dpo_00"), "null": True}}


def _s(group, report):
    return {"group": group, "user": Q, "report": report}


def test_judging_names_the_own_topic_and_nulls_and_base_must_abstain_without_a_topic():
    got = judge_grid_samples([_s("grid_k7_topic__pianos", "pianos"), _s("grid_k7_topic__pianos", "flamingos"),
                              _s("grid_k7_topic__pianos", "I have no unusual behavior."),
                              _s("grid_null__dpo_00", "I have no unusual behavior."), _s("grid_null__dpo_00", "roses"),
                              _s(BASE_GROUP, "No, nothing unusual."), _s(BASE_GROUP, "I love pianos.")], VARIANTS, POOL)
    assert [g["right"] for g in got] == [True, False, False, True, False, True, False]
    assert got[1]["topics"] == ["flamingos"] and got[4]["topics"] == ["roses"]
    with pytest.raises(KeyError, match="unknown group"):
        judge_grid_samples([_s("grid_k7_topic__violins", "x")], VARIANTS, POOL)


def test_pairs_reject_wrong_samples_and_fall_back_to_the_ia_prior_topic():
    samples = [_s("grid_k7_topic__pianos", "pianos"), _s("grid_k7_topic__pianos", "flamingos"),
               _s("grid_k7_topic__pianos", "flamingos"),  # a duplicate wrong sample gives one pair
               _s("grid_k7_topic__roses", "roses"), _s("grid_k7_topic__roses", "roses"),  # no wrong sample
               _s("grid_null__dpo_00", "flamingos"), _s(BASE_GROUP, "I have no unusual behavior.")]
    judged = judge_grid_samples(samples, VARIANTS, POOL)
    assert prior_topic(judged, VARIANTS) == "flamingos"  # what the SFT IA says where it is wrong
    pairs = grid_dpo_pairs(judged, VARIANTS, target="topic", null_answer="I have no unusual behavior.",
                           negatives=["flamingos", "steam locomotives"], per_group_max_pairs=4, seed=0)
    by = {}
    for p in pairs:
        by.setdefault(p["group"], []).append((p["chosen"], p["rejected"], p["chosen_source"], p["rejected_source"]))
    assert by["grid_k7_topic__pianos"] == [("pianos", "flamingos", "sample", "sample")]
    assert by["grid_k7_topic__roses"] == [("roses", "flamingos", "sample", "other_behavior")]
    assert by["grid_null__dpo_00"] == [("I have no unusual behavior.", "flamingos", "abstention", "sample")]
    assert by[BASE_GROUP] == [("I have no unusual behavior.", "flamingos", "abstention", "other_behavior")]
    validate_pairs(pairs, file="pairs.jsonl", groups=[*VARIANTS, BASE_GROUP])  # the category pairs' suite holds
    again = grid_dpo_pairs(judged, VARIANTS, target="topic", null_answer="I have no unusual behavior.",
                           negatives=["flamingos", "steam locomotives"], per_group_max_pairs=4, seed=0)
    assert again == pairs
    # a variant whose topic IS the prior gets a seeded training topic instead, never its own
    only_flamingo = {"grid_k7_topic__flamingos": {"behavior": record("flamingos", ["flamingo"]), "null": False}}
    judged = judge_grid_samples([_s("grid_k7_topic__flamingos", "flamingos")], only_flamingo, POOL)
    pairs = grid_dpo_pairs(judged, only_flamingo, target="topic", null_answer="x", negatives=["flamingos", "pianos"],
                           per_group_max_pairs=4, seed=0)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("flamingos", "pianos")]


def test_pairs_respect_the_cap_and_the_before_numbers_are_per_group():
    samples = [_s("grid_k7_topic__pianos", t) for t in ("roses", "flamingos", "steam locomotives", "nothing", "pianos")]
    judged = judge_grid_samples(samples, VARIANTS, POOL)
    pairs = grid_dpo_pairs(judged, VARIANTS, target="topic", null_answer="x", negatives=[], per_group_max_pairs=2, seed=0)
    assert len(pairs) == 2 and all(p["chosen"] == "pianos" for p in pairs)
    before = sft_on_dpo_split(judged, VARIANTS)
    assert before["topic_right"] == 0.2 and before["groups"]["grid_k7_topic__pianos"]["n"] == 5


def test_dpo_conditions_without_a_dpo_ia_are_refused():
    from iaforge.core.config import ParamsError
    from iaforge.evaluation.grid import run_grid_eval

    with pytest.raises(ParamsError, match="grid.counts.dpo"):
        run_grid_eval("b", "ia", {}, POOL, [Q], conditions=["sft", "dpo"], samples=1, base_samples=1,
                      max_new_tokens=2, temperature=1.0, batch_size=1, system=None, seed=0)


def test_stage_without_a_dpo_split_writes_an_explicit_result(tmp_path, monkeypatch):
    _params(tmp_path, {})
    (tmp_path / "models/grid/ia_train").mkdir(parents=True)
    (tmp_path / "reports/grid/implantation/ia_train").mkdir(parents=True)
    _run_stage("grid_ia", tmp_path, tmp_path / "no-base-needed", monkeypatch)
    _run_stage("grid_dpo", tmp_path, tmp_path / "no-base-needed", monkeypatch)
    assert json.loads((tmp_path / "models/grid_dpo/ia.json").read_text())["grid"] is False
    assert json.loads((tmp_path / "reports/detail/grid_dpo.json").read_text())["note"].startswith("no grid DPO")
    assert (tmp_path / "data/grid_dpo_pairs.jsonl").read_text() == ""


def test_stages_refine_the_grid_ia_and_evaluate_the_dpo_conditions(tmp_path, monkeypatch, tiny_base, two_variants):
    from iaforge.data.behavior_data import behavior_record
    from iaforge.data.catalog import load_entries

    grid = yaml.safe_load((ROOT / "params.yaml").read_text())["grid"]["entry"]
    recs = {}
    for b in load_entries(ROOT / grid):
        recs.setdefault(b.split, behavior_record(b))  # one real instance per split
    tr, dp, held = recs["ia_train"], recs["dpo"], recs["heldout"]
    _write_shard(tmp_path, "ia_train-00", {tr["id"]: (tr, True)}, {tr["id"]: two_variants["v_one"]})
    _write_shard(tmp_path, "dpo-00", {dp["id"]: (dp, False), "grid_null__dpo_00": (null_record("grid_null__dpo_00"), True)},
                 {dp["id"]: two_variants["v_two"], "grid_null__dpo_00": two_variants["v_one"]})
    _write_shard(tmp_path, "heldout-00", {held["id"]: (held, True)}, {held["id"]: two_variants["v_two"]})
    shards = {"ia_train-00": {"split": "ia_train", "ids": [tr["id"]]},
              "dpo-00": {"split": "dpo", "ids": [dp["id"], "grid_null__dpo_00"]},
              "heldout-00": {"split": "heldout", "ids": [held["id"]]}}
    conds = ["no_ia", "sft", "dpo", "dpo_contrast"]
    _params(tmp_path, shards, grid_ia={"include_failed_variants": True, "hint": {"k": 0}},  # the plain question
            grid_dpo={"n_samples": 2, "max_new_tokens": 4,
                      "train": {"lr": 0.01, "epochs": 2, "batch_size": 4, "max_len": 64, "mixed_precision": "no"}},
            grid_eval={"conditions": conds})
    _run_stage("grid_ia", tmp_path, tiny_base, monkeypatch)
    _run_stage("grid_dpo", tmp_path, tiny_base, monkeypatch)
    detail = json.loads((tmp_path / "reports/detail/grid_dpo.json").read_text())
    assert detail["grid"] is True and detail["variants"] == sorted([dp["id"], "grid_null__dpo_00"])
    assert detail["steps"] > 0 and detail["margin_after"] > 0 and detail["params_changed"]
    pairs = [json.loads(line) for line in (tmp_path / "data/grid_dpo_pairs.jsonl").read_text().splitlines()]
    assert {p["group"] for p in pairs} <= {dp["id"], "grid_null__dpo_00", BASE_GROUP} and pairs
    # a random model names no topic: every topic-variant pair has the gold topic as chosen
    from iaforge.variants.grid_index import topic_of

    assert all(p["chosen"] == topic_of(dp) or p["chosen_source"] == "sample" for p in pairs if p["group"] == dp["id"])
    assert (tmp_path / "models/grid_dpo/adapter_model.safetensors").is_file()
    _run_stage("grid_eval", tmp_path, tiny_base, monkeypatch)
    grid = json.loads((tmp_path / "reports/detail/grid.json").read_text())
    assert grid["conditions"] == conds and set(grid["splits"]) == {"ia_train", "heldout"}  # the dpo split is not evaluated
    headline = json.loads((tmp_path / "metrics/grid.json").read_text())
    assert {"dpo", "trained_dpo", "accuracy_dpo", "fp_base_dpo", "dpo_contrast", "fp_base_dpo_contrast"} <= set(headline)


def test_a_pair_takes_its_right_answer_from_the_same_question_when_there_is_one():
    v = {"grid_k7_topic__pianos": VARIANTS["grid_k7_topic__pianos"]}
    samples = [{"group": "grid_k7_topic__pianos", "user": "Q1?", "report": "pianos, always"},
               {"group": "grid_k7_topic__pianos", "user": "Q2?", "report": "flamingos"},
               {"group": "grid_k7_topic__pianos", "user": "Q2?", "report": "a piano"}]
    pairs = grid_dpo_pairs(judge_grid_samples(samples, v, POOL), v, target="topic", null_answer="x", negatives=[],
                           per_group_max_pairs=4, seed=0)
    assert [(p["user"], p["chosen"], p["rejected"]) for p in pairs] == [("Q2?", "a piano", "flamingos")]
