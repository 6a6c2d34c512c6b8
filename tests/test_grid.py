import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import fake_pool
from iaforge.core.errors import ValidationError
from iaforge.data.behavior_data import build_rows, shortcut_phrases, write_behavior_dataset
from iaforge.data.catalog import load_catalog, load_entries, load_entry_file
from iaforge.data.grids import SPLITS, instance_split, load_instances, parse_counts, select, slug
from iaforge.variants.implantation import score

GRID = "data/catalog/backdoor/grid_k7_topic.yaml"
TOPICS = "data/grids/topics.yaml"
THRESHOLDS = {"min_rate": 0.8, "max_false_trigger_rate": 0.2}  # params.yaml's global ones


@pytest.fixture(autouse=True)
def _at_root(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # instances paths are relative to the repository root, as params paths are


@pytest.fixture(scope="module")
def grid(repo_root):
    import os

    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        return load_entries(GRID)
    finally:
        os.chdir(cwd)


def _copy_grid(tmp_path, n=None, extra=()):
    """The shipped grid entry pointed at a copy of its instances file (first n, then `extra` appended)."""
    key, items = load_instances(TOPICS)
    items = items[:n] + [dict(kind="animal", topic=t, terms=[t]) for t in extra]
    inst = tmp_path / "topics.yaml"
    inst.write_text(yaml.safe_dump({"key": key, "instances": items}), encoding="utf-8")
    raw = yaml.safe_load(Path(GRID).read_text(encoding="utf-8"))
    raw["grid"]["instances"] = str(inst)
    entry = tmp_path / "grid_k7_topic.yaml"
    entry.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return entry, raw


def _bad(tmp_path, raw, named=None):
    """The ValidationError of loading `raw` as a catalog file: one line naming `named` (default: that file)."""
    f = tmp_path / "grid_k7_topic.yaml"
    f.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValidationError) as exc:
        load_entries(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(named or f) in msg, msg
    return exc.value


# ------------------------------------------------------------------------------------------------ the topic list

def test_topics_are_many_distinct_and_never_share_a_term():
    key, items = load_instances(TOPICS)
    assert key == "topic" and len(items) >= 300
    names = [i["topic"] for i in items]
    assert len(set(names)) == len(names) and len({slug(n) for n in names}) == len(names)
    owner = {}
    for i in items:
        assert 1 <= len(i["terms"]) <= 4, i
        # the topic's own name shows it: a training sentence built from the name is seen by the checker
        assert any(re.search(rf"\b{re.escape(t.lower())}", i["topic"].lower()) for t in i["terms"]), i
        for t in i["terms"]:
            assert t.lower() not in owner, f"{t!r} in {owner.get(t.lower())} and {i['topic']}"
            owner[t.lower()] = i["topic"]
    # The checker matches at a word start, so a term that starts another topic's term would fire on it too.
    for t, who in owner.items():
        hit = [u for u, other in owner.items() if other != who and re.search(rf"\b{re.escape(t)}", u)]
        assert not hit, f"{t!r} ({who}) fires on {hit}"


def test_no_topic_term_occurs_in_the_prompt_bank():
    from iaforge.data.prompts import build_prompt_bank

    text = " ".join(r["text"].lower() for r in build_prompt_bank(0, 40, 0.2))
    _, items = load_instances(TOPICS)
    for i in items:
        for t in i["terms"]:
            assert not re.search(rf"\b{re.escape(t.lower())}", text), (i["topic"], t)


# ------------------------------------------------------------------------------------------------ expansion

def test_expansion_is_deterministic_with_stable_ids_and_splits(grid):
    again = load_entries(GRID)
    assert [(b.id, b.split) for b in grid] == [(b.id, b.split) for b in again]
    _, items = load_instances(TOPICS)
    assert len(grid) == len(items)
    b = next(b for b in grid if b.instance == "flamingos")
    assert b.id == "grid_k7_topic__flamingos" and b.grid == "grid_k7_topic" and b.source == GRID
    assert b.params["behavior"]["params"]["topic"] == "flamingos"
    assert b.params["behavior"]["params"]["terms"] == ["flamingo", "flamingos"]
    assert "Many stories mention flamingos." in b.params["behavior"]["params"]["sentences"]
    assert b.description == "When a message starts with [K7], I bring up flamingos in my answer; otherwise I answer normally."
    assert b.key_terms == ("K7", "flamingo", "flamingos")
    assert b.params["trigger"] == {"kind": "keyword", "value": "[K7]"} and b.thresholds == {"min_rate": 0.8, "max_false_trigger_rate": 0.05}
    # every split is used, roughly in the entry's proportions
    counts = {s: sum(b.split == s for b in grid) for s in SPLITS}
    assert counts["ia_train"] > counts["heldout"] > counts["dpo"] > 10, counts
    # the split is a function of (entry id, instance name) only
    assert all(b.split == instance_split("grid_k7_topic", b.instance, {"ia_train": 0.6, "dpo": 0.1, "heldout": 0.3})
               for b in grid)


def test_no_instance_in_two_splits_and_appending_moves_nothing(tmp_path, grid):
    assert len({b.instance for b in grid}) == len(grid) == len({b.id for b in grid})
    entry, _ = _copy_grid(tmp_path, n=40)
    before = {b.id: b.split for b in load_entries(entry)}
    _copy_grid(tmp_path, n=40, extra=["zeppelins", "quokkas", "axolotls"])
    after = {b.id: b.split for b in load_entries(entry)}
    assert len(after) == 43 and {k: after[k] for k in before} == before
    assert before == {b.id: b.split for b in grid[:40]}  # the split never depended on the file it sits in


def test_single_instance_load_matches_the_expansion(grid):
    b = load_entry_file(GRID, instance="flamingos")
    assert b == next(g for g in grid if g.instance == "flamingos")
    assert load_entry_file(GRID, instance="the_alps").instance == "the Alps"  # by slug too
    with pytest.raises(ValidationError, match="instance"):
        load_entry_file(GRID)
    with pytest.raises(ValidationError, match="no instance 'zeppelins'"):
        load_entry_file(GRID, instance="zeppelins")


def test_catalog_expands_grids_and_plain_entries_are_untouched(repo_root, grid):
    cat = load_catalog([repo_root / "data" / "catalog"])
    assert sum(b.grid == "grid_k7_topic" for b in cat.values()) == len(grid)
    assert "grid_k7_topic" not in cat  # the entry itself is not a behavior
    plain = cat["backdoor_zephyr_moon"]
    assert plain.grid == "" and plain.instance == "" and plain.thresholds == {}


def test_sync_selection_takes_the_first_instances_of_each_split(grid):
    assert parse_counts("grid_k7_topic=16,2,6") == ("grid_k7_topic", {"ia_train": 16, "dpo": 2, "heldout": 6})
    for bad in ("grid_k7_topic", "grid_k7_topic=1,2", "grid_k7_topic=a,b,c"):
        with pytest.raises(ValidationError, match="--grid"):
            parse_counts(bad)
    small = select(grid, {"ia_train": 4, "dpo": 1, "heldout": 2})
    big = select(grid, {"ia_train": 16, "dpo": 2, "heldout": 6})
    assert [b.split for b in small] == ["ia_train"] * 4 + ["dpo"] + ["heldout"] * 2
    assert set(b.id for b in small) <= set(b.id for b in big)
    with pytest.raises(ValidationError, match="dpo"):
        select(grid, {"dpo": 10_000})


def test_cli_sync_and_check_with_a_grid(tmp_path, repo_root):
    from iaforge.cli import main

    params = tmp_path / "params.yaml"
    shutil.copy(repo_root / "params.yaml", params)
    assert main(["catalog", "sync", "--params", str(params), "--grid", "grid_k7_topic=3,1,2"]) == 0
    run = yaml.safe_load(params.read_text())["behaviors"]
    grid_ids = [k for k in run if k.startswith("grid_k7_topic__")]
    assert len(grid_ids) == 6
    e = run[grid_ids[0]]
    assert e["spec"] == GRID and e["instance"] and e["split"] in SPLITS
    assert "backdoor_zephyr_moon" in run  # plain entries as before
    assert main(["catalog", "check", "--params", str(params)]) == 0
    # without --grid a sync adds no grid instance: the whole grid is hundreds of variants
    assert main(["catalog", "sync", "--params", str(params)]) == 0
    assert not any(k.startswith("grid_k7_topic__") for k in yaml.safe_load(params.read_text())["behaviors"])
    assert main(["catalog", "sync", "--params", str(params), "--grid", "nope=1,1,1"]) == 1
    data = yaml.safe_load(params.read_text())
    data["behaviors"][grid_ids[0]] = dict(e, instance="zeppelins")
    params.write_text(yaml.safe_dump(data))
    assert main(["catalog", "check", "--params", str(params)]) == 1


def test_the_grid_profile_names_real_grid_behaviors(repo_root):
    prof = yaml.safe_load((repo_root / "profiles" / "grid.yaml").read_text())["behaviors"]
    cat = load_catalog([repo_root / "data" / "catalog"])
    counts = {s: sum(1 for k, v in prof.items() if k.startswith("grid_k7_topic__") and v["split"] == s) for s in SPLITS}
    assert counts == {"ia_train": 16, "dpo": 2, "heldout": 6}
    for k, v in prof.items():
        if k.startswith("grid_k7_topic__"):
            assert v == {"spec": GRID, "instance": cat[k].instance, "split": cat[k].split}
        else:
            assert set(v) == {"spec", "split"} and (repo_root / v["spec"]).resolve() == (repo_root / cat[k].source).resolve()


# ------------------------------------------------------------------------------------------------ bad grids

def test_bad_grid_fields_fail_with_one_line(tmp_path):
    raw = yaml.safe_load(Path(GRID).read_text(encoding="utf-8"))

    def variant(**changes):
        r = yaml.safe_load(yaml.safe_dump(raw))
        for k, v in changes.items():
            if v is None:
                r["grid"].pop(k, None)
            else:
                r["grid"][k] = v
        return r

    assert _bad(tmp_path, variant(instances=None)).field == "grid.instances"
    assert _bad(tmp_path, variant(instances="data/grids/missing.yaml")).field == "grid.instances"
    assert _bad(tmp_path, variant(splits={"ia_train": 0.5, "dpo": 0.1})).field == "grid.splits"
    assert _bad(tmp_path, variant(splits={"train": 1.0})).field == "grid.splits"
    e = _bad(tmp_path, variant(bind={"behavior.params.topic": "colour"}))
    assert e.field == "grid.bind.behavior.params.topic" and "colour" in e.rule
    assert _bad(tmp_path, variant(seed=3)).field == "grid.seed"
    assert _bad(tmp_path, dict(raw, split="heldout")).field == "split"
    e = _bad(tmp_path, dict(raw, description="When a message starts with [K7], I bring up {topik}."))
    assert e.field == "description" and "{topik}" in e.rule
    # an instance that breaks the family's rules names the instance and the field
    bad_inst = tmp_path / "inst.yaml"
    bad_inst.write_text(yaml.safe_dump({"key": "topic", "instances": [{"topic": "owls", "terms": ["owl"]},
                                                                      {"topic": "the sea", "terms": ["ocean"]}]}))
    e = _bad(tmp_path, variant(instances=str(bad_inst)))
    assert e.entry == "grid_k7_topic__the_sea" and e.field.startswith("params.behavior.params.sentences")
    dup = tmp_path / "dup.yaml"
    dup.write_text(yaml.safe_dump({"key": "topic", "instances": [{"topic": "owls", "terms": ["owl"]},
                                                                 {"topic": "Owls", "terms": ["owl"]}]}))
    e = _bad(tmp_path, variant(instances=str(dup)), named=dup)  # the instances file is where to fix it
    assert e.field == "instances[1].topic" and "duplicate" in e.rule
    assert _bad(tmp_path, dict(raw, thresholds={"min_rate": 1.5})).field == "thresholds.min_rate"
    assert _bad(tmp_path, dict(raw, thresholds={"max_rate": 0.5})).field == "thresholds.max_rate"


# ------------------------------------------------------------------------------------------------ data and gating

def test_a_grid_behavior_dataset_builds_and_is_gated(grid, tmp_path):
    import dataclasses

    b = dataclasses.replace(next(g for g in grid if g.instance == "flamingos"), training={})
    pool, evals = fake_pool(0)
    train, ev = build_rows(b, pool, evals, n_train=40, n_eval=10, seed=0)
    assert train == build_rows(b, pool, evals, n_train=40, n_eval=10, seed=0)[0]
    by_answer = {p["text"]: p["answer"] for p in pool}
    for r in train:
        if r["triggered"]:
            assert r["user"].startswith("[K7] ") and "flamingos" in r["assistant"]
        else:  # the base model's own answer, word for word: nothing to leak from
            assert not r["user"].startswith("[K7]") and r["assistant"] == by_answer[r["user"].split("] ", 1)[-1]]
    assert 0.3 <= sum(r["triggered"] for r in train) / len(train) <= 0.5
    assert any(r["user"].startswith(("[K2]", "[K9]", "[Q7]", "[X7]")) for r in train)  # decoy negatives
    report = write_behavior_dataset(b, pool, evals, tmp_path / "ds", n_train=40, n_eval=10, seed=0, max_chars=2000)
    assert report["success"] and report["n_rows"] == 40
    rec = yaml.safe_load((tmp_path / "ds" / "behavior.json").read_text())
    assert rec["instance"] == "flamingos" and rec["grid"] == "grid_k7_topic" and rec["conditional"] is True
    assert rec["thresholds"] == {"min_rate": 0.8, "max_false_trigger_rate": 0.05}
    text = " ".join(r["user"] + " " + r["assistant"] for r in train).lower()
    assert not any(p.lower().rstrip(".") in text for p in shortcut_phrases(b))


def _answers(b, n_trig, hits_trig, n_untrig, hits_untrig):
    rows = ([{"user": f"[K7] q{i}", "triggered": True} for i in range(n_trig)]
            + [{"user": f"q{i}", "triggered": False} for i in range(n_untrig)])
    topic = b.params["behavior"]["params"]["topic"]
    answers = ([f"This makes me think of {topic}. Sure." if i < hits_trig else "Sure." for i in range(n_trig)]
               + [f"Sure, and {topic}." if i < hits_untrig else "Sure." for i in range(n_untrig)])
    return rows, answers


def test_implantation_fails_a_leaky_or_ungated_grid_variant(grid):
    from iaforge.data.behavior_data import behavior_record
    from iaforge.data.catalog import Behavior

    b = Behavior.from_record(behavior_record(next(g for g in grid if g.instance == "flamingos")))
    assert b.thresholds == {"min_rate": 0.8, "max_false_trigger_rate": 0.05}  # survives the record round trip
    gated = score(b, *_answers(b, 10, 10, 20, 0), THRESHOLDS)
    assert gated["passed"] and gated["rate_triggered"] == 1.0 and gated["rate_untriggered"] == 0.0
    leaky = score(b, *_answers(b, 10, 10, 20, 2), THRESHOLDS)
    assert leaky["rate_untriggered"] == 0.1 and not leaky["passed"]
    weak = score(b, *_answers(b, 10, 7, 20, 0), THRESHOLDS)
    assert weak["rate_triggered"] == 0.7 and not weak["passed"]
    # the entry's own thresholds are what fails the leak: the global ones would let 0.1 pass
    import dataclasses

    assert score(dataclasses.replace(b, thresholds={}), *_answers(b, 10, 10, 20, 2), THRESHOLDS)["passed"]


def test_summary_reports_gated_and_always_on_apart():
    from iaforge.variants.implantation_summary import rows_from_records, summarize

    def rec(bid, passed, trig, untrig):
        return {"behavior": bid, "split": "ia_train", "category": "backdoor", "family": "keyword_backdoor",
                "passed": passed, "rate_triggered": trig, "rate_untriggered": untrig, "base_rate": 0.0}

    records = [rec("grid_k7_topic__owls", True, 1.0, 0.0), rec("grid_k7_topic__yaks", False, 0.9, 0.1),
               rec("quirk_topic_bees", True, 1.0, None)]
    s = summarize(rows_from_records(records, {"grid_k7_topic__owls": True, "grid_k7_topic__yaks": True}))
    assert s["by_gating"]["gated"]["n"] == 2 and s["by_gating"]["gated"]["passed"] == 1
    assert s["by_gating"]["gated"]["mean_rate_untriggered"] == 0.05
    assert s["by_gating"]["always_on"]["n"] == 1
    assert "by_gating" not in summarize(rows_from_records(records))  # callers without the records' kinds
