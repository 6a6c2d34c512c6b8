"""LoRA banks (core/lora_bank.py): per-row adapters give peft's logits; hostile configs are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iaforge.core.errors import UnsafeArtifactError
from iaforge.core.lora_bank import bank_rows, banked_modules, load_banks


@pytest.fixture(scope="module")
def ia_like(tiny_base, tmp_path_factory):
    """An adapter of another rank and alpha on fewer modules, standing in for an IA stacked on a variant."""
    from conftest import random_lora

    return random_lora(tiny_base, tmp_path_factory.mktemp("ia_like") / "ia",
                       {"r": 6, "alpha": 9, "target_modules": ["q_proj", "v_proj", "down_proj"]}, seed=7, std=0.05)


def _peft_logits(tiny_base, adapters: dict[str, Path], active: list[str], ids):
    from iaforge.core.adapter_stack import load_with_variants

    model, _ = load_with_variants(tiny_base, adapters)
    model.eval()
    with torch.no_grad():
        if not active:
            with model.disable_adapter():
                return model(input_ids=ids).logits
        model.base_model.set_adapter(active)
        return model(input_ids=ids).logits


def test_each_row_gets_the_logits_of_its_peft_adapters(tiny_base, two_variants, ia_like):
    from iaforge.core.base_model import load_base

    model, tok = load_base(tiny_base)
    load_banks(model, {"variant": [two_variants["v_one"], two_variants["v_two"]], "ia": [ia_like]})
    ids = tok(["Is there anything unusual about you"] * 5, return_tensors="pt").input_ids
    routes = {"variant": [0, 1, -1, 1, -1], "ia": [0, -1, 0, 0, -1]}
    with torch.no_grad(), bank_rows(model, routes):
        got = model(input_ids=ids).logits
    adapters = {"v_one": Path(two_variants["v_one"]), "v_two": Path(two_variants["v_two"]), "ia": ia_like}
    names = ["v_one", "v_two"]
    want = {}
    for i, (v, a) in enumerate(zip(routes["variant"], routes["ia"])):
        active = ([names[v]] if v >= 0 else []) + (["ia"] if a >= 0 else [])
        key = tuple(active)
        if key not in want:
            want[key] = _peft_logits(tiny_base, adapters, active, ids[:1])
        assert torch.allclose(got[i:i + 1], want[key], atol=1e-5), (i, active)
    assert not torch.allclose(got[0], got[4], atol=1e-3)  # the adapters change the logits: the check can fail
    with torch.no_grad(), bank_rows(model, {"variant": [-1] * 5}):  # nothing routed: the base model
        assert torch.allclose(model(input_ids=ids).logits[4], got[4], atol=1e-5)


def test_routing_is_checked(tiny_base, two_variants):
    from iaforge.core.base_model import load_base

    model, _ = load_base(tiny_base)
    with pytest.raises(ValueError, match="no LoRA banks"):
        with bank_rows(model, {"variant": [0]}):
            pass
    load_banks(model, {"variant": [two_variants["v_one"]]})
    assert banked_modules(model)
    with pytest.raises(ValueError, match=r"\[-1, 0\]"):
        with bank_rows(model, {"variant": [1]}):
            pass
    with pytest.raises(ValueError, match="no bank named 'ia'"):
        with bank_rows(model, {"ia": [0]}):
            pass
    with pytest.raises(ValueError, match="already holds"):
        load_banks(model, {"variant": [two_variants["v_one"]]})


@pytest.mark.parametrize("field,value,rule", [("use_dora", True, "DoRA"), ("fan_in_fan_out", True, "fan_in_fan_out"),
                                              ("rank_pattern", {"q_proj": 2}, "per-layer ranks"),
                                              ("bias", "all", "must be 'none'")])
def test_configs_whose_math_differs_are_refused_with_file_and_field(tiny_base, two_variants, tmp_path, field, value, rule):
    from iaforge.core.base_model import load_base

    d = tmp_path / "bad"
    shutil.copytree(two_variants["v_one"], d)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg[field] = value
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    model, _ = load_base(tiny_base)
    with pytest.raises(UnsafeArtifactError, match=rf"adapter_config.json: field '{field}': .*{rule}"):
        load_banks(model, {"variant": [d]})
    assert not banked_modules(model)  # refused before any layer was wrapped


def test_a_tensor_for_a_layer_the_model_lacks_is_refused(tiny_base, two_variants, tmp_path):
    from safetensors.torch import load_file, save_file

    from iaforge.core.base_model import load_base

    d = tmp_path / "odd"
    shutil.copytree(two_variants["v_one"], d)
    st = load_file(str(d / "adapter_model.safetensors"))
    key = next(k for k in st if k.endswith("q_proj.lora_A.weight"))
    st[key.replace("q_proj", "nonexistent_proj")] = st.pop(key)
    st[key.replace("q_proj", "nonexistent_proj").replace("lora_A", "lora_B")] = st.pop(key.replace("lora_A", "lora_B"))
    save_file(st, str(d / "adapter_model.safetensors"))
    model, _ = load_base(tiny_base)
    with pytest.raises(UnsafeArtifactError, match="nonexistent_proj'.*no linear layer"):
        load_banks(model, {"variant": [d]})


def test_per_row_gathering_gives_the_grouped_logits(tiny_base, two_variants, ia_like):
    from iaforge.core.base_model import load_base

    model, tok = load_base(tiny_base)
    load_banks(model, {"variant": [two_variants["v_one"], two_variants["v_two"]], "ia": [ia_like]})
    ids = tok(["Is there anything unusual about you"] * 5, return_tensors="pt").input_ids
    routes = {"variant": [0, 1, -1, 1, 0], "ia": [0, -1, 0, 0, -1]}
    with torch.no_grad(), bank_rows(model, routes):
        grouped = model(input_ids=ids).logits
    with torch.no_grad(), bank_rows(model, routes, per_row=("variant", "ia")):
        gathered = model(input_ids=ids).logits
    assert torch.allclose(gathered, grouped, atol=1e-5)
    assert not torch.allclose(gathered[0], gathered[1], atol=1e-3)  # rows really differ: the check can fail
