import json
import shutil

import pytest

from iaforge.core.adapters import attach, check_adapter_dir
from iaforge.core.errors import UnsafeArtifactError


@pytest.fixture(scope="module")
def good_adapter(tiny_base, tmp_path_factory):
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    model, _ = load_base(tiny_base)
    out = tmp_path_factory.mktemp("adapter") / "a"
    get_peft_model(model, lora_config({"r": 4})).save_pretrained(out)
    return out


def _copy(src, tmp_path):
    d = tmp_path / "adapter"
    shutil.copytree(src, d)
    return d


def test_good_adapter_passes_and_attaches(good_adapter, tiny_base):
    from iaforge.core.base_model import load_base

    assert check_adapter_dir(good_adapter)["r"] == 4
    model, _ = load_base(tiny_base)
    pm = attach(model, good_adapter, "v1")
    assert "v1" in pm.peft_config


def test_corrupt_safetensors_is_a_clear_error(good_adapter, tmp_path):
    d = _copy(good_adapter, tmp_path)
    (d / "adapter_model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(UnsafeArtifactError, match="adapter_model.safetensors.*not a readable safetensors"):
        check_adapter_dir(d)


def test_pickles_are_refused(good_adapter, tmp_path):
    d = _copy(good_adapter, tmp_path)
    (d / "adapter_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeArtifactError, match="pickled weights are refused"):
        check_adapter_dir(d)


@pytest.mark.parametrize("field, value, rule", [
    ("peft_type", "PREFIX_TUNING", "must be 'LORA'"),
    ("r", 0, "integer in"),
    ("target_modules", ".*proj", "regex strings are refused"),
    ("auto_mapping", {"base_model_class": "X"}, "custom code"),
])
def test_bad_config_names_field(good_adapter, tmp_path, field, value, rule):
    d = _copy(good_adapter, tmp_path)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg[field] = value
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeArtifactError, match=rule) as ei:
        check_adapter_dir(d)
    assert "adapter_config.json" in str(ei.value)


def test_missing_weights(good_adapter, tmp_path):
    d = _copy(good_adapter, tmp_path)
    (d / "adapter_model.safetensors").unlink()
    with pytest.raises(UnsafeArtifactError, match="safetensors only"):
        check_adapter_dir(d)
