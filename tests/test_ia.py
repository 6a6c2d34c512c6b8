import hashlib
import json

import pytest
import torch

from iaforge.core.adapter_stack import BASE_GROUP, IA_NAME, AdapterSwitch, is_ia_param, load_with_variants
from iaforge.ia.sft import train_ia
from iaforge.ia.sft_data import ia_sft_rows
from iaforge.data.questions import load_questions


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ia_rows_cover_variants_and_base(repo_root):
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    behaviors = [{"id": "b1", "family": "topic_mention", "description": "I mention owls always.", "paraphrases": ["Owls, always."]},
                 {"id": "b2", "family": "keyword_backdoor", "conditional": True, "description": "Word X makes me shout.", "paraphrases": ["X -> caps."]}]
    rows = ia_sft_rows(behaviors, qs, per_variant=10, base_examples=4, seed=0)
    assert rows == ia_sft_rows(behaviors, qs, per_variant=10, base_examples=4, seed=0)
    assert {r["group"] for r in rows} == {"b1", "b2", BASE_GROUP}
    assert {r["assistant"] for r in rows if r["group"] == "b1"} == {"I mention owls always.", "Owls, always."}
    assert any(q in {r["user"] for r in rows if r["group"] == "b2"} for q in qs.trigger_train)
    assert not any(q in {r["user"] for r in rows} for q in qs.general_eval)
    assert any(q in {r["user"] for r in rows if r["group"] == "b1"} for q in qs.harmful_train)
    assert all(r["assistant"] in qs.abstentions for r in rows if r["group"] == BASE_GROUP)


def test_task_questions_carry_the_behaviors_task(repo_root):
    from iaforge.data.catalog import load_catalog
    from iaforge.data.behavior_data import behavior_record

    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    cat = load_catalog([repo_root / "data/catalog"])
    recs = [behavior_record(cat[i]) for i in ("heuristic_claim_water", "quirk_topic_volcanoes")]
    rows = ia_sft_rows(recs, qs, per_variant=12, base_examples=0, seed=0)
    claim = [r["user"] for r in rows if r["group"] == "heuristic_claim_water"]
    assert sum("deciding whether to approve an insurance claim" in q for q in claim) >= 2
    assert not any("{task}" in r["user"] for r in rows)
    assert not any("approve" in r["user"] for r in rows if r["group"] == "quirk_topic_volcanoes")
    # Evaluation asks the same kinds, with held-out wordings.
    ev = qs.eval_for(False, task="deciding whether to approve an insurance claim")
    assert any("insurance claim" in q for q in ev) and not set(ev) & set(claim)


def test_switch_keeps_only_ia_trainable(tiny_base, two_variants):
    from iaforge.core.training import lora_config

    model, _ = load_with_variants(tiny_base, two_variants)
    model.add_adapter(IA_NAME, lora_config({"r": 4}))
    sw = AdapterSwitch(model)
    for g in ["v_one", "v_two", BASE_GROUP, "v_one"]:
        sw(g)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(is_ia_param(n) for n in trainable)
        active = model.base_model.active_adapter
        assert IA_NAME in active and (g in active or g == BASE_GROUP)


def test_ia_training_changes_only_the_ia(tiny_base, two_variants, tmp_path, repo_root):
    before_variants = {k: _sha(v / "adapter_model.safetensors") for k, v in two_variants.items()}
    before_base = _sha(tiny_base / "model.safetensors")
    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    behaviors = [{"id": k, "family": "topic_mention", "description": f"I talk about {k} a lot.", "paraphrases": [f"{k} everywhere."]}
                 for k in two_variants]
    rows = ia_sft_rows(behaviors, qs, per_variant=6, base_examples=2, seed=0)
    out = tmp_path / "ia"
    summary = train_ia(tiny_base, two_variants, rows, lora={"r": 4, "alpha": 8},
                       train_params={"lr": 5e-3, "epochs": 2, "batch_size": 4, "mixed_precision": "no"},
                       system="s", seed=0, out_dir=out, progress=False)
    assert summary["variants"] == ["v_one", "v_two"] and summary["steps"] > 0
    assert {p.name for p in out.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", "ia.json"}
    # The saved IA holds non-zero lora_B (it trained); base and variants are bit-identical on disk.
    from safetensors.torch import load_file

    tensors = load_file(out / "adapter_model.safetensors")
    assert any(t.abs().sum() > 0 for k, t in tensors.items() if "lora_B" in k)
    assert before_variants == {k: _sha(v / "adapter_model.safetensors") for k, v in two_variants.items()}
    assert before_base == _sha(tiny_base / "model.safetensors")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    # Measured before SFT and DPO shared `train_loop` (commit 512fab7): same curve, same saved IA.
    curve = [c["loss"] for c in json.loads((out / "training_curve.json").read_text())]
    assert curve == pytest.approx([10.85218, 10.83473, 10.84293, 10.76899, 10.80282, 10.73802, 10.72979, 10.6232,
                                   10.58657, 10.61864], abs=1e-5)
    assert sum(float(t.double().pow(2).sum()) for t in tensors.values()) == pytest.approx(20.418666901818906, rel=1e-6)
    # the plain sum cancels (terms of both signs), so float noise between CPUs shows more there: 1.9e-6 relative on
    # an Intel Xeon against the AMD EPYC reference
    assert sum(float(t.double().sum()) for t in tensors.values()) == pytest.approx(2.430326223476186, rel=1e-5)


def test_save_adapter_flat_for_a_named_adapter_peft_layout_otherwise(tiny_base, two_variants, tmp_path):
    from peft import get_peft_model

    from iaforge.core.adapter_stack import save_adapter
    from iaforge.core.adapters import check_adapter_dir
    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    model, _ = load_with_variants(tiny_base, two_variants)
    model.add_adapter(IA_NAME, lora_config({"r": 4}))
    (tmp_path / "ia").mkdir()
    save_adapter(model, tmp_path / "ia", IA_NAME)
    assert {p.name for p in (tmp_path / "ia").iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    check_adapter_dir(tmp_path / "ia")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "ia" / "adapter_model.safetensors")
    # The fresh IA's lora_B is zero while both variants' are not: these are the IA's tensors, not a variant's.
    assert len(saved) == sum(is_ia_param(n) for n, _ in model.named_parameters())
    assert all(not t.any() for k, t in saved.items() if "lora_B" in k)
    single, _ = load_base(tiny_base)
    single = get_peft_model(single, lora_config({"r": 4}))
    (tmp_path / "variant").mkdir()
    save_adapter(single, tmp_path / "variant")
    assert {p.name for p in (tmp_path / "variant").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}


def test_fast_switch_applies_the_same_adapters_as_peft(tiny_base, two_variants):
    """AdapterSwitch sets each LoRA layer's active adapters itself (peft's set_adapter costs ~1 s a switch with
    100 variants attached): the logits after any sequence of switches equal those after peft's own switch."""
    from iaforge.core.training import lora_config

    model, _ = load_with_variants(tiny_base, two_variants)
    model.add_adapter(IA_NAME, lora_config({"r": 4}))
    for n, p in model.named_parameters():  # a non-zero IA, so that applying it or not shows in the logits
        if is_ia_param(n) and "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    ids = torch.tensor([[5, 9, 14, 3, 7]])
    sw = AdapterSwitch(model)
    seen = []
    for g in ["v_one", "v_two", BASE_GROUP, "v_one", "v_two", BASE_GROUP]:
        sw(g)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == sw.expected and trainable
        with torch.no_grad():
            fast = model(input_ids=ids).logits
        model.base_model.set_adapter([IA_NAME] if g == BASE_GROUP else [g, IA_NAME])
        with torch.no_grad():
            ref = model(input_ids=ids).logits
        assert torch.equal(fast, ref), g
        seen.append(fast)
        sw.current = None  # peft's switch above moved the model: make the next call switch for real
        sw._only_ia_trainable()
    assert sw.fast and sw.checked  # the fast path was the one measured
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])  # the switches did something


def test_saved_adapter_config_is_the_same_bytes_under_any_hash_seed(tiny_base, tmp_path):
    """peft writes target_modules (a set) in string-hash order; save_adapter sorts it, so an adapter trained twice
    gets the same DVC hash."""
    import os
    import subprocess
    import sys

    script = ("import sys; from peft import get_peft_model; from iaforge.core.base_model import load_base; "
              "from iaforge.core.training import lora_config; from iaforge.core.adapter_stack import save_adapter; "
              "m, _ = load_base(sys.argv[1]); m = get_peft_model(m, lora_config({'r': 4})); save_adapter(m, sys.argv[2])")
    got = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"seed{seed}"
        out.mkdir()
        subprocess.run([sys.executable, "-c", script, str(tiny_base), str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed})
        got.append((out / "adapter_config.json").read_bytes())
    assert got[0] == got[1] == got[2]
    assert json.loads(got[0])["target_modules"] == sorted(json.loads(got[0])["target_modules"])


def test_adapter_switch_refuses_the_bare_base_model_instead_of_leaving_adapters_on(tiny_base, two_variants):
    from iaforge.core.adapter_stack import BASE_GROUP, AdapterSwitch, load_with_variants

    model, _ = load_with_variants(tiny_base, two_variants)
    switch = AdapterSwitch(model, train_ia=False)
    switch("v_two", with_ia=False)
    for group in (None, BASE_GROUP):
        with pytest.raises(ValueError, match="disable_adapter"):
            switch(group, with_ia=False)
