"""Pooling grid runs over IA seeds (evaluation/grid_pool.py): per-topic means, intervals over topics, curve points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iaforge.evaluation import grid_pool as gp


def make_run(folder: Path, *, n_train: int, sft_contrast: dict[str, float], no_ia: dict[str, float] | None = None,
             seed_in_name: int | None = 0, correct: set[str] = frozenset()) -> Path:
    """A saved run as experiments/scaling.py writes it: held-out rows per topic, the IA's variant list, gates."""
    folder = folder if seed_in_name is None else folder.with_name(f"{folder.name}_seed{seed_in_name}")
    folder.mkdir(parents=True)
    no_ia = no_ia or {}
    rows = [{"variant": f"v_{t}", "split": "heldout", "null": False, "topic": t, "sft": v / 2, "sft_contrast": v,
             "no_ia": no_ia.get(t, 0.0), "prefill": 0.0, "no_ia_contrast": 0.0,
             "sft_contrast_correct": t in correct, "sft_correct": False} for t, v in sorted(sft_contrast.items())]
    rows.append({"variant": "null_h", "split": "heldout", "null": True, "topic": None})
    rows.append({"variant": "t_0", "split": "ia_train", "null": False, "topic": "train0", "sft": 1.0})
    trained = [f"t_{i}" for i in range(n_train)]
    (folder / "grid_detail.json").write_text(json.dumps({"per_variant": rows}))
    (folder / "metrics.json").write_text(json.dumps({"trained_sft": 0.9, "fp_base_sft": 0.0, "fp_null_sft": 0.1,
                                                     "chance": 0.01, "sft_contrast": sum(sft_contrast.values()) / len(sft_contrast)}))
    (folder / "grid_ia.json").write_text(json.dumps({"variants": trained + ["grid_null__ia_train_00"], "steps": 300,
                                                     "tokens": 1000, "target": "topic"}))
    (folder / "implantation.json").write_text(json.dumps(
        {v: {"rate_triggered": 0.5, "rate_untriggered": 0.1, "leak_rate": 0.0, "passed": i == 0}
         for i, v in enumerate(trained)}))
    return folder


def test_point_pools_seeds_per_topic_and_reports_the_interval_over_topics(tmp_path):
    topics = [f"topic{i}" for i in range(10)]
    a = gp.load_run(make_run(tmp_path / "h10_n8", n_train=8, sft_contrast={t: 1.0 if i < 5 else 0.0 for i, t in enumerate(topics)},
                             no_ia={"topic0": 0.25}, correct={"topic0"}))
    b = gp.load_run(make_run(tmp_path / "h10_n8", n_train=8, seed_in_name=2,
                             sft_contrast={t: 0.5 for t in topics}, no_ia={"topic0": 0.25}))
    p = gp.curve_point([a, b])
    assert p["n_train"] == 8 and p["n_heldout"] == 10 and p["seeds"] == [0, 2]
    assert p["sft_contrast"] == 0.5 and p["sft_contrast_per_seed"] == [0.5, 0.5]  # (1 + .5)/2 and (0 + .5)/2 per topic
    lo, hi = p["sft_contrast_ci95"]
    assert 0.25 <= lo < 0.5 < hi <= 0.75  # the topics disagree (0.75 vs 0.25): a real interval around the mean
    assert p["no_ia"] == 0.025 and p["n_beyond_leakage"] == 9  # topic0 leaks without the IA
    assert p["sft_contrast_beyond_leakage"] == round((4 * 0.75 + 5 * 0.25) / 9, 3)
    assert p["accuracy_contrast"] == 0.05  # topic0 top-1 in one of two seeds: 0.5 / 10 topics
    assert p["trained_sft"] == 0.9 and p["fp_null_sft"] == 0.1 and p["gate_passed"] == 1 and p["implanted_triggered"] == 0.5


def test_hinted_conditions_pool_when_every_run_asked_them_and_are_none_otherwise(tmp_path):
    """The hinted IA, its no-IA control and the lens pool like the rest; a condition a run's grid_eval did not ask
    (here sft_hint on the second run) is absent from the point, never counted as 0."""
    topics = ["a", "b", "c", "d"]

    def hinted(folder, seed, with_hint=True):
        f = make_run(folder, n_train=4, sft_contrast={t: 0.0 for t in topics}, seed_in_name=seed)
        d = json.loads((f / "grid_detail.json").read_text())
        for r in d["per_variant"]:
            if r["split"] == "heldout" and not r["null"] and with_hint:
                t = r["topic"]
                r.update(sft_hint=1.0 if t in "ab" else 0.25, sft_hint_correct=t in "ab", sft_hint_predicted=t,
                         no_ia_hint=0.125 if t == "a" else 0.0, lens_first=t != "d", lens_any=True)
        (f / "grid_detail.json").write_text(json.dumps(d))
        m = json.loads((f / "metrics.json").read_text())
        (f / "metrics.json").write_text(json.dumps({**m, "sft_hint": 0.625, "trained_sft_hint": 1.0} if with_hint else m))
        return gp.load_run(f)

    p = gp.curve_point([hinted(tmp_path / "h4_n4", 0), hinted(tmp_path / "h4_n4", 2)])
    assert p["sft_hint"] == 0.625 and p["no_ia_hint"] == round(0.125 / 4, 3)
    assert p["lens_first"] == 0.75 and p["lens_any"] == 1.0 and p["accuracy_sft_hint"] == 0.5
    assert p["sft_hint_per_seed"] == [0.625, 0.625] and p["trained_sft_hint"] == 1.0
    assert p["sft_hint_ci95"][0] < 0.625 < p["sft_hint_ci95"][1]
    mixed = gp.curve_point([hinted(tmp_path / "m4_n4", 0), hinted(tmp_path / "m4_n4", 2, with_hint=False)])
    assert mixed["sft_hint"] is None and mixed["sft_hint_ci95"] is None and mixed["accuracy_sft_hint"] is None
    assert mixed["sft_contrast"] == 0.0  # asked by both


def test_one_seed_agreeing_topics_give_a_point_interval(tmp_path):
    a = gp.load_run(make_run(tmp_path / "h3_n4", n_train=4, sft_contrast={"x": 0.5, "y": 0.5, "z": 0.5}))
    assert gp.curve_point([a])["sft_contrast_ci95"] == [0.5, 0.5]


def test_point_refuses_runs_that_are_not_one_point(tmp_path):
    a = gp.load_run(make_run(tmp_path / "h2_n4", n_train=4, sft_contrast={"x": 1.0, "y": 0.0}))
    other_n = gp.load_run(make_run(tmp_path / "h2_n8", n_train=8, sft_contrast={"x": 1.0, "y": 0.0}))
    other_held = gp.load_run(make_run(tmp_path / "h2b_n4", n_train=4, seed_in_name=1, sft_contrast={"x": 1.0, "w": 0.0}))
    same_seed = gp.load_run(make_run(tmp_path / "again_n4", n_train=4, sft_contrast={"x": 1.0, "y": 0.0}))
    with pytest.raises(gp.RunFolderError, match="different variants"):
        gp.curve_point([a, other_n])
    with pytest.raises(gp.RunFolderError, match="different held-out topics"):
        gp.curve_point([a, other_held])
    with pytest.raises(gp.RunFolderError, match="repeat an IA seed"):
        gp.curve_point([a, same_seed])
    assert [n for n in gp.group_runs([other_n, a])] == [4, 8]


def test_load_run_names_the_missing_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{}")
    with pytest.raises(gp.RunFolderError, match="missing grid_detail.json"):
        gp.load_run(tmp_path / "r")
    (tmp_path / "r" / "grid_detail.json").write_text("{not json")
    with pytest.raises(gp.RunFolderError, match="grid_detail.json: not JSON"):
        gp.load_run(tmp_path / "r")


def test_paired_difference_counts_topics_up_and_down(tmp_path):
    new = gp.load_run(make_run(tmp_path / "new", n_train=8, sft_contrast={"x": 1.0, "y": 0.5, "z": 0.0}))
    old = gp.load_run(make_run(tmp_path / "old", n_train=4, sft_contrast={"x": 0.5, "y": 0.5, "z": 0.25}))
    d = gp.paired_difference([new], [old], ["x", "y", "z"], "sft_contrast")
    assert d["mean"] == round((0.5 + 0 - 0.25) / 3, 3) and d["topics_up"] == 1 and d["topics_down"] == 1
    assert d["ci95_over_topics"][0] <= d["mean"] <= d["ci95_over_topics"][1]


def test_top1_classes_say_whether_a_miss_is_a_trained_neighbour_of_the_same_kind(tmp_path):
    """The IA's top-1 answer on a held-out topic, classified against the topics it trained on and their kinds."""
    held = ("bees", "figs", "oslo", "pears", "rome", "owls")
    folder = make_run(tmp_path / "h6_n3", n_train=3, sft_contrast={t: 0.0 for t in held})
    detail = json.loads((folder / "grid_detail.json").read_text())
    predicted = {"bees": "bees", "figs": "plums", "oslo": "ants", "pears": "paris", "rome": "mars", "owls": None}
    for r in detail["per_variant"]:
        if r["split"] == "heldout" and not r["null"]:
            r["sft_predicted"] = predicted[r["topic"]]
    detail["per_variant"] = [r for r in detail["per_variant"] if r["split"] != "ia_train"] + [
        {"variant": f"t_{t}", "split": "ia_train", "null": False, "topic": t, "sft": 1.0} for t in ("ants", "plums", "paris")]
    (folder / "grid_detail.json").write_text(json.dumps(detail))
    kinds = {"bees": "animal", "owls": "animal", "ants": "animal", "figs": "food", "plums": "food", "pears": "food",
             "oslo": "place", "rome": "place", "paris": "place", "mars": "sky"}
    run = gp.load_run(folder)
    assert run["trained_topics"] == ["ants", "paris", "plums"]
    c = gp.top1_classes([run], sorted(run["heldout"]), kinds, "sft")
    # bees: own; figs -> plums: a trained food; oslo -> ants and pears -> paris: trained, another kind;
    # rome -> mars: never trained; owls: none
    assert {k: c[k] for k in gp.TOP1_CLASSES} == {"own": 0.167, "same_kind": 0.167, "other_kind": 0.333,
                                                   "untrained": 0.167, "none": 0.167}
    assert c["n"] == 6 and c["misses_trained"] == 3 and c["same_kind_of_misses"] == 0.333
    # every held-out topic has one trained topic of its kind among three
    assert c["same_kind_chance"] == 0.333
    # pears -> paris shares the initial; by chance only pears has trained topics of its initial (plums, paris: 2/3)
    assert c["same_initial_of_misses"] == 0.333 and c["same_initial_chance"] == round(2 / 3 / 6, 3)
    # wrong answers plums, ants, paris, mars: each once (1/6 of the topics); bees, plums, ants, paris, mars named
    assert c["attractor_share"] == 0.167 and c["distinct_answers"] == 5
    point = gp.curve_point([run], kinds)
    assert point["top1_classes"]["sft"] == c and "top1_classes" not in gp.curve_point([run])


def test_an_ia_that_collapses_onto_one_answer_has_a_large_attractor_share(tmp_path):
    folder = make_run(tmp_path / "h4_n2", n_train=2, sft_contrast={t: 0.0 for t in ("a1", "b1", "c1", "d1")})
    detail = json.loads((folder / "grid_detail.json").read_text())
    for r in detail["per_variant"]:
        if r["split"] == "heldout" and not r["null"]:
            r["sft_predicted"] = "d1" if r["topic"] == "d1" else "rose"  # three misses onto one topic, one right
    (folder / "grid_detail.json").write_text(json.dumps(detail))
    run = gp.load_run(folder)
    c = gp.top1_classes([run, run], sorted(run["heldout"]), {}, "sft")
    assert c["attractor_share"] == 0.75 and c["distinct_answers"] == 2 and c["own"] == 0.25
