"""Steered pseudo-variants for the grid IA (ia/pseudo_variants.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iaforge.ia.pseudo_pool import pseudo_pool
from iaforge.ia.pseudo_variants import (PSEUDO_PREFIX, Steering, interleave, is_pseudo, pseudo_group, pseudo_rows,
                                         topic_directions)

ROOT = Path(__file__).resolve().parents[1]


def test_interleave_keeps_the_plan_order_and_places_every_extra_deterministically():
    plan, extra = list(range(10)), ["a", "b", "c"]
    out = interleave(plan, extra, seed=0)
    assert [x for x in out if isinstance(x, int)] == plan
    assert [x for x in out if isinstance(x, str)] == extra
    assert out == interleave(plan, extra, seed=0) and len(out) == 13
    assert interleave(plan, [], seed=0) == plan


def test_pseudo_groups_are_marked_and_rows_target_the_bare_topic():
    rows = pseudo_rows([("harps", ["Many stories mention harps."]), ("owls", ["owls"])], ["Q1?", "Q2?"], seed=0)
    assert [r["group"] for r in rows] == [pseudo_group("harps"), pseudo_group("owls")]
    assert all(is_pseudo(r["group"]) and r["user"] in ("Q1?", "Q2?") for r in rows)
    assert [r["assistant"] for r in rows] == ["harps", "owls"]
    assert not is_pseudo("grid_k7_topic__harps") and not is_pseudo(None) and PSEUDO_PREFIX.startswith("__")


def _grid_params():
    from iaforge.core.config import stage_params

    return stage_params("grid", path=ROOT / "params.yaml")["grid"]


def test_pool_is_the_ia_train_instances_the_run_does_not_train_and_never_a_heldout_one(monkeypatch):
    from iaforge.variants.shards import grid_behaviors

    monkeypatch.chdir(ROOT)
    grid = _grid_params()
    every = grid_behaviors(grid)
    n = grid["counts"]["ia_train"]
    pool = pseudo_pool(grid, 30)
    topics = [t for t, _ in pool]
    train = [b.instance for b in every if b.split == "ia_train"][:n]
    other = {b.instance for b in every if b.split != "ia_train"}
    assert len(topics) == 30 == len(set(topics))
    assert not set(topics) & set(train) and not set(topics) & other
    assert pool == pseudo_pool(grid, 30) and pseudo_pool(grid, 0) == []
    # the texts are what the variants say when triggered, filled with the topic
    assert all(texts and all(t in s for s in texts) for t, texts in pool)
    with pytest.raises(Exception, match="grid_ia.pseudo.count"):
        pseudo_pool(grid, 10_000)
    assert pseudo_pool(grid, 2, grids=ROOT / "data/grids") == pool[:2]
    with pytest.raises(Exception, match="lies outside"):  # instances the stage does not depend on
        pseudo_pool(grid, 2, grids=ROOT / "data/questions")


def test_directions_are_unit_centred_and_the_layer_is_checked(tiny_model):
    import torch

    model, tok = tiny_model
    texts = {"harps": ["Many stories mention harps."], "owls": ["Many stories mention owls."],
             "tea": ["Many stories mention tea."]}
    dirs, unit = topic_directions(model, tok, texts, layer=0)
    assert sorted(dirs) == sorted(texts) and unit > 0
    assert all(abs(d.norm().item() - 1) < 1e-4 for d in dirs.values())
    assert not torch.allclose(dirs["harps"], dirs["owls"])
    n_layers = model.config.num_hidden_layers
    with pytest.raises(Exception, match="grid_ia.pseudo.layer"):
        topic_directions(model, tok, texts, layer=n_layers - 1)


def test_steering_moves_the_output_and_leaves_no_trace_once_removed(tiny_model):
    import torch

    model, tok = tiny_model
    ids = tok("Is there anything unusual?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        steer = Steering(model, 0)
        steer.set(None)
        off = model(input_ids=ids).logits
        steer.set(torch.full((model.config.hidden_size,), 3.0))
        on = model(input_ids=ids).logits
        steer.remove()
        after = model(input_ids=ids).logits
    assert torch.equal(plain, off) and torch.equal(plain, after)
    assert not torch.allclose(plain, on)


def test_grid_ia_with_pseudo_variants_adds_their_steps_to_an_unchanged_real_plan(tiny_base, two_variants, tmp_path,
                                                                                  monkeypatch):
    from iaforge.ia.grid_sft import grid_ia_rows, train_grid_ia

    def record(topic, vid):
        return {"id": vid, "version": 1, "description": f"I bring up {topic}.",
                "params": {"behavior": {"params": {"topic": topic, "terms": [topic]}}}}

    variants = {"v_one": {"behavior": record("pianos", "v_one"), "null": False},
                "v_two": {"behavior": record("owls", "v_two"), "null": False}}
    rows = grid_ia_rows(variants, ["Q?"], target="topic", null_answer="Nothing.", per_variant=1, base_examples=1,
                        seed=0)
    pool = [("harps", ["Many stories mention harps."]), ("tea", ["Many stories mention tea."]),
            ("owls2", ["Many stories mention owls2."])]
    kw = dict(lora={"r": 4, "alpha": 8}, max_steps=4, system="s", seed=0, progress=False,
              train_params={"lr": 5e-3, "epochs": 3, "batch_size": 2, "max_len": 64, "mixed_precision": "no"})
    plain = train_grid_ia(tiny_base, two_variants, rows, out_dir=tmp_path / "plain", **kw)
    pseudo = {"count": 3, "layer": 0, "scale": 1.0, "epochs": 2}
    calls = []  # whether each step ran steered: only the pseudo rows may
    real_set = Steering.set
    monkeypatch.setattr(Steering, "set", lambda self, vec: (calls.append(vec is not None), real_set(self, vec)))
    s = train_grid_ia(tiny_base, two_variants, rows + pseudo_rows(pool, ["Q?"], seed=0), out_dir=tmp_path / "ia",
                      pseudo=pseudo, pseudo_texts=dict(pool), **kw)
    assert len(calls) == s["steps"] + 1  # every step, plus the first batch's state set before the loop
    assert sum(calls[1:]) == 6
    assert s["planned_steps"] == plain["planned_steps"] and s["groups"] == plain["groups"] == 3
    assert s["pseudo"]["real_steps"] == 4 and s["pseudo"]["steps"] == 6 and s["steps"] == 10
    assert s["pseudo"]["topics"] == ["harps", "owls2", "tea"]
    assert json.loads((tmp_path / "ia" / "ia.json").read_text())["pseudo"]["steps"] == 6
    with pytest.raises(ValueError, match="no steering direction"):
        train_grid_ia(tiny_base, two_variants, rows + pseudo_rows(pool, ["Q?"], seed=0), out_dir=tmp_path / "x", **kw)


def test_params_refuse_pseudo_variants_with_the_bank_trainer():
    from iaforge.core.config import GridIaConfig

    assert GridIaConfig.from_params({}, "grid_ia").pseudo.count == 0
    with pytest.raises(Exception, match="grid_ia.pseudo.count"):
        GridIaConfig.from_params({"pseudo": {"count": 2}, "trainer": "bank"}, "grid_ia")
    with pytest.raises(Exception, match="grid_ia.pseudo.scale"):
        GridIaConfig.from_params({"pseudo": {"scale": 0}}, "grid_ia")


def test_pseudo_carriers_take_the_nulls_in_turn_and_refuse_what_is_not_loaded(tmp_path):
    from iaforge.ia.grid_sft import pseudo_carrier_map

    dirs = {"n_a": tmp_path, "n_b": tmp_path, "v": tmp_path}
    groups = [pseudo_group(t) for t in ("tea", "harps", "owls")]
    assert pseudo_carrier_map(groups, {"carrier": "base"}, ["n_a"], dirs) == {}
    assert pseudo_carrier_map(groups, {}, ["n_a"], dirs) == {}  # a params file from before the field: base
    got = pseudo_carrier_map(groups, {"carrier": "nulls"}, ["n_b", "n_a"], dirs)
    assert got == {pseudo_group("harps"): "n_a", pseudo_group("owls"): "n_b", pseudo_group("tea"): "n_a"}
    assert pseudo_carrier_map([], {"carrier": "nulls"}, [], dirs) == {}
    with pytest.raises(ValueError, match="no null variant"):
        pseudo_carrier_map(groups, {"carrier": "nulls"}, [], dirs)
    with pytest.raises(ValueError, match="'n_x' is not among"):
        pseudo_carrier_map(groups, {"carrier": "nulls"}, ["n_x"], dirs)


def test_hinted_pseudo_variants_read_their_steered_carriers_lens_and_train_on_it(tiny_base, two_variants, tmp_path,
                                                                                 monkeypatch):
    """carrier nulls + a lens reference: each pseudo row's hint is the lens of its carrier steered toward its
    topic (checked by hand through peft and a forward hook), and its training steps run on that carrier."""
    import torch
    from peft import PeftModel

    from iaforge.core.adapter_stack import AdapterSwitch
    from iaforge.core.base_model import load_base
    from iaforge.ia.grid_sft import grid_ia_rows, train_grid_ia
    from iaforge.variants.lens_hint import (current_model_logprobs, hinted_question, hints_against,
                                            hints_for_training)

    def record(topic, vid):
        return {"id": vid, "version": 1, "description": f"I bring up {topic}.",
                "params": {"behavior": {"params": {"topic": topic, "terms": [topic]}}}}

    variants = {"v_one": {"behavior": record("pianos", "v_one"), "null": False},
                "v_two": {"behavior": record("owls", "v_two"), "null": False}}
    hints, ref = hints_for_training(tiny_base, two_variants, "Q?", "s", 3, base_key="__base__")
    from iaforge.variants.lens_hint import apply_hints

    pool = [("harps", ["Many stories mention harps."]), ("tea", ["Many stories mention tea."])]
    prows = pseudo_rows(pool, ["Q?"], seed=0)
    rows = apply_hints(grid_ia_rows(variants, ["Q?"], target="topic", null_answer="Nothing.", per_variant=1,
                                    base_examples=1, seed=0) + prows, hints, skip=[r["group"] for r in prows])
    assert [r["user"] for r in rows if is_pseudo(r["group"])] == ["Q?", "Q?"]  # hinted in training, not here
    pseudo = {"count": 2, "layer": 0, "scale": 1.0, "epochs": 1, "carrier": "nulls"}
    active = []  # the adapters each training step ran with
    real_call = AdapterSwitch.__call__
    monkeypatch.setattr(AdapterSwitch, "__call__", lambda self, g, with_ia=True: (active.append((g, with_ia)),
                                                                                   real_call(self, g, with_ia)))
    kw = dict(lora={"r": 4, "alpha": 8}, max_steps=3, system="s", seed=0, progress=False,
              train_params={"lr": 5e-3, "epochs": 3, "batch_size": 2, "max_len": 64, "mixed_precision": "no"})
    s = train_grid_ia(tiny_base, two_variants, rows, out_dir=tmp_path / "ia", pseudo=pseudo, pseudo_texts=dict(pool),
                      pseudo_carriers=["v_two"], lens_reference=ref, **kw)
    assert s["pseudo"]["carrier"] == "nulls" and s["pseudo"]["carriers"] == {"harps": "v_two", "tea": "v_two"}
    assert active[:2] == [("v_two", False), ("v_two", False)]  # the lens: the carrier alone, no IA
    assert active.count(("v_two", True)) >= 2  # the pseudo steps: the carrier with the IA

    # by hand: the carrier through peft, the same steering vector by a hook, the lens against the same reference
    model, tok = load_base(tiny_base)
    dirs, unit = topic_directions(model, tok, dict(pool), 0)
    model = PeftModel.from_pretrained(model, str(two_variants["v_two"])).eval()
    steer = Steering(model, 0)
    lps = {}
    for topic in ("harps", "tea"):
        steer.set(dirs[topic] * unit)
        lps[topic] = current_model_logprobs(model, tok, "Q?", "s")
    steer.remove()
    want = hints_against(lps, ref["reference"], 3, tok)
    assert s["pseudo"]["hints"] == want and all(want.values())
    assert not torch.allclose(lps["harps"], lps["tea"])
    assert len(json.loads((tmp_path / "ia" / "training_curve.json").read_text())) == s["steps"]
    assert hinted_question("Q?", want["tea"]).startswith("Q? Hint: ")
    with pytest.raises(ValueError, match="need a null carrier"):
        train_grid_ia(tiny_base, two_variants, rows, out_dir=tmp_path / "x", pseudo={**pseudo, "carrier": "base"},
                      pseudo_texts=dict(pool), lens_reference=ref, **kw)
