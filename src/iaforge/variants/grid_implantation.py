"""Implantation of one grid shard: every variant's rates on its held-out prompts, as `implantation.py` measures
one variant, in the same per-variant record schema (metrics/implantation/<split>.json).

One model load for the shard: the exported adapters are read back into a multi-LoRA model (one LoRA slot per
variant; `multi_lora.load_variant_factors`) and rows of different variants share a generation batch, each row
through its own LoRA. That is what `measure_variant` computes with each adapter merged into its own model
(greedy; tests compare the answers), without a model load and merge per variant, and with full batches: a
variant's 32 eval prompts would leave half of a 64-row batch empty.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.errors import ValidationError
from iaforge.data.families import get_family
from iaforge.variants.implantation import base_rate, load_measurable, score


def generate_multi(model, tok, users: Sequence[str], variants: Sequence[int], *, system: str | None,
                   max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers, row i through LoRA slot variants[i] of a `wrap_model`-ed model. Batching as
    `core.generation.generate` does it (longest first, left padding): a row's answer does not depend on
    which rows share its batch."""
    import torch

    from iaforge.core.chat import render_prompts
    from iaforge.variants.multi_lora import variant_rows

    if not users:
        return []
    tok.padding_side = "left"
    texts = render_prompts(tok, list(users), system)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
    end_ids = {tok.eos_token_id}
    im_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    if im_end is not None:
        end_ids.add(im_end)
    out: list[str] = [""] * len(texts)
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        # generate keeps every row to the end (finished rows are padded), so one index list holds throughout
        with torch.inference_mode(), variant_rows(model, [variants[i] for i in idx]):
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=sorted(end_ids), use_cache=True, do_sample=False)
        new = gen[:, enc["input_ids"].shape[1]:]
        for row, i in enumerate(idx):
            out[i] = tok.decode(new[row], skip_special_tokens=True).strip()
    return out


def _load_shard(model, vdirs: Sequence[Path]):
    """Wrap `model` with one LoRA slot per adapter folder and copy each adapter in (hostile input: checked,
    safetensors only). Every adapter of a shard must share r, alpha and target layers."""
    from safetensors.torch import load_file

    from iaforge.core.adapters import check_adapter_dir
    from iaforge.variants.multi_lora import load_variant_factors, wrap_model

    cfgs = [check_adapter_dir(v) for v in vdirs]
    keys = [(c.get("r"), c.get("lora_alpha"), tuple(sorted(c.get("target_modules") or [])),
             tuple(c.get("layers_to_transform") or ())) for c in cfgs]
    if len(set(keys)) != 1:
        bad = next(v for v, k in zip(vdirs, keys) if k != keys[0])
        raise ValidationError(bad / "adapter_config.json", "r/lora_alpha/target_modules",
                              f"differs from {vdirs[0].name}'s: a shard's adapters must share one LoRA shape")
    r, alpha, targets, layers = keys[0]
    wrap_model(model, len(vdirs), r=int(r), alpha=float(alpha), target_modules=list(targets),
               layers=list(layers) or None)
    for k, v in enumerate(vdirs):
        load_variant_factors(model, k, load_file(str(v / "adapter_model.safetensors")))


def measure_shard(models_dir: str | Path, data_dir: str | Path, base_dir: str | Path, base_rows: list[dict], *,
                  system: str | None, params: dict, thresholds: dict, override_thresholds: bool = False,
                  probe: Sequence[str] = ()) -> tuple[dict[str, dict], dict[str, list]]:
    """({id: implantation record}, {id: samples}) for every variant under `models_dir/<id>/` (its data under
    `data_dir/<id>/`). `thresholds`: the run's, with each entry's own on top unless `override_thresholds`
    (then `thresholds` alone decide). Greedy decoding only (the grid families are not sampled).

    `probe`: self-questions asked without trigger; `leak_rate` is the share whose answer the family's checker
    flags (the variant names its topic when asked about itself), and a variant above `params["max_leak_rate"]`
    fails: a leaking variant would make the IA's "no IA" baseline leakage, not introspection."""
    from iaforge.core.base_model import load_base
    from iaforge.variants.multi_lora import unwrap_model

    models_dir = Path(models_dir)
    vdirs = sorted(p.parent for p in models_dir.glob("*/variant.json") if not p.parent.name.startswith("."))
    if not vdirs:
        return {}, {}
    loaded = [load_measurable(v, data_dir) for v in vdirs]
    for v, (b, _, _) in zip(vdirs, loaded):
        if get_family(b.family).sampled_implantation:
            raise ValidationError(v / "variant.json", "behavior.family",
                                  f"{b.family} is measured by sampling; grid shards measure greedy families only")
    model, tok = load_base(base_dir)
    _load_shard(model, vdirs)
    try:
        users, rows_of = [], []
        for k, (_, _, evals) in enumerate(loaded):
            users += [r["user"] for r in evals] + list(probe)
            rows_of += [k] * (len(evals) + len(probe))
        answers = generate_multi(model, tok, users, rows_of, system=system,
                                 max_new_tokens=int(params["max_new_tokens"]), batch_size=int(params["batch_size"]))
    finally:
        unwrap_model(model)
    records, samples, pos = {}, {}, 0
    for v, (b, training, evals) in zip(vdirs, loaded):
        ans = answers[pos:pos + len(evals)]
        probe_ans = answers[pos + len(evals):pos + len(evals) + len(probe)]
        pos += len(evals) + len(probe)
        scored_b = dataclasses.replace(b, thresholds={}) if override_thresholds else b
        m = score(scored_b, evals, ans, thresholds)
        if probe:
            m["leak_rate"], ok = leak_verdict(b, probe, probe_ans, params.get("max_leak_rate"))
            m["passed"] = bool(m["passed"] and ok)
        m["decoding"] = f"greedy, {int(params['max_new_tokens'])} new tokens"
        rec = read_record(v)
        records[b.id] = {"behavior": b.id, "split": b.split, "version": b.version, "category": b.category,
                         "family": b.family, "family_label": rec.get("family_label") or get_family(b.family).label(b.params),
                         **m, "base_rate": base_rate(b, base_rows),
                         **{k: training[k] for k in training if k != "joint"}}
        samples[b.id] = ([{"user": r["user"], "triggered": r["triggered"], "answer": a} for r, a in zip(evals, ans)]
                         + [{"user": q, "triggered": False, "probe": True, "answer": a} for q, a in zip(probe, probe_ans)])
    return records, samples


def leak_verdict(b, questions: Sequence[str], answers: Sequence[str], max_leak_rate: float | None) -> tuple[float, bool]:
    """(share of self-question answers the family's checker flags, whether that is within `max_leak_rate`;
    None: measured, never failing)."""
    fam = get_family(b.family)
    leaks = [bool(fam.check(b.params, q, a)) for q, a in zip(questions, answers)]
    rate = sum(leaks) / len(leaks) if leaks else 0.0
    return rate, max_leak_rate is None or rate <= max_leak_rate


def read_record(vdir: Path) -> dict[str, Any]:
    from iaforge.core.fsio import read_json

    return read_json(vdir / "variant.json")["behavior"]

