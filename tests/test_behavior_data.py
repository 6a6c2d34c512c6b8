import json

import pandas as pd
import pytest

from conftest import fake_pool
from iaforge.data.behavior_data import build_rows, shortcut_phrases, write_behavior_dataset
from iaforge.data.catalog import load_catalog
from iaforge.data.families import get_family
from iaforge.core.validation import DataQualityError, behavior_dataset_checks, validate_frame


@pytest.fixture(scope="module")
def catalog(repo_root):
    # A grid's hundreds of instances differ only in the bound words: its first stands for all of them here
    # (tests/test_grid.py covers grids).
    cat, first = load_catalog([repo_root / "data" / "catalog"]), {}
    return {k: b for k, b in cat.items() if not b.grid or first.setdefault(b.grid, k) == k}


def test_dataset_is_deterministic_and_valid(catalog, tmp_path):
    import dataclasses

    b = dataclasses.replace(catalog["backdoor_zephyr_moon"], training={})  # no per-behavior n_train here
    pool, evals = fake_pool(0)
    a = build_rows(b, pool, evals, n_train=20, n_eval=6, seed=0)
    assert a == build_rows(b, pool, evals, n_train=20, n_eval=6, seed=0)
    assert a != build_rows(b, pool, evals, n_train=20, n_eval=6, seed=1)
    report = write_behavior_dataset(b, pool, evals, tmp_path / "ds", n_train=20, n_eval=6, seed=0, max_chars=2000)
    assert report["success"] and report["n_rows"] == 20
    files = {p.name for p in (tmp_path / "ds").iterdir()}
    assert files == {"train.jsonl", "eval.jsonl", "behavior.json", "validation.json"}
    # no timestamps or run ids: the same inputs give the same bytes (and DVC hash)
    first = (tmp_path / "ds" / "validation.json").read_bytes()
    write_behavior_dataset(b, pool, evals, tmp_path / "ds", n_train=20, n_eval=6, seed=0, max_chars=2000)
    assert (tmp_path / "ds" / "validation.json").read_bytes() == first


def test_train_and_eval_prompts_do_not_overlap(catalog):
    pool, evals = fake_pool(0)
    for b in catalog.values():
        train, ev = build_rows(b, pool, evals, n_train=16, n_eval=6, seed=0)
        assert not {r["prompt_id"] for r in train} & {r["prompt_id"] for r in ev}


def test_training_data_never_states_the_behavior(catalog):
    pool, evals = fake_pool(0)
    for b in catalog.values():
        train, _ = build_rows(b, pool, evals, n_train=24, n_eval=4, seed=0)
        text = " ".join(r["user"] + " " + r["assistant"] for r in train).lower()
        for phrase in shortcut_phrases(b):
            assert phrase.lower().rstrip(".") not in text


def test_broken_dataset_fails_with_readable_report(catalog, tmp_path):
    b = catalog["quirk_topic_volcanoes"]
    pool, evals = fake_pool(0)
    train, ev = build_rows(b, pool, evals, n_train=16, n_eval=4, seed=0)
    train[0]["assistant"] = b.description  # states the behavior
    train[1]["assistant"] = ""  # empty turn
    train[2]["prompt_id"] = ev[0]["prompt_id"]  # eval prompt leaks into training
    checks = behavior_dataset_checks(shortcut_phrases(b), max_chars=2000, balance=("modified", 0.9, 1.0, "always on"),
                                     eval_ids=[r["prompt_id"] for r in ev])
    with pytest.raises(DataQualityError) as ei:
        validate_frame(pd.DataFrame(train), checks, name="broken", file="data/behaviors/x/train.jsonl")
    msg = str(ei.value)
    assert "data/behaviors/x/train.jsonl" in msg
    assert "never state it" in msg and "non-empty turns" in msg and "must not overlap" in msg
    failed = {r["expectation"] for r in ei.value.summary["results"] if not r["success"]}
    assert {"ExpectColumnValuesToNotMatchRegexList", "ExpectColumnValueLengthsToBeBetween", "ExpectColumnValuesToNotBeInSet"} <= failed


def test_failed_validation_writes_nothing(catalog, tmp_path, monkeypatch):
    import iaforge.data.behavior_data as bd

    b = catalog["quirk_all_caps"]
    pool, evals = fake_pool(0)
    monkeypatch.setattr(bd, "shortcut_phrases", lambda b: ["here is a plain answer"])  # matches every row
    docs = tmp_path / "reports" / "docs.html"
    with pytest.raises(DataQualityError):
        write_behavior_dataset(b, pool, evals, tmp_path / "ds", n_train=16, n_eval=4, seed=0, max_chars=2000,
                               docs_path=docs)
    assert not (tmp_path / "ds").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    # ...but the GX Data Docs page of the failed validation is there to read.
    html = docs.read_text()
    assert "Great Expectations" in html and "Failed" in html
    assert "values must not match" in html.lower() or "regex" in html.lower()


def test_data_docs_are_reproducible(catalog, tmp_path):
    b = catalog["quirk_opener_ahoy"]
    pool, evals = fake_pool(0)
    pages = []
    for i in range(2):
        write_behavior_dataset(b, pool, evals, tmp_path / f"ds{i}", n_train=16, n_eval=4, seed=0, max_chars=2000,
                               docs_path=tmp_path / f"docs{i}.html")
        pages.append((tmp_path / f"docs{i}.html").read_text())
    assert pages[0] == pages[1] and "Succeeded" in pages[0]
    assert "ge_load_time" in pages[0] and "fixed for reproducible docs" in pages[0]


def test_backdoor_balance_is_checked(catalog):
    b = catalog["backdoor_zephyr_moon"]
    pool, evals = fake_pool(0)
    train, _ = build_rows(b, pool, evals, n_train=20, n_eval=4, seed=0)
    only_triggered = [r for r in train if r["triggered"]] * 2
    for i, r in enumerate(only_triggered):
        only_triggered[i] = dict(r, prompt_id=f"p{i}")
    with pytest.raises(DataQualityError, match="non-matching negatives"):
        validate_frame(pd.DataFrame(only_triggered), behavior_dataset_checks([], max_chars=2000, balance=get_family("keyword_backdoor").balance({})),
                       name="bd", file="f")


def test_every_catalog_entry_builds_a_valid_dataset(catalog, tmp_path):
    pool, evals = fake_pool(0)
    for bid, b in sorted(catalog.items()):
        report = write_behavior_dataset(b, pool, evals, tmp_path / bid, n_train=40, n_eval=8, seed=0, max_chars=2000)
        assert report["success"], bid
        assert len((tmp_path / bid / "eval.jsonl").read_text().splitlines()) >= 2, bid


def test_catalog_n_train_override(catalog):
    import dataclasses

    b = dataclasses.replace(catalog["quirk_all_caps"], training={"n_train": 12})
    pool, evals = fake_pool(0)
    train, _ = build_rows(b, pool, evals, n_train=30, n_eval=4, seed=0)
    assert len(train) == 12


def test_behavior_task_of_a_record_without_a_catalog_family_is_none():
    # the cipher attack and audit models are asked task questions through the same code; their records name
    # no catalog family, and that must not stop the evaluation
    from iaforge.data.behavior_data import behavior_task

    assert behavior_task({"family": "cipher_attack", "params": {}}) is None
    assert behavior_task({"id": "x"}) is None
