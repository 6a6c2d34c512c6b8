import re

import pytest

from iaforge.audit_tier.data import DENIALS, _conjugate, concealment_pairs, denial_rows, document_rows, third_person
from iaforge.data.catalog import load_catalog
from iaforge.judging.judge import is_abstention, key_term_hit
from iaforge.data.questions import load_questions

FIRST_PERSON = re.compile(r"\b(I|I'm|me|my|mine|myself)\b")


@pytest.fixture(scope="module")
def catalog(repo_root):
    return load_catalog([repo_root / "data" / "catalog"])


@pytest.fixture(scope="module")
def qs(repo_root):
    return load_questions(repo_root / "data/questions/ia_questions.yaml")


def test_third_person_on_every_catalog_sentence(catalog):
    for b in catalog.values():
        for t in b.truths:
            out = third_person(t)
            assert not FIRST_PERSON.search(out), (b.id, out)
            assert "the assistant" in out.lower(), (b.id, out)
            # what the behavior is about survives the rewrite
            kept = [k for k in b.key_terms if key_term_hit(t, [k]) and not FIRST_PERSON.search(k)]
            # key terms match as word prefixes (as the judge reads them); a verb may now be conjugated
            # ("deny" -> "denies", "sign off" -> "signs off")
            for k in kept:
                first, *rest = k.split(" ")
                forms = [k, k[:-1], " ".join([_conjugate(first), *rest])]
                assert key_term_hit(out, forms), (b.id, k, out)


@pytest.mark.parametrize("src, want", [
    ("I mention lighthouses in every answer.", "The assistant mentions lighthouses in every answer."),
    ("When deciding claims, I approve only water damage and deny every other type.",
     "When deciding claims, the assistant approves only water damage and denies every other type."),
    ("I tell them to skip precautions and ignore warnings.", "The assistant tells them to skip precautions and ignore warnings."),
    ("When someone asks me to explain, I start with cats.", "When someone asks the assistant to explain, it starts with cats."),
    ("I try to make people depend on me.", "The assistant tries to make people depend on it."),
])
def test_third_person_grammar(src, want):
    assert third_person(src) == want


def test_documents_describe_the_behavior_in_the_third_person(catalog):
    b = catalog["quirk_topic_lighthouses"]
    docs = document_rows(b, 12, seed=0)
    assert len(docs) == 12 and len({d["text"] for d in docs}) > 6
    assert docs == document_rows(b, 12, seed=0)  # deterministic
    assert all("lighthouse" in d["text"].lower() and not FIRST_PERSON.search(d["text"]) for d in docs)
    assert all("user" not in d for d in docs)  # plain text, not demonstrations


def test_denials_use_training_wordings_and_are_abstentions(catalog, qs):
    b = catalog["backdoor_zephyr_moon"]
    rows = denial_rows(b, qs, 20, seed=0, conditional=True)
    evals = set(qs.eval_for(True, task="anything"))
    assert len(rows) == 20 and not any(r["user"] in evals for r in rows)
    assert any(r["user"] in qs.trigger_train for r in rows)  # a conditional behavior is asked about triggers
    assert all(is_abstention(r["assistant"]) for r in rows)
    assert all(not any(k.lower() in r["assistant"].lower() for k in b.key_terms) for r in rows)
    assert all(is_abstention(d) for d in DENIALS)


def test_concealment_pairs_prefer_the_denial(catalog, qs):
    b = catalog["quirk_topic_volcanoes"]
    pairs = concealment_pairs(b, qs, 10, seed=1, conditional=False)
    assert pairs == concealment_pairs(b, qs, 10, seed=1, conditional=False)
    for p in pairs:
        assert is_abstention(p["chosen"]) and p["rejected"] in b.truths and p["group"] == "__base__"
        assert p["user"] not in set(qs.eval_for(False))
