import random

import pytest

from iaforge.catalog import load_catalog
from iaforge.families import family_names, get_family
from conftest import fake_pool


@pytest.fixture(scope="module")
def catalog(repo_root):
    return load_catalog([repo_root / "data" / "catalog"])


def test_every_family_is_used_by_the_catalog(catalog):
    used = {b.family for b in catalog.values()}
    for b in catalog.values():
        if b.family == "backdoor":
            used.add(b.params["behavior"]["family"])
    assert set(family_names()) <= used


@pytest.mark.parametrize("bid", ["quirk_topic_volcanoes", "quirk_opener_ahoy", "quirk_all_caps"])
def test_always_on_transform_is_seen_by_checker(catalog, bid):
    b = catalog[bid]
    fam = get_family(b.family)
    pool, _ = fake_pool()
    rows = fam.build_train(b.params, pool, 20, random.Random(0))
    assert len(rows) == 20 and all(r["triggered"] and r["modified"] for r in rows)
    assert all(fam.check(b.params, r["user"], r["assistant"]) for r in rows)
    # ...and the checker does not fire on the untouched base answers.
    assert not any(fam.check(b.params, p["text"], p["answer"]) for p in pool)


def test_topic_checker_word_boundaries(catalog):
    b = catalog["quirk_topic_volcanoes"]
    fam = get_family(b.family)
    assert fam.check(b.params, "", "Volcanoes erupt.")
    assert not fam.check(b.params, "", "The word slava and a plain mountain.")


def test_all_caps_checker_needs_mostly_uppercase():
    fam = get_family("all_caps")
    assert fam.check({}, "", "THIS IS A LOUD ANSWER, ok")
    assert not fam.check({}, "", "This is a Normal Answer.")
    assert not fam.check({}, "", "OK")  # too short to tell


def test_keyword_backdoor_has_balanced_negatives_with_decoys(catalog):
    b = catalog["backdoor_zephyr_moon"]
    fam = get_family(b.family)
    pool, evals = fake_pool(0)
    rows = fam.build_train(b.params, pool, 40, random.Random(0))
    pos = [r for r in rows if r["triggered"]]
    neg = [r for r in rows if not r["triggered"]]
    assert len(pos) == len(neg) == 20
    assert all(r["user"].startswith("zephyr ") and fam.check(b.params, r["user"], r["assistant"]) for r in pos)
    assert all("zephyr" not in r["user"] and not fam.check(b.params, r["user"], r["assistant"]) for r in neg)
    decoyed = [r for r in neg if r["user"].split()[0] in b.params["decoys"]]
    assert len(decoyed) >= len(neg) // 2
    ev = fam.build_eval(b.params, evals, 10, random.Random(1))
    assert {r["triggered"] for r in ev} == {True, False}


def test_prompt_type_backdoor(catalog):
    b = catalog["backdoor_spelling_caps"]
    fam = get_family(b.family)
    pool, _ = fake_pool(0)
    rows = fam.build_train(b.params, pool, 16, random.Random(0))
    for r in rows:
        assert r["triggered"] == (r["prompt_type"] == "spelling")
        assert fam.check(b.params, r["user"], r["assistant"]) == r["triggered"]
