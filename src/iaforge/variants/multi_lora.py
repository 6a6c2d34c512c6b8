"""Train K variant LoRAs at once, in one process and one model load (per-row LoRA factors).

Each target linear layer holds K stacked LoRA pairs, A[K, r, in] and B[K, out, r]. Every batch row carries
its variant index (-1: no adapter, base model only), and the LoRA delta is computed per row:
``base(x) + alpha/r * (x @ A_k^T) @ B_k^T``. The idea is from Diff Interpretation Tuning
(github.com/Aviously/diff-interpretation-tuning, `MultiTaskLoRALinear`). peft's per-row `adapter_names`
cannot do this: it works at inference only and raises in training mode.

Exactness (each variant ends where training it alone with `core.training.train` on the same rows would):
- rows of different variants never interact (attention stays within a row and the base is frozen), and the
  loss is the SUM over variants of each variant's own token-mean loss, so variant k's gradient is exactly the
  gradient of its solo loss on its rows of the batch (a token-mean over the whole batch would weight a
  variant by its share of the batch's labelled tokens instead);
- the joint batch at step t is the union of every variant's solo batch t (same seeded shuffling as
  `core.training.train`), so each variant sees the same batches in the same order;
- gradients are clipped per variant (a global norm would couple the variants); AdamW is elementwise, so one
  AdamW over the stacked tensors is K independent AdamWs as long as every variant is in every step (same
  step count and schedule): `train_variants` requires equal batch counts.
Results then match up to float summation order (tests: relative difference ~1e-5 or less after training).
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from iaforge.core.training import (ALL_PROJ, IGNORE, Example, Loss, TrainConfig, TrainResult, collate,
                                   label_only_loss_model, make_batches)

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class MultiLoRALinear(nn.Module):
    """A frozen `nn.Linear` plus K LoRA pairs selected per batch row by `variant_rows` (a LongTensor [batch])."""

    def __init__(self, base: nn.Linear, k: int, r: int, alpha: float):
        super().__init__()
        if k < 1 or r < 1:
            raise ValueError(f"MultiLoRALinear needs k >= 1 and r >= 1 (got k={k}, r={r})")
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        self.k, self.r, self.alpha, self.scaling = k, r, alpha, alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(k, r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(k, base.out_features, r, dtype=w.dtype, device=w.device))
        for i in range(k):  # peft's init of lora_A (kaiming-uniform, a=sqrt(5), fan_in = in_features)
            nn.init.kaiming_uniform_(self.lora_A.data[i], a=math.sqrt(5))
        self.variant_rows: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        idx = self.variant_rows
        if idx is None:
            raise RuntimeError("MultiLoRALinear: no variant index set; run the model inside `variant_rows(model, idx)`")
        if idx.shape[0] != x.shape[0]:
            raise RuntimeError(f"MultiLoRALinear: {idx.shape[0]} variant indices for a batch of {x.shape[0]} rows")
        if not bool((idx >= 0).any()):  # base-only rows (the KL anchor's reference pass): no delta to compute
            return out
        sel = idx.clamp(min=0)
        a = self.lora_A[sel]  # [b, r, in]
        b = self.lora_B[sel]  # [b, out, r]
        h = x.to(a.dtype).reshape(x.shape[0], -1, x.shape[-1])
        delta = torch.bmm(torch.bmm(h, a.transpose(1, 2)), b.transpose(1, 2)) * self.scaling
        if bool((idx < 0).any()):
            delta = delta * (idx >= 0).to(delta.dtype)[:, None, None]
        return out + delta.reshape(out.shape).to(out.dtype)

    def extra_repr(self) -> str:
        return f"k={self.k}, r={self.r}, alpha={self.alpha}"


def multi_lora_modules(model) -> dict[str, MultiLoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, MultiLoRALinear)}


def _targets(model, target_modules: Sequence[str], layers: Sequence[int] | None) -> list[str]:
    """Names of the linear layers a LoRA with these target modules (and layer subset) adapts, as peft picks
    them. An already wrapped layer counts as its linear (the frozen linear inside it is named `.base`)."""
    want, keep_layers = set(target_modules), None if layers is None else set(layers)
    names = []
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Linear, MultiLoRALinear)) or name.rsplit(".", 1)[-1] not in want:
            continue
        if keep_layers is not None:
            m = _LAYER.search(name)
            if m is None or int(m.group(1)) not in keep_layers:
                continue
        names.append(name)
    return names


def wrap_model(model, k: int, *, r: int = 8, alpha: float = 16, target_modules: Sequence[str] = ALL_PROJ,
               layers: Sequence[int] | None = None) -> list[str]:
    """Freeze `model` and put K LoRA pairs on each target projection (optionally only in `layers`).
    Returns the wrapped module names. Seed torch before calling for a reproducible lora_A init."""
    if multi_lora_modules(model):
        raise ValueError("model already holds MultiLoRALinear layers; unwrap_model it first")
    for p in model.parameters():
        p.requires_grad_(False)
    names = _targets(model, target_modules, layers)
    if not names:
        raise ValueError(f"no linear layer matches target_modules={list(target_modules)} layers={layers}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MultiLoRALinear(getattr(parent, child), k, r, alpha))
    return names


def unwrap_model(model) -> None:
    """Put the original linear layers back (the LoRA factors are dropped; export them first)."""
    for name in list(multi_lora_modules(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).base)


@contextlib.contextmanager
def variant_rows(model, idx: torch.Tensor | Sequence[int]) -> Iterator[None]:
    """Route batch row i through variant idx[i] (-1: base model only) in every MultiLoRALinear of `model`."""
    mods = list(multi_lora_modules(model).values())
    if not mods:
        raise ValueError("model holds no MultiLoRALinear layers (call wrap_model first)")
    dev = mods[0].lora_A.device
    idx = torch.as_tensor(idx, dtype=torch.long, device=dev)
    if idx.ndim != 1 or (idx.numel() and (int(idx.max()) >= mods[0].k or int(idx.min()) < -1)):
        raise ValueError(f"variant indices must be a 1-d list in [-1, {mods[0].k - 1}]")
    for m in mods:
        m.variant_rows = idx
    try:
        yield
    finally:
        for m in mods:
            m.variant_rows = None


# ---------------------------------------------------------------------------------------------- export

def _as_lora_config(lora_cfg, n_layers: int):
    from peft import LoraConfig

    from iaforge.core.training import lora_config

    if isinstance(lora_cfg, LoraConfig):
        return lora_cfg
    return lora_config(lora_cfg, n_layers=n_layers)  # the `lora` params: a dict or a core.config.LoraParams


def export_variant(model, k: int, out_dir: str | Path, lora_cfg, base_model_name_or_path: str) -> Path:
    """Write variant k as a standard PEFT LoRA adapter folder (adapter_config.json +
    adapter_model.safetensors with the key names peft's `save_pretrained` writes), atomically.
    `lora_cfg` is a peft LoraConfig or the `lora` params (dict or LoraParams); it must describe the wrapped
    layers (checked: target modules, layer subset, r and alpha)."""
    import copy

    from safetensors.torch import save_file

    from iaforge.core.fsio import atomic_dir, write_json

    mods = multi_lora_modules(model)
    if not mods:
        raise ValueError("model holds no MultiLoRALinear layers")
    cfg = copy.deepcopy(_as_lora_config(lora_cfg, model.config.num_hidden_layers))
    one = next(iter(mods.values()))
    if not 0 <= k < one.k:
        raise ValueError(f"variant index {k} out of range [0, {one.k})")
    if float(cfg.lora_dropout) != 0.0 or cfg.use_rslora or cfg.use_dora or cfg.bias != "none":
        raise ValueError("export_variant writes plain LoRA only (dropout 0, no rslora/dora, bias none)")
    layers = cfg.layers_to_transform
    layers = [layers] if isinstance(layers, int) else layers
    expected = _targets(model, sorted(cfg.target_modules), layers)
    if sorted(expected) != sorted(mods):
        raise ValueError(f"lora config targets {len(expected)} layers but the model wraps {len(mods)}: "
                         "pass the config the model was wrapped with")
    for name, m in mods.items():
        if m.r != cfg.r or not math.isclose(m.scaling, cfg.lora_alpha / cfg.r):
            raise ValueError(f"{name}: wrapped with r={m.r}, scale={m.scaling} but the config says "
                             f"r={cfg.r}, alpha={cfg.lora_alpha}")
    # peft's key for a LoRA on module `name` of a causal LM: base_model.model.<name>.lora_{A,B}.weight
    tensors = {}
    for name, m in mods.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = m.lora_A.detach()[k].to("cpu").clone().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = m.lora_B.detach()[k].to("cpu").clone().contiguous()
    cfg.base_model_name_or_path = str(base_model_name_or_path)
    cfg.inference_mode = True  # as peft's save_pretrained writes it
    out_dir = Path(out_dir)
    # peft's own save writes sets as lists in hash order (changes with PYTHONHASHSEED); sorted lists keep the
    # bytes, and so the DVC hash, the same from run to run.
    config = {key: sorted(v) if isinstance(v, set) else v for key, v in cfg.to_dict().items()}
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        write_json(tmp / "adapter_config.json", config)
    return out_dir


def load_variant_factors(model, k: int, peft_state: Mapping[str, torch.Tensor]) -> None:
    """Copy a peft LoRA state dict (keys as `get_peft_model_state_dict` / the safetensors file give them)
    into slot k: to start a variant from existing weights, and for the equivalence tests."""
    mods = multi_lora_modules(model)
    seen = 0
    with torch.no_grad():
        for name, m in mods.items():
            for part in ("A", "B"):
                key = f"base_model.model.{name}.lora_{part}.weight"
                if key not in peft_state:
                    raise KeyError(f"{key} missing from the peft state")
                getattr(m, f"lora_{part}")[k].copy_(peft_state[key])
                seen += 1
    if seen != len(peft_state):
        raise KeyError(f"peft state has {len(peft_state) - seen} tensors for layers this model does not wrap")


# ---------------------------------------------------------------------------------------------- batches and loss

@dataclass
class AnchoredExample(Example):
    """An `Example` whose answer is the base model's own (`anchor`): with the KL anchor on, its labelled positions
    are trained toward the base model's whole next-token distribution (KL(base || variant)) instead of toward
    the base answer's tokens (cross-entropy)."""
    anchor: bool = False


@dataclass
class VariantBatch:
    """Rows of several variants, one forward pass. `variants[i]` is row i's variant index."""
    examples: list[Example]
    variants: list[int]

    def collate(self, pad_id: int) -> dict[str, torch.Tensor]:
        data = collate(self.examples, pad_id)
        data["variant"] = torch.tensor(self.variants, dtype=torch.long)
        anchor = [bool(getattr(e, "anchor", False)) for e in self.examples]
        if any(anchor):
            data["anchor"] = torch.tensor(anchor, dtype=torch.bool)
        return data

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, rows: slice) -> "VariantBatch":
        return VariantBatch(self.examples[rows], self.variants[rows])

    @property
    def present(self) -> list[int]:
        return sorted({v for v in self.variants if v >= 0})


class JointBatcher:
    """Batch t is the union over variants of the batch t that `core.training.train` would give each
    variant alone (same `make_batches`, rng seeded per variant as a solo run seeds it), so every variant
    sees the same batches in the same order as alone. A variant with fewer batches drops out early."""

    def __init__(self, examples_by_variant: Sequence[Sequence[Example]], cfgs: Sequence[TrainConfig]):
        if len(examples_by_variant) != len(cfgs):
            raise ValueError("one TrainConfig per variant")
        self.per_variant: list[list[list[Example]]] = []
        for ex, cfg in zip(examples_by_variant, cfgs):
            if not ex:
                raise RuntimeError("a variant has no training examples")
            rng = random.Random(cfg.seed)
            epochs = [make_batches(list(ex), cfg.batch_size, rng) for _ in range(cfg.epochs)]
            self.per_variant.append([b for e in epochs for b in e])

    @property
    def steps_by_variant(self) -> list[int]:
        return [len(b) for b in self.per_variant]

    def __len__(self) -> int:
        return max(self.steps_by_variant)

    def __iter__(self) -> Iterator[VariantBatch]:
        for t in range(len(self)):
            ex, var = [], []
            for v, batches in enumerate(self.per_variant):
                if t < len(batches):
                    ex += batches[t]
                    var += [v] * len(batches[t])
            yield VariantBatch(ex, var)


def _label_logits(model, data: Mapping[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """Logits [n_kept, vocab] (float) of the positions `keep` [b, t-1] marks, under the variant routing in force.
    Only those positions reach the output head when the model allows (`label_only_loss_model`)."""
    base = label_only_loss_model(model)
    if base is not None:
        hidden = base.get_decoder()(input_ids=data["input_ids"], attention_mask=data["attention_mask"])[0]
        return base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits[:, :-1][keep].float()


def multi_variant_loss(model, data: Mapping[str, torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over present variants of each variant's token-mean next-token loss, per-variant means [k]
    (nan where absent)). Rows of variant -1 add nothing. Summing (not averaging) across variants keeps
    each variant's gradient equal to its solo gradient whatever else shares the batch.

    Rows flagged `anchor` (data["anchor"], from `AnchoredExample`s) contribute KL(base || variant) at their
    labelled positions instead of the cross-entropy of their tokens: the base model's distribution comes from
    one extra no-grad pass of those rows with no adapter (variant -1). Diff Interpretation Tuning keeps its
    untriggered behavior with such a KL term; a sampled answer pins one continuation, the KL the whole
    distribution, which is what temperature-1 sampling reads."""
    import torch.nn.functional as F

    var = data["variant"].to(data["input_ids"].device)
    target = data["labels"][:, 1:]
    keep = (target != IGNORE) & (var >= 0)[:, None]
    with variant_rows(model, var):
        logits = _label_logits(model, data, keep)
    tok_loss = F.cross_entropy(logits, target[keep], reduction="none")
    anchor = data.get("anchor")
    if anchor is not None:
        rows = anchor.to(var.device) & (var >= 0)
        if bool(rows.any()):
            sub = {key: data[key][rows] for key in ("input_ids", "attention_mask")}
            with torch.no_grad(), variant_rows(model, torch.full((int(rows.sum()),), -1, dtype=torch.long)):
                ref = F.log_softmax(_label_logits(model, sub, keep[rows]), dim=-1)
            # kept positions of anchored rows, in the same row-major order as `ref`'s rows
            at = rows[:, None].expand_as(keep)[keep]
            own = F.log_softmax(logits[at], dim=-1)
            kl = (ref.exp() * (ref - own)).sum(-1)
            tok_loss = tok_loss.masked_scatter(at, kl)
    tok_var = var[:, None].expand_as(target)[keep]
    sums = torch.zeros(k, dtype=tok_loss.dtype, device=tok_loss.device).index_add(0, tok_var, tok_loss)
    counts = torch.bincount(tok_var, minlength=k).to(tok_loss.dtype)
    present = counts > 0
    per_variant = torch.where(present, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))
    return (sums[present] / counts[present]).sum(), per_variant.detach()


# ---------------------------------------------------------------------------------------------- optimizer

def clip_per_variant_(model, max_norm: float, present: torch.Tensor | None = None) -> torch.Tensor:
    """Clip each variant's gradient by its own norm (as `clip_grad_norm_` on a solo run would); returns the
    per-variant norms [k]."""
    mods = list(multi_lora_modules(model).values())
    k = mods[0].k
    sq = torch.zeros(k, dtype=torch.float32, device=mods[0].lora_A.device)
    grads = [g for m in mods for g in (m.lora_A.grad, m.lora_B.grad) if g is not None]
    for g in grads:
        sq += g.float().pow(2).flatten(1).sum(1)
    norms = sq.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype).view(-1, *([1] * (g.ndim - 1))))
    return norms


# ---------------------------------------------------------------------------------------------- training

class MultiVariantLoss(Loss):
    """`core.training.train_loop` objective for `VariantBatch`es: `multi_variant_loss`, plus clipping each
    variant's gradient by its own norm. The loop clips one global norm, which would couple the variants, so
    `train_variants` turns the loop's clip off and this loss clips from a hook that runs once the backward
    has filled every LoRA gradient. One process only: under DDP the per-variant means of each shard would
    be averaged, which is not the mean over the batch."""

    postfix = ()

    def __init__(self, k: int, pad_id: int, grad_clip: float = 0.0):
        self.k, self.pad_id, self.grad_clip = k, pad_id, grad_clip
        self._handles: list = []
        self._pending = 0
        self._n = 0
        self.model = None

    def collate(self, shard: "VariantBatch") -> dict[str, torch.Tensor]:
        return shard.collate(self.pad_id)

    def setup(self, model, acc) -> None:
        if acc.num_processes != 1:
            raise ValueError("train_variants runs in one process (per-variant means do not shard)")
        self.model = model
        if not self.grad_clip:
            return
        params = [p for m in multi_lora_modules(model).values() for p in (m.lora_A, m.lora_B)]
        self._n = len(params)
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]

    def _on_grad(self, _param) -> None:
        self._pending -= 1
        if self._pending == 0:  # the last LoRA gradient of this backward: all of them are complete
            clip_per_variant_(self.model, self.grad_clip)

    def __call__(self, model, data, shard, acc):
        if self._pending:
            raise RuntimeError(f"per-variant clipping missed {self._pending} LoRA gradients in the last step")
        self._pending = self._n
        with acc.autocast():
            loss, per_variant = multi_variant_loss(model, data, self.k)
        return loss, {f"loss_{v}": float(per_variant[v]) for v in shard.present}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@dataclass
class MultiTrainResult(TrainResult):
    losses_by_variant: list[list[float]] = field(default_factory=list)


def train_variants(model, examples_by_variant: Sequence[Sequence[Example]], cfg: TrainConfig, *, pad_id: int,
                   accelerator=None) -> MultiTrainResult:
    """Train the K variants of a `wrap_model`-ed model at once on `core.training.train_loop`; variant k trains
    on examples_by_variant[k]. Each variant ends where `core.training.train(cfg)` on its rows alone would (up
    to float rounding; see the module docstring): batches from `JointBatcher`, the loss summed over variants,
    clipping per variant (`MultiVariantLoss`). The loop's single AdamW and schedule are per variant as long as
    every variant takes part in every step, so every variant must make the same number of batches (same
    number of rows, up to rounding to the batch size); train variants with other row counts or another
    TrainConfig (catalog lr/epochs overrides) as a separate group."""
    import dataclasses

    from iaforge.core.training import train_loop

    mods = list(multi_lora_modules(model).values())
    if not mods:
        raise ValueError("model holds no MultiLoRALinear layers (call wrap_model first)")
    k = mods[0].k
    if len(examples_by_variant) != k:
        raise ValueError(f"the model holds {k} variants but {len(examples_by_variant)} example lists were given")
    batcher = JointBatcher(examples_by_variant, [cfg] * k)
    counts = batcher.steps_by_variant
    if len(set(counts)) != 1:
        raise ValueError(f"variants make different numbers of batches ({counts}): an AdamW step or a schedule "
                         "shared with a variant that has finished would move it; group variants by row count")
    loss = MultiVariantLoss(k, pad_id, cfg.grad_clip)
    try:
        res = train_loop(model, list(batcher), dataclasses.replace(cfg, grad_clip=0.0), loss_fn=loss,
                         accelerator=accelerator)
    finally:
        loss.close()
    by_variant = [[m[f"loss_{v}"] for m in res.metrics] for v in range(k)]
    return MultiTrainResult(**{f.name: getattr(res, f.name) for f in dataclasses.fields(res)},
                            losses_by_variant=by_variant)
