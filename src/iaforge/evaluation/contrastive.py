"""Contrastive sampling of self-reports: the model under audit (variant + IA) against a reference (base model + the
same IA), token by token.

Why: the grid IA ranks a held-out variant's own topic first among unseen topics far more often than it names it
when sampled (grid_rank.py), because its prior over its training topics, the same on every model, takes most of
the probability. That prior is what the IA says on the base model, so each step samples from

    softmax((log p_audited - alpha * log p_reference) / temperature)

over the plausible tokens {x: p_audited(x) >= beta * max p_audited} (contrastive decoding, Li et al. 2023: the
plausibility cut keeps the contrast from promoting tokens the audited model itself finds absurd). alpha 0 is plain
sampling. On the reference model itself the contrast is (1 - alpha) log p: flat over the plausible set at
alpha 1, so false positives on the base model must be measured, not assumed.
"""

from __future__ import annotations

from typing import Sequence

# "<condition>_contrast": sampled against the base model under <condition>
CONTRAST = "_contrast"


def base_condition(condition: str) -> str:
    return condition[:-len(CONTRAST)] if condition.endswith(CONTRAST) else condition


class AdapterPicker:
    """Switch which adapters are active on every LoRA layer of a peft model: `names_of(group, condition)` -> the
    adapter names (none: the base model). Contrastive sampling switches twice per token; peft's set_adapter also
    resets requires_grad over every adapter's weights, which with dozens of variants loaded made switching cost
    more than the forward passes. This sets only the active names (sampling needs no gradients: all frozen once).
    Called as a ConditionSwitch is: `with picker(group, condition): ...`."""

    def __init__(self, model, names_of):
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        self.names_of = names_of
        for p in model.parameters():
            p.requires_grad_(False)

    @classmethod
    def for_conditions(cls, model):
        """The grid's groups and conditions, as evaluate.ConditionSwitch reads them: a variant id (None or the base
        group: none) plus the IA of an IA condition."""
        from iaforge.core.adapter_stack import BASE_GROUP
        from iaforge.evaluation.evaluate import IA_ADAPTERS

        return cls(model, lambda g, c: ([] if g in (None, BASE_GROUP) else [g])
                   + ([IA_ADAPTERS[c]] if c in IA_ADAPTERS else []))

    def __call__(self, group, condition):
        import contextlib

        names = list(self.names_of(group, condition))
        for m in self.layers:
            m._active_adapter = names if names else m._active_adapter
            m._disable_adapters = not names
        return contextlib.nullcontext()


def contrast_logits(logp_audited, logp_reference, alpha: float, beta: float):
    """The step's sampling logits (float tensors [batch, vocab]); implausible tokens get -inf."""
    import math

    import torch

    keep = logp_audited >= logp_audited.max(dim=-1, keepdim=True).values + math.log(beta)
    score = logp_audited - alpha * logp_reference
    return torch.where(keep, score, torch.full_like(score, float("-inf")))


def end_token_ids(tok) -> set[int]:
    ids = {tok.eos_token_id}
    if "<|im_end|>" in tok.get_vocab():
        ids.add(tok.convert_tokens_to_ids("<|im_end|>"))
    return {i for i in ids if i is not None}


def contrastive_sample(model, tok, switch, audited: tuple[str | None, str], reference: tuple[str | None, str],
                       user: str, *, system: str | None, n: int, alpha: float, beta: float = 0.1,
                       temperature: float = 1.0, max_new_tokens: int = 24, seed: int = 0) -> list[str]:
    """n answers to `user`, sampled contrastively; `audited`/`reference`: (group, condition) for `switch` (an
    AdapterPicker, or an evaluate.ConditionSwitch, over one model that holds the variants and the IA). One KV cache
    per side."""
    import torch

    from iaforge.core.chat import render_prompt

    prompt = tok(render_prompt(tok, user, system), return_tensors="pt", add_special_tokens=False).input_ids
    ids = prompt.repeat(n, 1)
    gen = torch.Generator().manual_seed(seed)
    ends = torch.tensor(sorted(end_token_ids(tok)))
    caches, logps = {}, {}
    with torch.no_grad():
        for side, (group, cond) in (("a", audited), ("r", reference)):
            with switch(group, cond):
                out = model(input_ids=ids, use_cache=True)
            caches[side], logps[side] = out.past_key_values, torch.log_softmax(out.logits[:, -1].float(), -1)
        done = torch.zeros(n, dtype=torch.bool)
        new: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            logits = contrast_logits(logps["a"], logps["r"], alpha, beta) / max(temperature, 1e-6)
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
            nxt = torch.where(done, ends[0].expand_as(nxt), nxt)
            new.append(nxt)
            done |= torch.isin(nxt, ends)
            if bool(done.all()):
                break
            for side, (group, cond) in (("a", audited), ("r", reference)):
                with switch(group, cond):
                    out = model(input_ids=nxt[:, None], past_key_values=caches[side], use_cache=True)
                caches[side], logps[side] = out.past_key_values, torch.log_softmax(out.logits[:, -1].float(), -1)
    toks = torch.stack(new, 1).tolist()
    end_set = set(ends.tolist())
    answers = []
    for row in toks:
        cut = next((i for i, t in enumerate(row) if t in end_set), len(row))
        answers.append(tok.decode(row[:cut], skip_special_tokens=True).strip())
    return answers


def sample_groups(model, tok, switch, groups: Sequence[str | None], user: str, *, condition: str = "sft",
                  system: str | None, n: int, alpha: float, beta: float = 0.1, temperature: float = 1.0,
                  max_new_tokens: int = 24, seed: int = 0) -> dict[str | None, list[str]]:
    """group -> n contrastive answers (each group against the base model under the same condition)."""
    return {g: contrastive_sample(model, tok, switch, (g, condition), (None, condition), user, system=system, n=n,
                                  alpha=alpha, beta=beta, temperature=temperature, max_new_tokens=max_new_tokens,
                                  seed=seed)
            for g in groups}
