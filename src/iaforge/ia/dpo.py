"""DPO refinement of the introspection adapter, starting from the SFT IA.

The SFT IA is loaded as the trainable adapter `ia` on the base model with the variant adapters attached (frozen);
each batch holds pairs of ONE group and activates [variant, ia] (AdapterSwitch), exactly as in SFT.

The reference model is explicit: the log-probabilities of every chosen and rejected response under the SFT IA
are computed once, before any update, with the pair's own variant active (no_grad). A reference taken by
"disabling the adapter" would be the wrong model here (it would drop the variant too), and a PeftModel with two
active adapters and no reference silently trains nothing in TRL (docs/pitfalls): this loop owns its reference
and checks after training that the IA moved and that base and variant weights are bit-identical.

Loss (DPO, sigmoid): -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), log-probs summed over the response
tokens only (the prompt is shared by both sides and masked).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.adapter_stack import (BASE_GROUP, IA_NAME, AdapterSwitch, is_ia_param, load_with_variants,
                                        save_adapter)
from iaforge.core.adapters import attach, check_adapter_dir
from iaforge.core.chat import encode_example
from iaforge.core.errors import IaforgeError
from iaforge.core.fsio import atomic_dir, write_json
from iaforge.core.training import IGNORE, Loss, TrainConfig, make_accelerator, make_batches, train_loop


@dataclass
class PairExample:
    index: int
    group: str
    prompt: list[int]
    chosen: list[int]  # completion ids (after the prompt), truncated to fit max_len
    rejected: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))


def load_ia_stack(base_dir: str | Path, variant_dirs: dict[str, Path], ia_dir: str | Path, *, trainable: bool):
    """Base + every variant (frozen) + the IA from `ia_dir` under the name `ia`; adapters are checked as
    hostile input (adapters.check_adapter_dir) before peft reads them."""
    if not trainable:
        model, tok = load_with_variants(base_dir, variant_dirs)
        return attach(model, ia_dir, IA_NAME), tok
    from peft import PeftModel

    check_adapter_dir(ia_dir)
    model, tok = load_with_variants(base_dir, variant_dirs)
    if isinstance(model, PeftModel):
        model.load_adapter(str(ia_dir), adapter_name=IA_NAME, is_trainable=True)
    else:
        model = PeftModel.from_pretrained(model, str(ia_dir), adapter_name=IA_NAME, is_trainable=True)
    return model, tok


def encode_pairs(tok, pairs: Sequence[dict[str, Any]], *, system: str | None, max_len: int) -> tuple[list[PairExample], int]:
    """Tokenize pairs (chat template, shared prompt). Returns (examples, number skipped): a pair is skipped when
    the prompt alone fills max_len or truncation leaves chosen and rejected identical."""
    out, skipped = [], 0
    for i, p in enumerate(pairs):
        p_ids, c_ids = encode_example(tok, p["user"], p["chosen"], system)
        p2_ids, r_ids = encode_example(tok, p["user"], p["rejected"], system)
        if p_ids != p2_ids:  # pragma: no cover - the prompt render does not depend on the answer
            raise ValueError("chat template renders the prompt differently for chosen and rejected")
        room = max_len - len(p_ids)
        c, r = c_ids[:room], r_ids[:room]
        if room <= 0 or c == r:
            skipped += 1
            continue
        out.append(PairExample(i, p["group"], p_ids, c, r))
    return out, skipped


def collate_pairs(batch: Sequence[PairExample], pad_id: int):
    """2B right-padded sequences: the chosen responses, then the rejected ones (TRL's layout)."""
    import torch

    seqs = [(e.prompt, e.chosen) for e in batch] + [(e.prompt, e.rejected) for e in batch]
    width = max(len(p) + len(c) for p, c in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, c) in enumerate(seqs):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        labels[i, len(p):n] = torch.tensor(c)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sequence_logps(model, data) -> "torch.Tensor":
    """Sum of log p(token) over the labelled (response) tokens of each sequence, in float32."""
    import torch.nn.functional as F

    logits = model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits[:, :-1].float()
    labels = data["labels"][:, 1:]
    tok_logps = -F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    return tok_logps.sum(dim=1)  # ignored positions contribute 0


def dpo_sigmoid_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta: float):
    """Per-pair DPO loss and the preference margin delta = (pi_c - ref_c) - (pi_r - ref_r) (nats).

    Same formula as TRL's DPOTrainer with loss_type="sigmoid" (reverse KL, no label smoothing):
    -logsigmoid(beta * delta); see tests/test_dpo.py for the check against TRL's own code.
    """
    import torch.nn.functional as F

    delta = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)
    return -F.logsigmoid(beta * delta), delta


def make_pair_batches(examples: list[PairExample], batch_size: int, rng: random.Random) -> list[list[PairExample]]:
    """One group per batch (one variant active), length-sorted within the group, batches shuffled."""
    return make_batches(examples, batch_size, rng, length=lambda e: e.length)


def score_pairs(model, examples: list[PairExample], switch: AdapterSwitch, *, batch_size: int, pad_id: int, acc):
    """Summed response log-probs (chosen, rejected) of every example under the model as it is now, each pair
    with its own variant active. Returns two float32 CPU tensors in `examples` order."""
    import torch

    chosen = torch.zeros(len(examples))
    rejected = torch.zeros(len(examples))
    pos = {id(e): i for i, e in enumerate(examples)}
    was_training = model.training
    model.eval()
    try:
        for batch in make_pair_batches(examples, batch_size, random.Random(0)):
            switch(batch[0].group)
            data = {k: v.to(acc.device) for k, v in collate_pairs(batch, pad_id).items()}
            with torch.no_grad(), acc.autocast():
                logps = sequence_logps(model, data).cpu()
            for j, e in enumerate(batch):
                chosen[pos[id(e)]] = logps[j]
                rejected[pos[id(e)]] = logps[len(batch) + j]
    finally:
        model.train(was_training)
    return chosen, rejected


class DPOLoss(Loss):
    """The sigmoid DPO loss of a batch of pairs against an explicit reference, plus the step's preference
    margin and reward accuracy.

    The reference is the policy as it stands when training starts (the SFT IA), scored in `setup` with each
    pair's own variant active. It is owned here rather than obtained by disabling the adapter: disabling would
    drop the variant too (the wrong model), and a PeftModel with two active adapters and no reference model
    silently trains nothing in TRL (docs/pitfalls).
    """

    postfix = ("margin",)

    def __init__(self, examples: list[PairExample], switch: AdapterSwitch, *, beta: float, pad_id: int, batch_size: int):
        self.examples, self.switch, self.beta = examples, switch, beta
        self.pad_id, self.batch_size = pad_id, batch_size
        self.pos = {id(e): i for i, e in enumerate(examples)}
        self.ref_c = self.ref_r = None

    def collate(self, shard):
        return collate_pairs(shard, self.pad_id)

    def setup(self, model, acc) -> None:
        # Scored once before any update, so the starting margin is 0 exactly.
        self.ref_c, self.ref_r = score_pairs(model, self.examples, self.switch, batch_size=self.batch_size,
                                             pad_id=self.pad_id, acc=acc)

    def __call__(self, model, data, shard, acc):
        import torch

        idx = torch.tensor([self.pos[id(e)] for e in shard])
        with acc.autocast():
            logps = sequence_logps(model, data)
        n = len(shard)
        losses, delta = dpo_sigmoid_loss(logps[:n], logps[n:], self.ref_c[idx].to(logps.device),
                                         self.ref_r[idx].to(logps.device), self.beta)
        d = delta.detach().float().cpu()
        return losses.mean(), {"margin": float(d.mean()), "reward_accuracy": float((d > 0).float().mean())}


def _mean(t) -> float:
    return round(float(t.float().mean()), 5) if len(t) else 0.0


def train_dpo(base_dir: str | Path, sft_dir: str | Path, variant_dirs: dict[str, Path], pairs: Sequence[dict[str, Any]],
              *, beta: float, train_params: dict, system: str | None, seed: int, out_dir: str | Path,
              progress: bool = True, accelerator=None) -> dict[str, Any]:
    """Train the IA (initialised from `sft_dir`) with DPO on `pairs`; write it to `out_dir` (main process).

    Returns a summary: margins and reward accuracies before/after, policy log-prob margins, steps, and
    params_changed (max abs change of the IA's tensors).
    """
    import torch
    from accelerate import PartialState

    torch.manual_seed(seed)
    if not pairs:
        raise IaforgeError("no preference pairs: nothing to train the IA on with DPO")
    unknown = sorted({p["group"] for p in pairs} - set(variant_dirs) - {BASE_GROUP})
    if unknown:
        raise IaforgeError(f"preference pairs name variants that are not loaded: {', '.join(unknown[:5])}")
    cfg = TrainConfig.from_params(train_params, seed=seed, progress=progress, desc="IA (DPO)")
    model, tok = load_ia_stack(base_dir, variant_dirs, sft_dir, trainable=True)
    switch = AdapterSwitch(model)
    if not switch.expected:
        raise RuntimeError("the IA adapter has no parameters")
    examples, skipped = encode_pairs(tok, pairs, system=system, max_len=cfg.max_len)
    if not examples:
        raise IaforgeError(f"all {len(pairs)} preference pairs were cut to nothing by max_len={cfg.max_len}")
    switch(examples[0].group)
    acc = accelerator or make_accelerator(cfg)
    ia_before = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if is_ia_param(n)}
    frozen_before = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if not is_ia_param(n)}
    loss = DPOLoss(examples, switch, beta=beta, pad_id=tok.pad_token_id, batch_size=cfg.batch_size)
    result = train_loop(model, lambda rng: make_pair_batches(examples, cfg.batch_size, rng), cfg, loss_fn=loss,
                        before_batch=lambda batch: switch(batch[0].group), accelerator=acc)
    inner = model  # a DDP wrapper holds this same module: it is trained in place
    ref_c, ref_r = loss.ref_c, loss.ref_r
    curve = [{"step": i + 1, "loss": round(l, 5), "margin": round(m["margin"], 5),
              "reward_accuracy": round(m["reward_accuracy"], 4)} for i, (l, m) in enumerate(zip(result.losses, result.metrics))]

    changed = [n for n, p in inner.named_parameters() if not is_ia_param(n) and not torch.equal(p.detach().cpu(), frozen_before[n])]
    if changed:
        raise RuntimeError(f"DPO modified frozen weights, e.g. {changed[0]}")
    ia_change = max(float((p.detach().cpu() - ia_before[n]).abs().max()) for n, p in inner.named_parameters() if is_ia_param(n))
    if not ia_change > 0:
        raise RuntimeError("DPO left the IA unchanged (no gradient reached the IA's tensors)")
    del frozen_before, ia_before

    pol_c, pol_r = score_pairs(inner, examples, switch, batch_size=cfg.batch_size, pad_id=tok.pad_token_id, acc=acc)
    delta_after = (pol_c - ref_c) - (pol_r - ref_r)
    if not float(delta_after.float().mean()) > 0:
        # The margin starts at 0 by construction; if it did not rise, DPO learned nothing usable.
        raise RuntimeError(f"DPO did not raise the preference margin on its training pairs "
                           f"(mean {float(delta_after.float().mean()):+.4f}); check ia_dpo.train.lr and beta")
    state = PartialState()
    summary = {
        "n_pairs": len(pairs), "n_pairs_used": len(examples), "n_pairs_skipped": skipped,
        "groups": sorted({e.group for e in examples}), "beta": beta, "steps": result.steps, "epochs": cfg.epochs,
        "tokens": result.tokens, "num_processes": state.num_processes, "init": "sft",
        # The reference is the starting policy, so the margin and reward accuracy before training are 0 by
        # construction; the raw policy log-prob margin (chosen - rejected) is the before/after comparison.
        "margin_before": 0.0, "margin_after": _mean(delta_after),
        "reward_accuracy_before": 0.0, "reward_accuracy_after": _mean((delta_after > 0).float()),
        "logp_margin_before": _mean(ref_c - ref_r), "logp_margin_after": _mean(pol_c - pol_r),
        "logp_accuracy_before": _mean((ref_c > ref_r).float()), "logp_accuracy_after": _mean((pol_c > pol_r).float()),
        "params_changed": ia_change > 0, "max_param_change": float(f"{ia_change:.6g}"),
        "final_loss": round(sum(c["loss"] for c in curve[-5:]) / max(1, len(curve[-5:])), 5),
    }
    if state.is_main_process:  # under `accelerate launch` one process writes, the others wait
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            save_adapter(inner, tmp, IA_NAME)
            write_json(tmp / "ia.json", summary)
            write_json(tmp / "training_curve.json", curve)
    state.wait_for_everyone()
    summary["tokens_per_s"] = round(result.tokens_per_s, 1)
    summary["is_main_process"] = state.is_main_process
    return summary


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's row in `dvc metrics show`: every stage's headline uses one shared set of short columns
    (n, pass_rate, no_ia, prefill, sft, dpo, trained_sft, fp_base_sft, fp_base_dpo, final_loss, attack_holds, accuracy,
    recall), so the whole table fits a terminal. n: preference pairs used. The full result stays in reports/detail/ia_dpo.json."""
    return {"n": summary.get("n_pairs_used", 0), "final_loss": summary.get("final_loss")}
