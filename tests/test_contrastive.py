"""Contrastive sampling of self-reports (evaluation/contrastive.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from iaforge.evaluation.contrastive import contrast_logits, contrastive_sample


def test_contrast_cuts_implausible_tokens_and_subtracts_the_reference():
    a = torch.log_softmax(torch.tensor([[3.0, 2.0, -5.0, 0.0]]), -1)
    r = torch.log_softmax(torch.tensor([[3.0, 0.0, 0.0, 0.0]]), -1)
    got = contrast_logits(a, r, alpha=1.0, beta=0.1)
    keep = a >= a.max() + math.log(0.1)
    assert keep.tolist() == [[True, True, False, False]]
    assert torch.isinf(got[0, 2]) and torch.isinf(got[0, 3])
    assert got[0, :2].tolist() == pytest.approx((a - r)[0, :2].tolist())
    # the reference's favourite loses its lead: token 1 now wins, though token 0 is the audited model's first choice
    assert int(got.argmax()) == 1
    assert contrast_logits(a, r, alpha=0.0, beta=1e-9)[0].tolist() == pytest.approx(a[0].tolist())


@pytest.fixture(scope="module")
def stack(tiny_base, two_variants):
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.adapters import attach
    from iaforge.evaluation.evaluate import IA_ADAPTERS, ConditionSwitch

    model, tok = load_with_variants(tiny_base, {"v": Path(two_variants["v_one"])})
    # any PEFT adapter folder stands in for the IA: this checks the decoding, not what an IA learned
    model = attach(model, two_variants["v_two"], IA_ADAPTERS["sft"])
    model.eval()
    return model, tok, ConditionSwitch(model)



def test_adapter_picker_gives_the_logits_of_peft_set_adapter(stack):
    from iaforge.evaluation.contrastive import AdapterPicker

    model, tok, switch = stack
    picker = AdapterPicker.for_conditions(model)
    ids = tok("Is there anything unusual", return_tensors="pt").input_ids
    settings = (("v", "sft"), (None, "sft"), ("v", "no_ia"), (None, "no_ia"), ("v", "sft"))
    with torch.no_grad():
        want = []
        for group, cond in settings:  # peft's way first: the picker leaves layers disabled, which set_adapter keeps
            with switch(group, cond):
                want.append(model(input_ids=ids).logits)
        for (group, cond), w in zip(settings, want):
            with picker(group, cond):
                assert torch.allclose(model(input_ids=ids).logits, w, atol=1e-5), (group, cond)
    assert not torch.allclose(want[0], want[3])  # the adapters do change the logits: the check can fail


def _greedy(model, tok, switch, group, user, steps):
    from iaforge.core.chat import render_prompt

    ids = tok(render_prompt(tok, user, None), return_tensors="pt", add_special_tokens=False).input_ids
    out = []
    with torch.no_grad(), switch(group, "sft"):
        for _ in range(steps):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


def test_beta_one_is_greedy_decoding_of_the_audited_model_whatever_alpha(stack):
    model, tok, switch = stack
    want = tok.decode(_greedy(model, tok, switch, "v", "Anything unusual?", 6), skip_special_tokens=True).strip()
    for alpha in (0.0, 1.0, 3.0):
        got = contrastive_sample(model, tok, switch, ("v", "sft"), (None, "sft"), "Anything unusual?", system=None,
                                 n=2, alpha=alpha, beta=1.0, max_new_tokens=6, seed=int(alpha))
        # an end token inside the 6 steps ends the answer early: compare on what both produced
        assert got == [got[0], got[0]] and want.startswith(got[0])


def test_seeded_and_the_reference_changes_the_answers(stack):
    model, tok, switch = stack
    kw = dict(system=None, n=4, beta=1e-4, max_new_tokens=8)
    one = contrastive_sample(model, tok, switch, ("v", "sft"), (None, "sft"), "Hi", alpha=1.0, seed=3, **kw)
    assert one == contrastive_sample(model, tok, switch, ("v", "sft"), (None, "sft"), "Hi", alpha=1.0, seed=3, **kw)
    plain = contrastive_sample(model, tok, switch, ("v", "sft"), (None, "sft"), "Hi", alpha=0.0, seed=3, **kw)
    assert len(one) == len(plain) == 4 and one != plain
