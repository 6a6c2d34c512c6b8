"""The IA trained over a LoRA bank of frozen variants: every row of a batch goes through its own variant.

peft applies one set of active adapters to a whole forward, so the peft trainer (ia/grid_sft.py, `trainer: peft`)
trains on one variant per batch, which under the grid's fixed question is a batch of one row, and attaches each
variant through peft's module walk (about 2 s a variant, growing with the count). Here the variants are a bank
(core/lora_bank.py: read from safetensors, checked as hostile input, no peft), each row routed to its variant's
slot, and the IA is one more bank with a single slot whose factors are the trained parameters. A batch then mixes
variants, as Diff Interpretation Tuning trains 16 diffs at a time.

The math is peft's: row i computes base(x) + B_v A_v x (its variant, scaling folded in) + s B A x (the IA, s =
alpha / r); tests compare the loss and the IA's gradients with peft row by row. The IA is saved in peft's layout
(`PeftModel.from_pretrained` and vLLM load it), and its initialisation is peft's (A Kaiming-uniform, B zero).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from iaforge.core.lora_bank import BankedLinear, bank_rows, banked_modules, load_banks
from iaforge.core.training import CausalLMLoss

VARIANTS = "variants"
IA_BANK = "ia"


class TrainableIA(nn.Module):
    """The IA's LoRA factors for every layer its config targets, installed into the model's banks as bank `ia`.

    Registered on the model (attribute `iaforge_ia`), so the training loop finds its parameters as the model's only
    trainable ones. `install()` runs before every forward: the bank holds views of the parameters (with the scaling
    applied), and a view made once would tie every step to the first step's autograd graph.
    """

    def __init__(self, model, config):
        super().__init__()
        from peft.tuners.tuners_utils import check_target_module_exists

        self.config = config
        self.scaling = config.lora_alpha / (math.sqrt(config.r) if config.use_rslora else config.r)
        names = []
        for name, mod in model.named_modules():
            lin = mod.base if isinstance(mod, BankedLinear) else mod
            if isinstance(lin, nn.Linear) and not isinstance(mod, BankedLinear) and name.endswith(".base"):
                continue  # the linear inside a BankedLinear: its wrapper carries the name peft uses
            if isinstance(lin, nn.Linear) and check_target_module_exists(config, name):
                names.append(name)
        if not names:
            raise ValueError(f"the IA's target_modules {sorted(config.target_modules)} match no linear layer")
        self.names = names
        self.A, self.B = nn.ParameterList(), nn.ParameterList()
        for name in names:
            lin = model.get_submodule(name)
            lin = lin.base if isinstance(lin, BankedLinear) else lin
            w = lin.weight
            a = torch.empty(config.r, lin.in_features, dtype=torch.float32, device=w.device)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # peft's init_lora_weights=True
            self.A.append(nn.Parameter(a))
            self.B.append(nn.Parameter(torch.zeros(lin.out_features, config.r, dtype=torch.float32, device=w.device)))
        for name in names:  # every targeted linear becomes banked, whether or not a variant adapts it
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            if not isinstance(getattr(parent, child), BankedLinear):
                setattr(parent, child, BankedLinear(getattr(parent, child)))
        self.mods = [model.get_submodule(n) for n in names]

    def install(self) -> None:
        for mod, a, b in zip(self.mods, self.A, self.B):
            mod.A[IA_BANK] = a.unsqueeze(0)
            mod.B[IA_BANK] = (b * self.scaling).unsqueeze(0)

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        """peft's saved keys (no adapter name), raw factors."""
        out = {}
        for name, a, b in zip(self.names, self.A, self.B):
            out[f"base_model.model.{name}.lora_A.weight"] = a.detach().contiguous().clone()
            out[f"base_model.model.{name}.lora_B.weight"] = b.detach().contiguous().clone()
        return out

    def save(self, dest: str | Path, base_model_name_or_path: str | None = None) -> None:
        """A flat peft adapter folder (adapter_config.json + adapter_model.safetensors), as save_adapter writes."""
        import copy

        from safetensors.torch import save_file

        from iaforge.core.adapter_stack import _sort_config_sets

        dest = Path(dest)
        cfg = copy.deepcopy(self.config)
        cfg.inference_mode = True
        cfg.base_model_name_or_path = base_model_name_or_path
        cfg.save_pretrained(str(dest))
        save_file(self.peft_state_dict(), str(dest / "adapter_model.safetensors"), metadata={"format": "pt"})
        _sort_config_sets(dest)


def attach_banked_ia(model, variant_dirs: dict[str, Path], config) -> tuple[TrainableIA, dict[str, int]]:
    """Freeze `model` (a plain transformers model), bank the variants (slot = sorted id order) and add a trainable
    IA. Returns the IA and variant id -> slot."""
    ids = sorted(variant_dirs)
    if ids:
        load_banks(model, {VARIANTS: [variant_dirs[i] for i in ids]})
    else:
        for p in model.parameters():
            p.requires_grad_(False)
    ia = TrainableIA(model, config)
    model.iaforge_ia = ia  # registered: the IA's factors are the model's only trainable parameters
    return ia, {vid: k for k, vid in enumerate(ids)}


class BankedCausalLMLoss(CausalLMLoss):
    """SFT loss with each row of the batch routed through its group's variant slot and the IA (a group with no slot,
    the base model, gets the IA alone)."""

    def __init__(self, pad_id: int, ia: TrainableIA, slots: dict[str, int]):
        super().__init__(pad_id)
        self.ia, self.slots = ia, slots

    def __call__(self, model, data, shard, acc):
        self.ia.install()
        routes = {IA_BANK: [0] * len(shard)}
        if any(VARIANTS in m.A for m in banked_modules(model).values()):
            routes[VARIANTS] = [self.slots.get(e.group, -1) for e in shard]
        with bank_rows(model, routes, per_row=(VARIANTS,)):  # a batch's rows come from many variants
            return super().__call__(model, data, shard, acc)


def mixed_batches(examples: Sequence, batch_size: int, epochs: int, rng: random.Random,
                  max_steps: int | None = None) -> list[list]:
    """Every epoch the rows shuffled and cut into batches of `batch_size`, rows of different variants together,
    cut at `max_steps`. No length sorting: the grid's rows are one question and a short target."""
    plan: list[list] = []
    for _ in range(epochs):
        items = list(examples)
        rng.shuffle(items)
        plan += [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
        if max_steps is not None and len(plan) >= max_steps:
            break
    return plan[:max_steps] if max_steps is not None else plan


def train_grid_ia_banked(base_dir: str | Path, variant_dirs: dict[str, Path], rows: list[dict[str, Any]], *,
                         lora: dict, train_params: dict, max_steps: int | None, system: str | None, seed: int,
                         out_dir: str | Path, progress: bool = True,
                         lens_reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """ia/grid_sft.py's `train_grid_ia` over a LoRA bank: the same rows, config and outputs, batches mixing variants."""
    import torch

    from iaforge.core.base_model import load_base
    from iaforge.core.training import TrainConfig, encode_rows, lora_config, train_loop
    from iaforge.ia.grid_sft import write_ia

    torch.manual_seed(seed)
    model, tok = load_base(base_dir)
    ia, slots = attach_banked_ia(model, {k: Path(v) for k, v in variant_dirs.items()}, lora_config(lora))
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("iaforge_ia.")}
    cfg = TrainConfig.from_params(train_params, "grid_ia.train", seed=seed, progress=progress, desc="grid IA (bank)")
    examples = encode_rows(tok, rows, system=system, max_len=cfg.max_len, group_key="group")
    planned = cfg.epochs * -(-len(examples) // cfg.batch_size)
    plan = mixed_batches(examples, cfg.batch_size, cfg.epochs, random.Random(cfg.seed), max_steps)
    result = train_loop(model, plan, cfg, loss_fn=BankedCausalLMLoss(tok.pad_token_id, ia, slots))
    changed = [n for n, p in model.named_parameters() if n in frozen_before and not torch.equal(p, frozen_before[n])]
    if changed:
        raise RuntimeError(f"grid IA training modified frozen weights, e.g. {changed[0]}")
    groups = sorted({e.group for e in examples})
    summary = {"grid": True, "trainer": "bank", "variants": sorted(variant_dirs), "groups": len(groups),
               "n_examples": len(examples), "steps": result.steps, "planned_steps": planned, "epochs": cfg.epochs,
               "max_steps": max_steps, "rows_per_step": round(sum(len(b) for b in plan) / len(plan), 3),
               "tokens": result.tokens,
               "final_loss": round(sum(result.losses[-5:]) / max(1, len(result.losses[-5:])), 5)}
    return write_ia(out_dir, summary, result, lambda tmp: ia.save(tmp, getattr(model.config, "_name_or_path", None)),
                    lens_reference=lens_reference)
