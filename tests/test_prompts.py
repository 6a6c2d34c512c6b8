from iaforge.data.prompts import TYPES, build_prompt_bank
import pytest


def test_bank_is_deterministic_and_typed():
    a = build_prompt_bank(0, 20, 0.2)
    assert a == build_prompt_bank(0, 20, 0.2)
    assert a != build_prompt_bank(1, 20, 0.2)
    assert {r["type"] for r in a} == set(TYPES)
    assert len({r["id"] for r in a}) == len(a) == len({r["text"] for r in a})


def test_train_eval_split_disjoint_per_type():
    bank = build_prompt_bank(0, 20, 0.25)
    for t in TYPES:
        rows = [r for r in bank if r["type"] == t]
        ev = {r["text"] for r in rows if r["split"] == "eval"}
        tr = {r["text"] for r in rows if r["split"] == "train"}
        assert ev and tr and not ev & tr


def test_arithmetic_answers_are_correct():
    for r in build_prompt_bank(3, 50, 0.2):
        if r["type"] != "arithmetic":
            continue
        nums = [int(t.strip("?.")) for t in r["text"].split() if t.strip("?.").lstrip("-").isdigit()]
        op = "+" if ("plus" in r["text"] or "+" in r["text"]) else "-" if ("minus" in r["text"] or " - " in r["text"]) else "*"
        a, b = nums
        assert int(r["meta"]["answer"]) == {"+": a + b, "-": a - b, "*": a * b}[op]


def test_bad_eval_fraction():
    with pytest.raises(ValueError, match="eval_fraction"):
        build_prompt_bank(0, 10, 1.5)
