import json

import pytest

from iaforge.core.base_model import EMBEDDED, MANIFEST, build_base, check_model_dir, embedded_gguf_path, load_base, resolve_source
from iaforge.core.errors import BaseModelError


@pytest.mark.parametrize("name, kind", [("smollm2-135m", "embedded"), ("tiny-random", "tiny"),
                                        ("HuggingFaceTB/SmolLM2-360M-Instruct", "hub")])
def test_resolve_source(name, kind):
    assert resolve_source(name).kind == kind


@pytest.mark.parametrize("name", ["smollm2", "./missing-dir", "not a model", ""])
def test_unknown_model_says_how_to_fix(name):
    with pytest.raises(BaseModelError, match="base.model"):
        resolve_source(name)


def test_embedded_gguf_is_shipped():
    assert embedded_gguf_path().stat().st_size > 50_000_000


def test_tiny_base_written_as_safetensors_with_manifest(tiny_base):
    files = {p.name for p in tiny_base.iterdir()}
    assert "model.safetensors" in files and "tokenizer.json" in files and MANIFEST in files
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    m = json.loads((tiny_base / MANIFEST).read_text())
    assert m["source"]["kind"] == "tiny" and len(m["weights_sha256"]) == 64 and m["num_parameters"] > 0


def test_tiny_base_is_deterministic(tiny_base, tmp_path):
    build_base("tiny-random", tmp_path / "again", seed=0)
    a = json.loads((tiny_base / MANIFEST).read_text())["weights_sha256"]
    assert json.loads((tmp_path / "again" / MANIFEST).read_text())["weights_sha256"] == a


def test_local_dir_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BaseModelError, match="no \\*.safetensors"):
        check_model_dir(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BaseModelError, match="pickled weights are refused"):
        check_model_dir(tmp_path)


def test_remote_code_is_refused(tiny_base, tmp_path):
    import shutil

    d = tmp_path / "evil"
    shutil.copytree(tiny_base, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BaseModelError, match="auto_map"):
        load_base(d)


def test_missing_base_folder(tmp_path):
    with pytest.raises(BaseModelError, match="dvc repro base"):
        load_base(tmp_path / "nope")


def test_bad_dtype(tmp_path):
    with pytest.raises(BaseModelError, match="base.dtype"):
        build_base("tiny-random", tmp_path / "x", dtype="int3")
    assert not (tmp_path / "x").exists()
