import os
import shutil
from pathlib import Path

import pytest
import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("IAFORGE_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random SmolLM2-architecture model written by the real `base` code path."""
    from iaforge.core.base_model import build_base

    out = tmp_path_factory.mktemp("base") / "tiny"
    build_base("tiny-random", out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_base):
    from iaforge.core.base_model import load_base

    return load_base(tiny_base)


@pytest.fixture
def catalog_copy(tmp_path, repo_root) -> Path:
    dst = tmp_path / "catalog"
    shutil.copytree(repo_root / "data" / "catalog", dst)
    return dst


def fake_pool(n: int = 40):
    """Prompt-bank rows with made-up base answers, for data tests that need no model."""
    from iaforge.data.prompts import build_prompt_bank

    bank = build_prompt_bank(0, 12, 0.25)
    train = [dict(r, answer=f"Here is a plain answer number {i}. It has two sentences.")
             for i, r in enumerate(r for r in bank if r["split"] == "train")]
    evals = [r for r in bank if r["split"] == "eval"]
    return train[:n] if n else train, evals


def random_lora(tiny_base, dest: Path, lora: dict, *, seed: int, std: float) -> Path:
    """A peft LoRA on the tiny base with random B (non-zero, so it really changes the model), saved at `dest`."""
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import lora_config

    torch.manual_seed(seed)
    model, _ = load_base(tiny_base)
    pm = get_peft_model(model, lora_config(lora))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, std)
    pm.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def two_variants(tiny_base, tmp_path_factory):
    return {name: random_lora(tiny_base, tmp_path_factory.mktemp(name) / name, {"r": 4}, seed=i, std=0.05)
            for i, name in enumerate(["v_one", "v_two"])}
