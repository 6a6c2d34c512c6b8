"""One LoRA training loop for variants and the IA, written against `accelerate` so it runs unchanged on a
laptop CPU, under `accelerate launch` (DDP, gloo on CPU) or on GPUs.

`train_loop` takes the objective as a `Loss` (SFT: `CausalLMLoss`; DPO: `ia.dpo.DPOLoss`) and its batches from a
batcher or a prepared list, so every trainer shares one optimizer, schedule, clipping and precision setup.
`train` is SFT on tokenized chat turns with the loss on the assistant turn only. Batches are grouped by length
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


# Strict typed configs (unknown keys, wrong types and bad values fail with one line): see core/config.py.
from iaforge.core.config import LoraParams, TrainConfig  # noqa: E402  (re-exported)


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)  # per step, from the loss

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

    lp = p if isinstance(p, LoraParams) else LoraParams.from_params(p)
    layers = None
    top = lp.top_layers
    if top is not None:
        if n_layers is None:
            raise ValueError("lora.top_layers needs the model's number of layers")
        if top < n_layers:
            layers = list(range(n_layers - top, n_layers))
    return LoraConfig(r=lp.r, lora_alpha=lp.alpha, lora_dropout=lp.dropout,
                      target_modules=list(lp.target_modules or ALL_PROJ), layers_to_transform=layers,
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


def make_batches(examples: list, batch_size: int, rng: random.Random,
                 length: Callable[[Any], int] | None = None) -> list[list]:
    """Length-sorted chunks within each group, then shuffled: little padding, random order. Any item with a
    `group` works; `length` measures items that are not `Example`s (DPO pairs)."""
    key = length or (lambda e: len(e.input_ids))
    groups: dict[str, list] = {}
    for e in examples:
        groups.setdefault(e.group, []).append(e)
    batches = []
    for g in sorted(groups):
        items = groups[g][:]
        rng.shuffle(items)
        items.sort(key=key)
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


class Loss:
    """An objective for `train_loop`: how a batch becomes tensors and those tensors a scalar loss.

    `collate(shard)` turns this process's part of a batch into tensors (an `attention_mask` among them: the
    loop counts tokens from it); `setup(model, acc)` runs once after `accelerate.prepare` and before the first
    step, on the unwrapped model (to pick a fast path, or to score a reference); `__call__(model, data, shard,
    acc)` returns the loss, or (loss, per-step metrics). The loss runs its own forward under `acc.autocast()`:
    what may run in low precision is the objective's call (DPO keeps its log-sigmoid of log-prob differences
    out of it). `postfix` names metrics worth showing on the progress bar.
    """

    postfix: tuple[str, ...] = ()

    def collate(self, shard) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, model, acc) -> None:
        pass

    def __call__(self, model, data: dict[str, Any], shard, acc):
        raise NotImplementedError


class CausalLMLoss(Loss):
    """Supervised fine-tuning: mean next-token cross-entropy over the labelled tokens of `Example`s."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.fast = None

    def collate(self, shard):
        return collate(shard, self.pad_id)

    def setup(self, model, acc) -> None:
        # Under DDP the forward must go through the wrapper (its hooks sync gradients): full loss there.
        self.fast = label_only_loss_model(model) if acc.num_processes == 1 else None

    def __call__(self, model, data, shard, acc):
        with acc.autocast():
            return causal_lm_loss(self.fast, data) if self.fast is not None else model(**data).loss


def make_accelerator(cfg: TrainConfig):
    """An Accelerator with this run's precision. accelerate keeps one process-wide AcceleratorState and refuses
    a second Accelerator with another precision; in one process (a notebook, a test session, a stage that
    trains twice) a later training with its own precision is legitimate, so the old state is dropped there.
    Under a distributed launch the state carries the process group: a different precision is an error."""
    import torch
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState

    precision = resolve_precision(cfg.mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", precision) != precision:
        if PartialState().num_processes > 1:
            raise ValueError(f"mixed_precision {precision!r} differs from {state['_mixed_precision']!r}, which "
                             "this distributed process already trains with: one precision per launch")
        AcceleratorState._reset_state()  # keeps PartialState (device, process index)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)


def shard_rows(batch: Sequence, rank: int, world: int) -> Sequence:
    """This process's rows of a batch. Under DDP every process takes its share of the SAME batch, so a step
    sees the same examples as in one process and the number of steps does not depend on the number of
    processes."""
    return batch[rank::world] or batch[:1]


def warmup_cosine(total: int, warmup_frac: float) -> Callable[[int], float]:
    """Learning-rate factor at step s: linear warm-up, then cosine to 0 over the run's `total` steps."""
    warm = max(1, int(total * warmup_frac))
    return lambda s: min(1.0, (s + 1) / warm) * max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total)))))


def train_loop(model, batches: Callable[[random.Random], Sequence] | Sequence, cfg: TrainConfig, *, loss_fn: Loss,
               before_batch: Callable[[Any], None] | None = None,
               shard: Callable[[Any, int, int], Any] = shard_rows, accelerator=None) -> TrainResult:
    """Train whatever parameters of `model` require grad on `loss_fn`: AdamW, warm-up + cosine schedule,
    gradient clipping, mixed precision, one optimizer step per batch. The one loop behind SFT (variants, the
    IA, the audit tier) and DPO.

    `batches` is a batcher, called once per epoch (cfg.epochs) with one `random.Random(cfg.seed)` shared by
    all epochs, or a prepared sequence of every step's batch (cfg.epochs then does not apply). A batch is
    whatever `loss_fn.collate` and `shard` understand (a list of examples by default). `before_batch(batch)`
    runs before each step, on the whole batch (the IA uses it to activate that batch's variant adapter).
    Per-step metrics that the loss returns come back in `TrainResult.metrics`.
    """
    import torch
    from tqdm.auto import tqdm

    acc = accelerator or make_accelerator(cfg)
    params = trainable_parameters(model)
    if not params:
        raise RuntimeError("no trainable parameters: the adapter to train was not enabled")
    torch.manual_seed(cfg.seed)
    if callable(batches):
        rng = random.Random(cfg.seed)
        plan = [b for _ in range(cfg.epochs) for b in batches(rng)]
    else:
        plan = list(batches)
    if not plan:
        raise RuntimeError("no training examples")
    total = len(plan)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, cfg.warmup_frac))
    pmodel, opt = acc.prepare(model, opt)
    inner = acc.unwrap_model(pmodel)
    loss_fn.setup(inner, acc)
    inner.train()
    losses, metrics, tokens, step = [], [], 0, 0
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=cfg.desc, disable=not (cfg.progress and acc.is_local_main_process))
    for batch in plan:
        if before_batch:
            before_batch(batch)
        part = shard(batch, acc.process_index, acc.num_processes)
        data = {k: v.to(acc.device) for k, v in loss_fn.collate(part).items()}
        out = loss_fn(pmodel, data, part, acc)
        loss, stats = out if isinstance(out, tuple) else (out, {})
        acc.backward(loss)
        if cfg.grad_clip:
            acc.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens += int(data["attention_mask"].sum()) * acc.num_processes
        losses.append(float(loss.detach()))
        metrics.append(stats)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", **{k: f"{stats[k]:.2f}" for k in loss_fn.postfix if k in stats})
    bar.close()
    inner.eval()
    return TrainResult(steps=step, tokens=tokens, seconds=time.perf_counter() - t0, losses=losses, metrics=metrics)


def train(model, examples: list[Example], cfg: TrainConfig, *, pad_id: int,
          before_batch: Callable[[str], None] | None = None, accelerator=None) -> TrainResult:
    """Supervised fine-tuning of whatever parameters of `model` require grad. `before_batch(group)` runs
    before each batch (the IA uses it to activate that batch's variant adapter)."""
    if not trainable_parameters(model):
        raise RuntimeError("no trainable parameters: the adapter to train was not enabled")
    if not examples:
        raise RuntimeError("no training examples")
    hook = (lambda batch: before_batch(batch[0].group)) if before_batch else None
    return train_loop(model, lambda rng: make_batches(examples, cfg.batch_size, rng), cfg,
                      loss_fn=CausalLMLoss(pad_id), before_batch=hook, accelerator=accelerator)
