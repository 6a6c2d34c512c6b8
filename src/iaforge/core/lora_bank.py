"""Many LoRA adapters on one model, picked per batch row: generation for dozens of variants (and an IA stacked on
each) in full batches, without peft's adapter switching.

Each adapted linear layer becomes a `BankedLinear`: the frozen linear plus named banks; a bank holds K adapters
stacked as A[K, r, in] and B[K, out, r], B pre-multiplied by its adapter's scaling (alpha/r), adapters of smaller
rank zero-padded (the padding adds nothing). Every row carries one slot per bank (-1: the bank adds nothing), and
row i computes base(x) + sum over banks of B_k A_k x: what peft computes with those adapters active together (a
sum of LoRA deltas; tests compare the logits).

Why not `multi_lora.MultiLoRALinear`: that layer trains K same-shaped variants and gathers each row's factors;
here a layer holds two kinds of adapter (variants, IAs) of different ranks, and rows are grouped by slot, so a
batch whose rows come from a few variants costs a few small matmuls per layer instead of a gather per row.

Adapters are hostile input: each folder passes `adapters.check_adapter_dir`, its weights are read from safetensors
only, and a config whose math this layer does not reproduce (DoRA, rank or alpha patterns, fan_in_fan_out, biases,
extra trained modules) is refused with the file and the field.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from iaforge.core.errors import UnsafeArtifactError

_UNSUPPORTED = (("use_dora", "DoRA adapters"), ("fan_in_fan_out", "fan_in_fan_out layers"),
                ("rank_pattern", "per-layer ranks"), ("alpha_pattern", "per-layer alphas"),
                ("modules_to_save", "extra trained modules"))


class BankedLinear(nn.Module):
    """A frozen `nn.Linear` plus named LoRA banks, each row routed to one slot of each bank (`bank_rows`)."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.A: dict[str, torch.Tensor] = {}  # bank -> [K, r, in]
        self.B: dict[str, torch.Tensor] = {}  # bank -> [K, out, r], scaling folded in
        self.groups: dict[str, list[tuple[int, torch.Tensor | None]]] = {}  # set by bank_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        for bank, groups in self.groups.items():
            if bank not in self.A:
                continue  # this bank adapts other layers
            A, B = self.A[bank], self.B[bank]
            if isinstance(groups, torch.Tensor):  # per-row slots: each row's factors gathered, one batched matmul
                if x.dim() != 3:
                    raise ValueError("per-row LoRA slots need [batch, seq, features] inputs")
                keep = (groups >= 0).to(A.dtype)[:, None, None]
                a, b = A[groups.clamp(min=0)], B[groups.clamp(min=0)] * keep  # [n, r, in], [n, out, r]
                out = out + torch.bmm(torch.bmm(x.to(A.dtype), a.transpose(1, 2)), b.transpose(1, 2)).to(out.dtype)
                continue
            for k, rows in groups:
                if rows is None:  # every row of the batch uses slot k
                    out = out + (x.to(A.dtype) @ A[k].T @ B[k].T).to(out.dtype)
                else:
                    xs = x.index_select(0, rows).to(A.dtype)
                    out = out.index_add(0, rows, (xs @ A[k].T @ B[k].T).to(out.dtype))
        return out


def banked_modules(model) -> dict[str, BankedLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, BankedLinear)}


def _read_adapter(path: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """(module name -> (A [r, in], B [out, r]), scaling) of one peft LoRA folder, checked."""
    from safetensors.torch import load_file

    from iaforge.core.adapters import CONFIG, WEIGHTS, check_adapter_dir

    cfg = check_adapter_dir(path)
    for key, what in _UNSUPPORTED:
        if cfg.get(key):
            raise UnsafeArtifactError(f"{path / CONFIG}: field '{key}': {what} are not supported by batched generation")
    if cfg.get("bias", "none") != "none":
        raise UnsafeArtifactError(f"{path / CONFIG}: field 'bias': must be 'none' for batched generation")
    alpha = cfg.get("lora_alpha", cfg["r"])
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise UnsafeArtifactError(f"{path / CONFIG}: field 'lora_alpha': must be a positive number")
    scaling = float(alpha) / (math.sqrt(cfg["r"]) if cfg.get("use_rslora") else cfg["r"])
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in load_file(str(path / WEIGHTS)).items():
        # peft's saved keys: base_model.model.<module>.lora_A.weight (no adapter name)
        if not key.startswith("base_model.model.") or not key.endswith((".lora_A.weight", ".lora_B.weight")):
            raise UnsafeArtifactError(f"{path / WEIGHTS}: tensor '{key}': not a plain LoRA weight of peft's layout")
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        pairs.setdefault(module, {})[key[-len("A.weight")]] = t
    out = {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise UnsafeArtifactError(f"{path / WEIGHTS}: tensor '{module}': lora_A and lora_B must come in pairs")
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1] or a.shape[0] > cfg["r"]:
            raise UnsafeArtifactError(f"{path / WEIGHTS}: tensor '{module}': shapes {tuple(a.shape)} and "
                                      f"{tuple(b.shape)} are not a rank-{cfg['r']} LoRA pair")
        out[module] = (a, b)
    return out, scaling


def load_banks(model, banks: Mapping[str, Sequence[str | Path]]) -> dict[str, list[str]]:
    """Put each bank's adapter folders (bank name -> folders; slot k is the k-th folder) on `model`, a plain
    transformers model (not a PeftModel), frozen. Returns bank -> the adapted module names. The model's linear
    layers are wrapped once, whichever bank adapts them."""
    if banked_modules(model):
        raise ValueError("model already holds LoRA banks")
    for p in model.parameters():
        p.requires_grad_(False)
    read = {bank: [_read_adapter(Path(d)) for d in dirs] for bank, dirs in banks.items()}
    linears = dict(model.named_modules())
    touched: dict[str, list[str]] = {}
    for bank, adapters in read.items():
        names = sorted({m for pairs, _ in adapters for m in pairs})
        for (pairs, _), d in zip(adapters, banks[bank]):
            for m, (a, b) in pairs.items():
                lin = linears.get(m)
                if not isinstance(lin, (nn.Linear, BankedLinear)):
                    raise UnsafeArtifactError(f"{Path(d) / 'adapter_model.safetensors'}: tensor '{m}': the model has "
                                              "no linear layer of that name")
                lin = lin.base if isinstance(lin, BankedLinear) else lin
                if a.shape[1] != lin.in_features or b.shape[0] != lin.out_features:
                    raise UnsafeArtifactError(f"{Path(d) / 'adapter_model.safetensors'}: tensor '{m}': shape does not "
                                              f"fit the layer ({lin.in_features} -> {lin.out_features})")
        touched[bank] = names
    for m in sorted({m for names in touched.values() for m in names}):
        parent_name, _, child = m.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, BankedLinear(getattr(parent, child)))
    mods = banked_modules(model)
    for bank, adapters in read.items():
        k = len(adapters)
        for m in touched[bank]:
            lin = mods[m].base
            w = lin.weight
            r = max(pairs[m][0].shape[0] for pairs, _ in adapters if m in pairs)
            A = torch.zeros(k, r, lin.in_features, dtype=w.dtype, device=w.device)
            B = torch.zeros(k, lin.out_features, r, dtype=w.dtype, device=w.device)
            for i, (pairs, scaling) in enumerate(adapters):
                if m in pairs:
                    a, b = pairs[m]
                    A[i, :a.shape[0]] = a.to(w.dtype)
                    B[i, :, :b.shape[1]] = b.to(w.dtype) * scaling
            mods[m].A[bank], mods[m].B[bank] = A, B
    return touched


def _groups(slots: torch.Tensor) -> list[tuple[int, torch.Tensor | None]]:
    ks = sorted(set(slots.tolist()))
    if ks == [-1]:
        return []
    if len(ks) == 1:
        return [(ks[0], None)]
    return [(k, (slots == k).nonzero().squeeze(1)) for k in ks if k >= 0]


@contextlib.contextmanager
def bank_rows(model, rows: Mapping[str, Sequence[int] | torch.Tensor], per_row: Sequence[str] = ()) -> Iterator[None]:
    """Route batch row i through slot rows[bank][i] of each bank (-1: that bank adds nothing; a bank not named
    adds nothing). The routing holds for every forward pass inside the block (a whole `generate` call).

    Banks named in `per_row` gather each row's factors and apply them in one batched matmul, instead of a few
    matmuls per slot: faster when a batch's rows come from many different adapters (the banked IA trainer mixes
    variants in a batch), slower when they come from a few (generation batches)."""
    mods = list(banked_modules(model).values())
    if not mods:
        raise ValueError("model holds no LoRA banks (call load_banks first)")
    sizes = {b: A.shape[0] for m in mods for b, A in m.A.items()}
    groups = {}
    n = None
    for bank, idx in rows.items():
        if bank not in sizes:
            raise ValueError(f"no bank named {bank!r} (banks: {sorted(sizes)})")
        t = torch.as_tensor(idx, dtype=torch.long)
        if t.ndim != 1 or (t.numel() and (int(t.max()) >= sizes[bank] or int(t.min()) < -1)):
            raise ValueError(f"bank {bank!r}: slots must be a 1-d list in [-1, {sizes[bank] - 1}]")
        if n is not None and t.numel() != n:
            raise ValueError("every bank needs one slot per row")
        n = t.numel()
        groups[bank] = t if bank in per_row else _groups(t)
    for m in mods:
        m.groups = groups
    try:
        yield
    finally:
        for m in mods:
            m.groups = {}
