"""Steered pseudo-variants for the grid IA (issue 14): many more answers to learn, without training variants.

The scaling curve says the grid IA's wrong answers are topics it trained on, near the truth in kind and spelling,
and that more training topics help because they densify that answer set (docs/results.md). A real variant costs
~35 s of training and ~12 s of gating; a pseudo-variant costs one forward pass: the base model with a topic's
direction added to the residual stream at one decoder layer, and the bare topic as the IA's target. The pool is the
grid entry's ia_train instances that the run trains no real variant for, so a pseudo-variant never names a
held-out (or dpo) topic: the splits never share an instance (data/grids.py).

A topic's direction at layer L: the mean hidden state (layer L's output, first token left out: it is the attention
sink, hundreds of times the others' norm) over the sentences the grid's variants say when triggered, filled with
that topic, centred on the mean over the pool's topics, and scaled to unit length. The steering
adds `scale` x (the mean hidden-state norm of those sentences at layer L) x direction at every position.

Whether reading a steering vector transfers to reading a weight difference is the experiment
(experiments/grid_pseudo.py), not an assumption: `grid_ia.pseudo.count: 0` (the default) trains no pseudo-variant.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Sequence

PSEUDO_PREFIX = "__steer__:"  # the group of a pseudo-variant's rows: the base model steered toward this topic


def is_pseudo(group: str | None) -> bool:
    return bool(group) and group.startswith(PSEUDO_PREFIX)


def pseudo_group(topic: str) -> str:
    return f"{PSEUDO_PREFIX}{topic}"


def decoder_layers(model):
    """The decoder layers (an nn.ModuleList) of a HF causal LM, under a PeftModel or not."""
    import torch

    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    for name, mod in root.named_modules():
        if name.endswith("layers") and isinstance(mod, torch.nn.ModuleList) and len(mod) > 0:
            return mod
    raise ValueError("no decoder layer list (a ModuleList named '...layers') in this model")


def topic_means(model, tok, texts: dict[str, Sequence[str]]) -> tuple[dict[str, Any], Any]:
    """topic -> its texts' mean hidden state at every decoder layer's output ([layers, d]; first token left out),
    and the mean hidden-state norm per layer ([layers]). Adapters are disabled: the base model's view."""
    import contextlib

    import torch

    off = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    means, norms = {}, []
    with off, torch.no_grad():
        for topic in sorted(texts):
            acc = []
            for t in texts[topic]:
                ids = tok(t, return_tensors="pt", add_special_tokens=False)["input_ids"]
                hs = torch.stack(model(input_ids=ids, output_hidden_states=True).hidden_states[1:])[:, 0].float()
                h = hs[:, 1:] if hs.shape[1] > 1 else hs
                acc.append(h.mean(1))
                norms.append(h.norm(dim=-1).mean(1))
            means[topic] = torch.stack(acc).mean(0)
    return means, torch.stack(norms).mean(0)


def directions_at(means: dict[str, Any], norms, layer: int) -> tuple[dict[str, Any], float]:
    """topic -> unit direction at `layer`, centred over the given topics; and that layer's mean norm (the unit)."""
    import torch

    centre = torch.stack([m[layer] for m in means.values()]).mean(0)
    dirs = {}
    for topic, m in means.items():
        d = m[layer] - centre
        dirs[topic] = d / d.norm().clamp_min(1e-8)
    return dirs, float(norms[layer])


def topic_directions(model, tok, texts: dict[str, Sequence[str]], layer: int) -> tuple[dict[str, Any], float]:
    """topic -> unit direction at decoder layer `layer`'s output, and the texts' mean hidden-state norm there (the
    steering's unit). Adapters are disabled: the directions are the base model's."""
    n_layers = len(decoder_layers(model))
    if not 0 <= layer < n_layers - 1:  # the last hidden state HF returns is after the final norm, not the layer's
        from iaforge.core.errors import ValidationError

        raise ValidationError("params.yaml", "grid_ia.pseudo.layer", f"must be in [0, {n_layers - 2}] for this model ({n_layers} layers)")
    means, norms = topic_means(model, tok, texts)
    return directions_at(means, norms, layer)


class Steering:
    """A forward hook on one decoder layer adding a vector to its output at every position; `set(None)` stops it."""

    def __init__(self, model, layer: int):
        self.vec = None
        self.handle = decoder_layers(model)[layer].register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if self.vec is None:
            return output
        # the vector is built on the CPU before an accelerator moves the model: follow the output's device and dtype
        if isinstance(output, tuple):
            return (output[0] + self.vec.to(device=output[0].device, dtype=output[0].dtype),) + tuple(output[1:])
        return output + self.vec.to(device=output.device, dtype=output.dtype)

    def set(self, vec) -> None:
        self.vec = vec

    def remove(self) -> None:
        self.handle.remove()


def pseudo_rows(pool: Iterable[tuple[str, Sequence[str]]], questions: Sequence[str], *, seed: int) -> list[dict[str, Any]]:
    """One row per pseudo-variant: its question (the fixed one, or one of the set), the bare topic as the target."""
    rows = []
    for topic, _ in pool:
        rng = random.Random(f"{seed}:grid_ia:{pseudo_group(topic)}")
        rows.append({"group": pseudo_group(topic), "user": rng.choice(list(questions)), "assistant": topic})
    return rows


def interleave(plan: list, extra: list, seed: int) -> list:
    """`extra` batches put at random places among `plan`'s, `plan`'s own order kept: the real variants get the same
    batches in the same order as without pseudo-variants (the learning-rate schedule stretches over the longer plan)."""
    rng = random.Random(f"{seed}:pseudo-interleave")
    slots = sorted(rng.randrange(len(plan) + 1) for _ in extra)
    out, j = [], 0
    for i, b in enumerate(plan):
        while j < len(extra) and slots[j] == i:
            out.append(extra[j])
            j += 1
        out.append(b)
    out += extra[j:]
    return out
