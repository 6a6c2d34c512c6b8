"""The grid IA (issue 14 item 4): one LoRA trained across many trigger-gated grid variants, as Diff
Interpretation Tuning starts: ONE fixed question, a short target naming the behavior.

Rows: every training variant gets `per_variant` rows of (question, its description or bare topic); null
variants and the base model itself get the null answer. Paraphrased questions (`questions: paraphrased`) cycle
through the question set's general training questions instead. Training is ia/sft.py's recipe (every variant
attached once as a named peft adapter, one variant per batch via AdapterSwitch, only the IA trainable) with a
step cap, so the budget is a param that a scaling sweep can hold fixed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.adapter_stack import BASE_GROUP, IA_NAME, AdapterSwitch, is_ia_param, load_with_variants, save_adapter
from iaforge.core.fsio import atomic_dir, write_json
from iaforge.core.training import CausalLMLoss, TrainConfig, encode_rows, lora_config, make_batches, train_loop
from iaforge.variants.grid_index import topic_of

NO_GRID = "no grid in this run (params grid_shards is empty)"


def target_for(behavior: dict[str, Any], *, target: str, null: bool, null_answer: str) -> str:
    if null:
        return null_answer
    if target == "topic":
        topic = topic_of(behavior)
        if not topic:
            from iaforge.core.config import ParamsError

            raise ParamsError("params.yaml", "grid_ia.target", f"'topic' needs a topic param; {behavior['id']} has none")
        return topic
    return behavior["description"]


def grid_ia_questions(p: dict[str, Any], question_set: str | Path) -> list[str]:
    """The training questions (params grid_ia): the one fixed question, or the set's general training ones."""
    if p["questions"] == "fixed":
        return [p["question"]]
    from iaforge.data.questions import load_questions

    return list(load_questions(question_set).general_train)


def grid_ia_rows(variants: dict[str, dict[str, Any]], questions: list[str], *, target: str, null_answer: str,
                 per_variant: int, base_examples: int, seed: int) -> list[dict[str, Any]]:
    """`variants`: id -> {"behavior", "null"}. Rows {"group", "user", "assistant"}, deterministic for a seed."""
    rows = []
    for vid in sorted(variants):
        v = variants[vid]
        answer = target_for(v["behavior"], target=target, null=v["null"], null_answer=null_answer)
        rng = random.Random(f"{seed}:grid_ia:{vid}")
        order = rng.sample(questions, k=len(questions))
        rows += [{"group": vid, "user": order[i % len(order)], "assistant": answer} for i in range(per_variant)]
    rng = random.Random(f"{seed}:grid_ia:{BASE_GROUP}")
    order = rng.sample(questions, k=len(questions))
    rows += [{"group": BASE_GROUP, "user": order[i % len(order)], "assistant": null_answer} for i in range(base_examples)]
    return rows


def train_grid_ia(base_dir: str | Path, variant_dirs: dict[str, Path], rows: list[dict[str, Any]], *, lora: dict,
                  train_params: dict, max_steps: int | None, system: str | None, seed: int, out_dir: str | Path,
                  progress: bool = True, pseudo: dict[str, Any] | None = None,
                  pseudo_texts: dict[str, list[str]] | None = None, pseudo_carriers: Sequence[str] = (),
                  lens_reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the IA on `rows` over the frozen variants, every variant a named peft adapter and one variant per
    batch; write it (flat PEFT dir + ia.json) to `out_dir`. ia/banked_ia.py trains the same IA over a LoRA bank.

    Rows of a pseudo-variant group (ia/pseudo_variants.py; `pseudo_texts`: topic -> its sentences, `pseudo`: the
    params grid_ia.pseudo) run on the base model steered toward their topic. They are interleaved with the real
    plan, which stays the plan without them (the same batches in the same order, `max_steps` cutting it alone).
    With `pseudo["carrier"] == "nulls"` the steered model is a null variant of `pseudo_carriers` (in turn over the
    sorted topics) instead of the base model; with a `lens_reference` too, each pseudo-variant's row gets the hint
    of its steered carrier against that reference (the real rows come hinted), as a new variant's would be made.

    `lens_reference` ({reference, k, question, system, groups}; variants/lens_hint.py): the rows carry lens hints,
    and the IA folder gets the reference its hints were made against, which asking a new variant needs."""
    import torch

    from iaforge.ia.pseudo_variants import PSEUDO_PREFIX, Steering, interleave, is_pseudo, pseudo_group, topic_directions
    from iaforge.variants.lens_hint import hinted_question

    torch.manual_seed(seed)
    model, tok = load_with_variants(base_dir, variant_dirs)
    vecs: dict[str, Any] = {}
    if pseudo_texts:
        dirs, unit = topic_directions(model, tok, pseudo_texts, int(pseudo["layer"]))
        vecs = {pseudo_group(t): d * (float(pseudo["scale"]) * unit) for t, d in dirs.items()}
    if any(is_pseudo(r["group"]) and r["group"] not in vecs for r in rows):
        raise ValueError("a pseudo-variant row has no steering direction (pass its topic in pseudo_texts)")
    carrier_of = pseudo_carrier_map(sorted(vecs), pseudo, pseudo_carriers, variant_dirs)
    model.add_adapter(IA_NAME, lora_config(lora))
    switch = AdapterSwitch(model)
    if not switch.expected:
        raise RuntimeError("the IA adapter has no parameters")
    steering = Steering(model, int(pseudo["layer"])) if vecs else None
    pseudo_hints: dict[str, list[str]] = {}
    if lens_reference is not None and any(is_pseudo(r["group"]) for r in rows):
        if not carrier_of:
            raise ValueError("lens hints for pseudo-variants need a null carrier (pseudo carrier: nulls): on the base "
                             "model their lens reads the recipe's traces")
        pseudo_hints = steered_hints(model, tok, switch, steering, vecs, carrier_of, lens_reference)
        rows = [dict(r, user=hinted_question(r["user"], pseudo_hints[r["group"]])) if is_pseudo(r["group"]) else r
                for r in rows]
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not is_ia_param(n)}
    cfg = TrainConfig.from_params(train_params, "grid_ia.train", seed=seed, progress=progress, desc="grid IA")
    examples = encode_rows(tok, rows, system=system, max_len=cfg.max_len, group_key="group")
    real = [e for e in examples if not is_pseudo(e.group)]
    steered = [e for e in examples if is_pseudo(e.group)]
    rng = random.Random(cfg.seed)
    # The same plan `train` would make (epochs of length-sorted, shuffled per-group batches), cut at max_steps.
    plan = [b for _ in range(cfg.epochs) for b in make_batches(real, cfg.batch_size, rng)]
    planned = len(plan)
    if max_steps is not None:
        plan = plan[:max_steps]
    real_steps = len(plan)
    if steered:
        prng = random.Random(f"{cfg.seed}:pseudo")
        extra = [b for _ in range(int(pseudo["epochs"])) for b in make_batches(steered, cfg.batch_size, prng)]
        plan = interleave(plan, extra, cfg.seed)

    def before(batch) -> None:
        group = batch[0].group
        if steering is not None:
            steering.set(vecs.get(group))
        switch(carrier_of.get(group, BASE_GROUP) if is_pseudo(group) else group)

    before(plan[0])
    try:
        result = train_loop(model, plan, cfg, loss_fn=CausalLMLoss(tok.pad_token_id), before_batch=before)
    finally:
        if steering is not None:
            steering.remove()
    changed = [n for n, p in model.named_parameters() if not is_ia_param(n) and not torch.equal(p, frozen_before[n])]
    if changed:
        raise RuntimeError(f"grid IA training modified frozen weights, e.g. {changed[0]}")
    groups = sorted({e.group for e in real})  # pseudo-variants are counted apart (summary['pseudo'])
    summary = {"grid": True, "variants": sorted(variant_dirs), "groups": len(groups), "n_examples": len(examples),
               "steps": result.steps, "planned_steps": planned, "epochs": cfg.epochs, "max_steps": max_steps,
               "tokens": result.tokens, "final_loss": round(sum(result.losses[-5:]) / max(1, len(result.losses[-5:])), 5)}
    if steered:
        summary["pseudo"] = {**{k: pseudo[k] for k in ("count", "layer", "scale", "epochs")},
                             "carrier": pseudo.get("carrier", "base"),
                             "topics": sorted(g[len(PSEUDO_PREFIX):] for g in vecs), "steps": len(plan) - real_steps,
                             "real_steps": real_steps,
                             **({"carriers": {g[len(PSEUDO_PREFIX):]: c for g, c in sorted(carrier_of.items())}}
                                if carrier_of else {}),
                             **({"hints": {g[len(PSEUDO_PREFIX):]: w for g, w in sorted(pseudo_hints.items())}}
                                if pseudo_hints else {})}
    return write_ia(out_dir, summary, result, lambda tmp: save_adapter(model, tmp, IA_NAME), lens_reference=lens_reference)


def pseudo_carrier_map(groups: Sequence[str], pseudo: dict[str, Any] | None, carriers: Sequence[str],
                       variant_dirs: dict[str, Path]) -> dict[str, str]:
    """pseudo group -> the null variant it is steered on (carrier nulls: the carriers in turn over the sorted groups);
    {} for carrier base. Every carrier must be one of the loaded variants."""
    if not groups or (pseudo or {}).get("carrier", "base") == "base":
        return {}
    carriers = sorted(carriers)
    if not carriers:
        raise ValueError("pseudo carrier nulls: no null variant to steer (grid.nulls.ia_train is 0)")
    unknown = [c for c in carriers if c not in variant_dirs]
    if unknown:
        raise ValueError(f"pseudo carrier {unknown[0]!r} is not among the IA's loaded variants")
    return {g: carriers[i % len(carriers)] for i, g in enumerate(sorted(groups))}


def steered_hints(model, tok, switch, steering, vecs: dict[str, Any], carrier_of: dict[str, str],
                  lens_reference: dict[str, Any]) -> dict[str, list[str]]:
    """Each pseudo-variant's lens hint: its carrier (without the IA) steered toward its topic, read on the lens's
    question against the reference the real variants' hints were made against."""
    from iaforge.variants.lens_hint import current_model_logprobs, hints_against

    lps = {}
    try:
        for group in sorted(vecs):
            switch(carrier_of[group], with_ia=False)
            steering.set(vecs[group])
            lps[group] = current_model_logprobs(model, tok, lens_reference["question"], lens_reference.get("system"))
    finally:
        steering.set(None)
    return hints_against(lps, lens_reference["reference"], int(lens_reference["k"]), tok)


def write_ia(out_dir, summary: dict[str, Any], result, save, lens_reference: dict[str, Any] | None = None) -> dict[str, Any]:
    if lens_reference is not None:
        summary["hint"] = {"k": lens_reference["k"], "reference_groups": len(lens_reference["groups"])}
    with atomic_dir(out_dir) as tmp:
        save(tmp)
        if lens_reference is not None:
            from iaforge.variants.lens_hint import save_reference

            save_reference(tmp, lens_reference["reference"], k=lens_reference["k"], question=lens_reference["question"],
                           system=lens_reference.get("system"), groups=lens_reference["groups"])
        write_json(tmp / "ia.json", summary)
        write_json(tmp / "training_curve.json", [{"step": i + 1, "loss": round(l, 5)} for i, l in enumerate(result.losses)])
    # Throughput goes to the log only: a timing in a DVC-tracked output would change its hash on every run.
    print(f"grid IA: {result.tokens_per_s:.0f} tokens/s, {result.seconds:.0f} s of training")
    return summary


def write_no_grid(out_dir: str | Path) -> dict[str, Any]:
    """The explicit empty result: an IA folder holding only ia.json that says there was nothing to train."""
    summary = {"grid": False, "note": NO_GRID, "variants": [], "steps": 0, "tokens": 0}
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "ia.json", summary)
    return summary
