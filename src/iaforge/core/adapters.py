"""Load LoRA adapters as hostile input: safetensors only, validated config, never pickles or remote code.

An auditor points iaforge at adapters someone else made; nothing in them may execute code or crash
the process with an unreadable error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iaforge.core.errors import UnsafeArtifactError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
MAX_RANK = 1024


def _bad(path, field, rule):
    return UnsafeArtifactError(f"{path}: field '{field}': {rule}")


def check_adapter_dir(path: str | Path) -> dict[str, Any]:
    """Validate an adapter folder before anything loads it; returns the parsed config."""
    path = Path(path)
    if not path.is_dir():
        raise UnsafeArtifactError(f"{path}: adapter folder not found")
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise _bad(path / pickles[0], "<file>", "pickled weights are refused (they can run code); use safetensors")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise _bad(cfg_path, "<file>", "missing; not a PEFT adapter folder")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(cfg_path, "<json>", f"not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise _bad(cfg_path, "<root>", "must be a JSON object")
    if cfg.get("peft_type") != "LORA":
        raise _bad(cfg_path, "peft_type", f"must be 'LORA' (got {cfg.get('peft_type')!r})")
    r = cfg.get("r")
    if not isinstance(r, int) or not 1 <= r <= MAX_RANK:
        raise _bad(cfg_path, "r", f"must be an integer in [1, {MAX_RANK}]")
    tm = cfg.get("target_modules")
    if not (isinstance(tm, list) and tm and all(isinstance(t, str) and t.isidentifier() for t in tm)):
        raise _bad(cfg_path, "target_modules", "must be a non-empty list of module names (regex strings are refused)")
    if cfg.get("auto_mapping") or cfg.get("trust_remote_code"):
        raise _bad(cfg_path, "auto_mapping", "custom code is refused")
    w = path / WEIGHTS
    if not w.is_file():
        raise _bad(w, "<file>", "missing; adapters are loaded from safetensors only")
    try:
        from safetensors import safe_open

        with safe_open(str(w), framework="pt") as fh:
            keys = list(fh.keys())
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise _bad(w, "<file>", f"not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if not keys or not all("lora_" in k for k in keys):
        raise _bad(w, "<tensors>", "expected only LoRA tensors (names containing 'lora_')")
    return cfg


def attach(model, path: str | Path, name: str):
    """Attach the adapter at `path` under `name`; returns the PeftModel (wrapping `model` if needed)."""
    from peft import PeftModel

    check_adapter_dir(path)
    if isinstance(model, PeftModel):
        model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        return model
    return PeftModel.from_pretrained(model, str(path), adapter_name=name, is_trainable=False)
