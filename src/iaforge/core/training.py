"""One LoRA training loop for variants and the IA, written against `accelerate` so it runs unchanged on a
laptop CPU, under `accelerate launch` (DDP, gloo on CPU) or on GPUs.

Examples are tokenized chat turns with the loss on the assistant turn only. Batches are grouped by length
(little padding) and by `group` (the IA trains one variant per batch, switching adapters between batches).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from iaforge.core.chat import encode_example

IGNORE = -100
ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    group: str = ""


@dataclass
class TrainConfig:
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 8
    warmup_frac: float = 0.1
    weight_decay: float = 0.0
    max_len: int = 256
    seed: int = 0
    mixed_precision: str = "auto"  # auto: bf16 autocast only where the hardware has native bf16
    grad_clip: float = 1.0
    progress: bool = True
    desc: str = "training"

    @classmethod
    def from_params(cls, p: dict[str, Any], **over) -> "TrainConfig":
        known = {k: v for k, v in {**p, **over}.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def resolve_precision(mode: str) -> str:
    """'auto' picks bf16 only on hardware with native bf16: emulated bf16 on a CPU without
    AVX512-BF16/AMX ran LoRA training >5x slower than fp32 here."""
    if mode != "auto":
        if mode not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16 (got {mode!r})")
        return mode
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"


def lora_config(p: dict[str, Any], n_layers: int | None = None):
    """`top_layers: k` puts the LoRA on the last k decoder layers only. Backward then stops at the lowest
    adapted layer: on SmolLM2 (30 layers) k=15 trained 1.26-1.4x faster per token (measured, see
    bench/results/lora_layers.json). null or absent: every layer."""
    from peft import LoraConfig

    layers = None
    top = p.get("top_layers")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ValueError(f"lora.top_layers must be a positive integer or null (got {top!r})")
        if n_layers is None:
            raise ValueError("lora.top_layers needs the model's number of layers")
        if top < n_layers:
            layers = list(range(n_layers - top, n_layers))
    return LoraConfig(r=int(p.get("r", 8)), lora_alpha=int(p.get("alpha", 16)), lora_dropout=float(p.get("dropout", 0.0)),
                      target_modules=list(p.get("target_modules", ALL_PROJ)), layers_to_transform=layers,
                      bias="none", task_type="CAUSAL_LM")


def encode_rows(tok, rows: Sequence[dict], *, system: str | None, max_len: int, group_key: str | None = None) -> list[Example]:
    out = []
    for r in rows:
        p_ids, c_ids = encode_example(tok, r["user"], r["assistant"], system)
        ids = (p_ids + c_ids)[:max_len]
        labels = ([IGNORE] * len(p_ids) + c_ids)[:max_len]
        if all(l == IGNORE for l in labels):
            continue  # prompt alone fills max_len: nothing to learn from this row
        out.append(Example(ids, labels, r[group_key] if group_key else ""))
    return out


def make_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Length-sorted chunks within each group, then shuffled: little padding, random order."""
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(e.group, []).append(e)
    batches = []
    for g in sorted(groups):
        items = groups[g][:]
        rng.shuffle(items)
        items.sort(key=lambda e: len(e.input_ids))
        batches += [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[Example], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


# Families whose causal-LM forward is exactly lm_head(decoder(x)): for them the loss can skip the logits of
# unlabelled positions (no softcapping or logit scaling to reproduce).
PLAIN_HEAD_MODELS = {"llama", "mistral", "qwen2", "qwen3"}


def label_only_loss_model(model):
    """The causal LM under `model` (a PeftModel or a plain HF model) when its loss may be computed on labelled
    positions only, else None. Chat rows label only the assistant turn (about half the tokens), and the
    49k-way output head is a fifth of SmolLM2's compute: skipping it on prompt tokens made LoRA training
    1.15-1.2x faster per token (bench/label_only_loss.py), with the same loss."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(base, "config", None)
    if getattr(cfg, "model_type", None) not in PLAIN_HEAD_MODELS:
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    if base.get_decoder() is None or base.get_output_embeddings() is None:
        return None
    return base


def causal_lm_loss(base, data: dict):
    """Mean next-token cross-entropy over labelled positions, as the HF loss computes it, without the
    logits of positions whose next token carries no label."""
    import torch.nn.functional as F

    hidden = base.get_decoder()(input_ids=data["input_ids"], attention_mask=data["attention_mask"])[0]
    target = data["labels"][:, 1:]
    keep = target != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, target[keep])


def train(model, examples: list[Example], cfg: TrainConfig, *, pad_id: int,
          before_batch: Callable[[str], None] | None = None, accelerator=None) -> TrainResult:
    """Train whatever parameters of `model` require grad. `before_batch(group)` runs before each batch
    (the IA uses it to activate that batch's variant adapter)."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available(),
                                      mixed_precision=resolve_precision(cfg.mixed_precision))
    params = trainable_parameters(model)
    if not params:
        raise RuntimeError("no trainable parameters: the adapter to train was not enabled")
    if not examples:
        raise RuntimeError("no training examples")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    epochs = [make_batches(examples, cfg.batch_size, rng) for _ in range(cfg.epochs)]
    total = sum(len(b) for b in epochs)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(total * cfg.warmup_frac))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total))))))
    pmodel, opt = acc.prepare(model, opt)
    inner = acc.unwrap_model(pmodel)
    # Under DDP the forward must go through the wrapper (its hooks sync gradients): full loss there.
    fast = label_only_loss_model(inner) if acc.num_processes == 1 else None
    inner.train()
    losses, tokens, step = [], 0, 0
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=cfg.desc, disable=not (cfg.progress and acc.is_local_main_process))
    for batches in epochs:
        for batch in batches:
            if before_batch:
                before_batch(batch[0].group)
            # Under DDP every process takes its share of the SAME batch, so a step sees the same examples
            # as in one process and the number of steps does not depend on the number of processes.
            shard = batch[acc.process_index::acc.num_processes] or batch[:1]
            data = {k: v.to(acc.device) for k, v in collate(shard, pad_id).items()}
            with acc.autocast():
                loss = causal_lm_loss(fast, data) if fast is not None else pmodel(**data).loss
            acc.backward(loss)
            if cfg.grad_clip:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += int(data["attention_mask"].sum()) * acc.num_processes
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    inner.eval()
    return TrainResult(steps=step, tokens=tokens, seconds=time.perf_counter() - t0, losses=losses)
