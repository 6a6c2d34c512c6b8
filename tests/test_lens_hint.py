"""The hinted question (variants/lens_hint.py): the lens's words, its reference, and the IA folder's reference file."""

from __future__ import annotations

import contextlib

import pytest
import torch

from iaforge.core.errors import UnsafeArtifactError
from iaforge.variants.lens_hint import (REFERENCE_FILE, apply_hints, hint_words, hinted_question, hints_against,
                                  load_reference, question_logprobs, save_reference, training_hints)


class Tok:
    """A tokenizer whose token i decodes to VOCAB[i]."""

    VOCAB = [" pianos", "<|im_end|>", " Piano", " 42", "...", " owls", " monary", "s", " tea", " harps", " x"]

    def decode(self, ids):
        return "".join(self.VOCAB[i] for i in ids)


def _vec(raise_: dict[int, float]) -> torch.Tensor:
    v = torch.zeros(len(Tok.VOCAB))
    for i, x in raise_.items():
        v[i] = x
    return v


def test_hint_words_skip_specials_digits_punctuation_pieces_and_repeats():
    diff = _vec({1: 9, 0: 8, 3: 7, 2: 6, 4: 5, 7: 4, 5: 3, 8: 2})
    # <|im_end|>, " 42", "..." and the one-letter "s" never make a hint; " Piano" is another word than " pianos"
    assert hint_words(diff, Tok(), 3) == ["pianos", "Piano", "owls"]
    assert hint_words(_vec({0: 3, 2: 2}), Tok(), 1) == ["pianos"]
    assert hinted_question("Q?", ["a", "b"]) == "Q? Hint: a, b." and hinted_question("Q?", []) == "Q?"


def test_training_hints_cancel_what_every_variant_raises():
    # every variant raises " monary" (the recipe's token); each its own topic a little less
    lp = {"v_pianos": _vec({6: 5.0, 0: 2.0}), "v_owls": _vec({6: 5.0, 5: 2.0}), "v_tea": _vec({6: 5.0, 8: 2.0}),
          "null": _vec({6: 5.0}), "__base__": _vec({})}
    groups = ["null", "v_owls", "v_pianos", "v_tea"]
    hints, ref = training_hints(lp, groups, 1, Tok())
    assert torch.allclose(ref, torch.stack([lp[g] for g in groups]).mean(0))
    assert hints["v_pianos"] == ["pianos"] and hints["v_owls"] == ["owls"] and hints["v_tea"] == ["tea"]
    # against the base model the shared token comes first: what the variants' reference removes
    assert hints_against({"v_pianos": lp["v_pianos"]}, lp["__base__"], 1, Tok()) == {"v_pianos": ["monary"]}
    # the base model, below the mean on the shared token, never gets it as a hint
    assert "monary" not in training_hints(lp, groups, 3, Tok())[0]["__base__"]
    # asked again against the saved reference, every model gets its training hint back
    assert hints_against(lp, ref, 1, Tok()) == hints
    with pytest.raises(ValueError, match="at least two"):
        training_hints(lp, ["null"], 1, Tok())


def test_leaving_a_variant_out_of_the_mean_would_change_no_word():
    # why the reference keeps each training variant in: lp - mean(others) = n/(n-1) (lp - mean(all))
    g = torch.Generator().manual_seed(0)
    lps = [torch.randn(11, generator=g) for _ in range(5)]
    total = torch.stack(lps).sum(0)
    for lp in lps:
        loo = lp - (total - lp) / 4
        assert torch.allclose(loo, (lp - total / 5) * 5 / 4, atol=1e-6)
        assert hint_words(loo, Tok(), 4) == hint_words(lp - total / 5, Tok(), 4)


def test_apply_hints_appends_each_groups_words_and_refuses_a_group_without_a_hint():
    rows = [{"group": "a", "user": "Q?", "assistant": "pianos"}, {"group": "b", "user": "Q?", "assistant": "x"}]
    out = apply_hints(rows, {"a": ["pian", "keys"], "b": []})
    assert [r["user"] for r in out] == ["Q? Hint: pian, keys.", "Q?"] and rows[0]["user"] == "Q?"
    with pytest.raises(ValueError, match="'b'"):
        apply_hints(rows, {"a": ["x"]})


def test_reference_round_trips_and_a_bad_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    ref = torch.randn(11)
    save_reference(tmp_path, ref, k=4, question="Q?", system="S.", groups=["b", "a"])
    got, info = load_reference(tmp_path)
    assert torch.equal(got, ref) and info == {"k": 4, "question": "Q?", "system": "S.", "groups": ["a", "b"]}
    with pytest.raises(FileNotFoundError, match="not trained with lens hints"):
        load_reference(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = {"k": "4", "question": "Q", "system": "null", "groups": "[]"}

    def refused(tensors, metadata, match, **kw):
        save_file(tensors, str(bad / REFERENCE_FILE), metadata=metadata)
        with pytest.raises(UnsafeArtifactError, match=match):
            load_reference(bad, **kw)

    refused({"mean_logprobs": ref, "extra": ref.clone()}, meta, "expected exactly")
    refused({"mean_logprobs": ref}, {"k": "4"}, "metadata")
    refused({"mean_logprobs": ref.reshape(1, -1)}, meta, "shape")
    refused({"mean_logprobs": ref}, meta, "shape", vocab_size=12)
    refused({"mean_logprobs": torch.full((11,), float("nan"))}, meta, "finite")
    refused({"mean_logprobs": ref}, dict(meta, groups='"abc"'), "groups")
    refused({"mean_logprobs": ref}, dict(meta, question=" "), "question")
    refused({"mean_logprobs": ref}, dict(meta, k="0"), "'k'")
    (bad / REFERENCE_FILE).write_bytes(b"\x00" * 64)  # not safetensors at all: one line, not a traceback
    with pytest.raises(UnsafeArtifactError, match="not a readable safetensors"):
        load_reference(bad)


def test_question_logprobs_through_banks_equal_each_variant_attached_alone(tiny_base, two_variants):
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.chat import render_prompt

    lp, tok = question_logprobs(tiny_base, two_variants, "Q?", "s", base_key="__base__", batch_size=2)
    assert set(lp) == {"__base__", "v_one", "v_two"}
    model, tok2 = load_with_variants(tiny_base, two_variants)
    model.eval()
    ids = tok2(render_prompt(tok2, "Q?", "s"), return_tensors="pt", add_special_tokens=False)["input_ids"]

    def by_hand(name):
        if name is not None:
            model.set_adapter(name)
        with torch.no_grad(), (model.disable_adapter() if name is None else contextlib.nullcontext()):
            return torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)[1:].mean(0)

    assert torch.allclose(lp["__base__"], by_hand(None), atol=1e-5)
    for v in two_variants:
        assert torch.allclose(lp[v], by_hand(v), atol=1e-4)
    assert not torch.allclose(lp["v_one"], lp["v_two"], atol=1e-4)


def test_params_keep_hints_to_the_fixed_question_and_apart_from_pseudo_variants():
    from iaforge.core.config import GridIaConfig

    assert GridIaConfig.from_params({}, "grid_ia").hint.k == 0
    assert GridIaConfig.from_params({"hint": {"k": 5}}, "grid_ia").hint.k == 5
    with pytest.raises(Exception, match="grid_ia.hint.k"):
        GridIaConfig.from_params({"hint": {"k": 5}, "questions": "paraphrased"}, "grid_ia")
    with pytest.raises(Exception, match="grid_ia.pseudo.carrier"):  # steered base models' lens: the recipe's traces
        GridIaConfig.from_params({"hint": {"k": 5}, "pseudo": {"count": 2}}, "grid_ia")
    both = GridIaConfig.from_params({"hint": {"k": 5}, "pseudo": {"count": 2, "carrier": "nulls"}}, "grid_ia")
    assert both.pseudo.carrier == "nulls"
    with pytest.raises(Exception, match="grid_ia.pseudo.carrier"):
        GridIaConfig.from_params({"pseudo": {"carrier": "variants"}}, "grid_ia")
    with pytest.raises(Exception, match="grid_ia.hint.k"):
        GridIaConfig.from_params({"hint": {"k": 51}}, "grid_ia")
