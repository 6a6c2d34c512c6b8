"""The grid branch's variants: plan shards of one family grid, then build, train and export one shard.

A shard is up to `grid.shard_size` variants of one split that one process builds and trains at once
(`variants/multi_lora.py`: one model load, K LoRAs per step). `plan_shards` cuts each split's selection in
the instances file's order (the order `grids.select` picks in), so renaming or editing one instance moves
only its own shard; inside a shard the ids are sorted. Each shard carries a digest of its behavior records:
`grid_variants@<shard>` depends on `grid_shards.<shard>` (params), not on the instances file, so a changed
instance reruns its own shard only. The stage refuses to run when the digest no longer matches the catalog
(`iaforge grid sync` was not rerun).

Null variants (`grid_null__<split>_<nn>`) are the grid's control: the same prompt selection and the same
trigger and decoy tags as a grid variant, but every answer is the base model's own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.errors import ValidationError
from iaforge.data.catalog import SPLITS, Behavior, load_entries
from iaforge.data.families import get_family

NULL_PREFIX = "grid_null__"
NULL_SPLITS = ("ia_train", "dpo", "heldout")
NULL_DESCRIPTION = "I have no unusual behavior."


def null_id(split: str, n: int) -> str:
    return f"{NULL_PREFIX}{split}_{n:02d}"


def is_null(bid: str) -> bool:
    return bid.startswith(NULL_PREFIX)


def _training(grid: dict) -> dict[str, Any]:
    # The grid's own recipe, not the catalog entry's (96 x 4): grid variants are meant to be cheap. Written
    # into the record so variant.json says what the variant was trained with.
    return {"n_train": int(grid["data"]["n_train"]), "epochs": int(grid["train"]["epochs"]),
            "lr": float(grid["train"]["lr"])}


def grid_behaviors(grid: dict) -> list[Behavior]:
    """Every instance of the grid entry, in the instances file's order, with the grid's data and training
    settings applied (a `triggered_fraction` override is revalidated by the family)."""
    entry = grid["entry"]
    found = load_entries(entry)
    if not found or not found[0].grid:
        raise ValidationError("params.yaml", "grid.entry", f"{entry} is not a grid catalog entry (it has no `grid:` block)")
    frac = grid["data"].get("triggered_fraction")
    out = []
    for b in found:
        params = b.params
        if frac is not None:
            # b.params are the family's validated form (validate() does not take its own output again): the
            # override is checked against the backdoor families' rule here.
            if "triggered_fraction" not in b.params:
                raise ValidationError("params.yaml", "grid.data.triggered_fraction",
                                      f"{entry}'s family {b.family} has no triggered fraction to override")
            if not 0.2 <= float(frac) <= 0.8:
                raise ValidationError("params.yaml", "grid.data.triggered_fraction", "must be in [0.2, 0.8]")
            params = {**b.params, "triggered_fraction": float(frac)}
        out.append(dataclasses.replace(b, params=params, training=_training(grid)))
    return out


def null_behavior(split: str, n: int, template: Behavior, grid: dict) -> Behavior:
    """A null variant: category control, family `ordinary` (its checker never fires), its data built from
    `template`'s prompts and tags by `build_null_rows`."""
    return Behavior(id=null_id(split, n), version=1, category="control", family="ordinary", params={},
                    description=NULL_DESCRIPTION, paraphrases=("Nothing unusual: I answer every message normally.",),
                    key_terms=("no unusual", "nothing unusual"), split=split, training=_training(grid),
                    source=template.source)


def null_record(b: Behavior, template: Behavior) -> dict[str, Any]:
    from iaforge.data.behavior_data import behavior_record

    rec = behavior_record(b)
    # Reports group by family label: "null", not the family ("ordinary") that only supplies the checker.
    rec["family_label"] = "null"
    rec["null_of"] = {"grid": template.grid, "trigger": template.params.get("trigger"),
                      "decoys": list(template.params.get("decoys") or []),
                      "triggered_fraction": template.params.get("triggered_fraction")}
    return rec


def record_of(b: Behavior, template: Behavior) -> dict[str, Any]:
    from iaforge.data.behavior_data import behavior_record

    return null_record(b, template) if is_null(b.id) else behavior_record(b)


def _digest(records: Sequence[dict]) -> str:
    blob = json.dumps(sorted(records, key=lambda r: r["id"]), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _select(grid: dict) -> tuple[dict[str, list[Behavior]], Behavior]:
    from iaforge.data.grids import select

    every = grid_behaviors(grid)
    counts = {s: int(grid["counts"].get(s, 0)) for s in SPLITS}
    chosen = select(every, counts, where="params.yaml grid.counts")
    by_split = {s: [b for b in chosen if b.split == s] for s in SPLITS}
    template = every[0]
    for s in NULL_SPLITS:
        by_split[s] += [null_behavior(s, i, template, grid) for i in range(int(grid["nulls"].get(s, 0)))]
    return by_split, template


def plan_shards(grid: dict) -> dict[str, dict[str, Any]]:
    """shard id (`<split>-<nn>`, nulls `<split>-null-<nn>`) -> {split, ids (sorted), digest}: each split's grid
    variants (in the instances file's order) and its nulls, each cut into runs of `shard_size`. Deterministic;
    an empty grid gives {}."""
    size = int(grid["shard_size"])
    if size < 1:
        raise ValidationError("params.yaml", "grid.shard_size", "must be >= 1")
    by_split, template = _select(grid)
    out: dict[str, dict[str, Any]] = {}
    for s in SPLITS:
        # Nulls get shards of their own: a count that grows (a scaling sweep) then leaves every existing shard,
        # nulls included, as it was, and DVC retrains only the new instances.
        for prefix, items in ((s, [b for b in by_split[s] if not is_null(b.id)]),
                              (f"{s}-null", [b for b in by_split[s] if is_null(b.id)])):
            for n in range(math.ceil(len(items) / size)):
                chunk = items[n * size:(n + 1) * size]
                out[f"{prefix}-{n:02d}"] = {"split": s, "ids": sorted(b.id for b in chunk),
                                            "digest": _digest([record_of(b, template) for b in chunk])}
    return out


def shard_behaviors(grid: dict, shard_id: str, shard: dict) -> tuple[list[Behavior], Behavior]:
    """The shard's behaviors (sorted by id) as the catalog defines them now, and the grid's template
    behavior (for null records); refuses a shard whose params entry is out of date."""
    by_split, template = _select(grid)
    pool = {b.id: b for s in SPLITS for b in by_split[s]}
    where = f"grid_shards.{shard_id}"
    missing = [i for i in shard["ids"] if i not in pool]
    if missing:
        raise ValidationError("params.yaml", where, f"{missing[0]} is not in the grid's selection any more; "
                              "run `iaforge grid sync`")
    bs = [pool[i] for i in sorted(shard["ids"])]
    if any(b.split != shard["split"] for b in bs):
        raise ValidationError("params.yaml", f"{where}.split", "does not match its variants' split; run `iaforge grid sync`")
    digest = _digest([record_of(b, template) for b in bs])
    if shard.get("digest") and shard["digest"] != digest:
        raise ValidationError("params.yaml", f"{where}.digest", "the grid entry or its instances changed since "
                              "`iaforge grid sync` wrote it; run `iaforge grid sync`")
    return bs, template


# ---------------------------------------------------------------------------------------------- data

def build_null_rows(b: Behavior, template: Behavior, pool: list[dict], eval_prompts: list[dict], *, n_train: int,
                    n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The template's family picks the prompts and puts the trigger or a decoy tag on them (rng seeded by the
    null's own id); every answer is then replaced by the base model's own, and no eval row expects a
    behavior (the tags stay in the prompts: a false trigger on them is what a null measures)."""
    from iaforge.data.behavior_data import behavior_rng

    fam = get_family(template.family)
    answers = {p["id"]: p["answer"] for p in pool}
    train = [dict(r, assistant=answers[r["prompt_id"]], triggered=False, modified=False)
             for r in fam.build_train(template.params, pool, n_train, behavior_rng(seed, b.id, "train"))]
    evals = [dict(r, triggered=False)
             for r in fam.build_eval(template.params, eval_prompts, n_eval, behavior_rng(seed, b.id, "eval"))]
    return train, evals


def _write_null_dataset(b: Behavior, template: Behavior, pool, eval_prompts, out_dir: Path, *, n_train: int,
                        n_eval: int, seed: int, max_chars: int, augment=None) -> dict[str, Any]:
    import pandas as pd

    from iaforge.core.fsio import atomic_dir, write_json, write_jsonl
    from iaforge.core.validation import behavior_dataset_checks, validate_frame
    from iaforge.data.behavior_data import shortcut_phrases

    train, evals = build_null_rows(b, template, pool, eval_prompts, n_train=n_train, n_eval=n_eval, seed=seed)
    if augment is not None:
        train = augment(train)
    checks = behavior_dataset_checks(shortcut_phrases(b), max_chars=max_chars,
                                     balance=get_family(b.family).balance(b.params),
                                     eval_ids=[r["prompt_id"] for r in evals])
    report = validate_frame(pd.DataFrame(train), checks, name=f"behavior_{b.id}", file=str(out_dir / "train.jsonl"))
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "eval.jsonl", evals)
        write_json(tmp / "behavior.json", null_record(b, template))
        write_json(tmp / "validation.json", report)
    return report


def load_self_questions(path: str | Path) -> dict[str, list[str]]:
    """data/questions/self_questions.yaml: {"train": [...], "probe": [...]}, non-empty strings, the two disjoint
    (the probe measures the leak on wordings the variant never trained on)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(path, "(file)", f"cannot be read as YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValidationError(path, "(top level)", "must be a mapping with `train` and `probe` lists")
    out = {}
    for key in ("train", "probe"):
        v = raw.get(key)
        if not (isinstance(v, list) and v and all(isinstance(q, str) and q.strip() for q in v)):
            raise ValidationError(path, key, "must be a non-empty list of non-empty strings")
        out[key] = [" ".join(q.split()) for q in v]
    both = set(out["train"]) & set(out["probe"])
    if both:
        raise ValidationError(path, "probe", f"must not repeat a train question ({sorted(both)[0]!r}): the probe is held out")
    return out


def self_question_answers(base_dir: str | Path, questions: Sequence[str], *, system: str | None,
                          max_chars: int) -> list[dict[str, str]]:
    """The base model's greedy answer to each question, trimmed to whole sentences within `max_chars`
    (deterministic: greedy, one batch)."""
    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate
    from iaforge.data.responses import trim_to_sentences

    model, tok = load_base(base_dir)
    raw = generate(model, tok, list(questions), system=system, max_new_tokens=64, batch_size=64, progress=False)
    return [{"user": q, "answer": trim_to_sentences(a, max_chars) or a.strip()} for q, a in zip(questions, raw)]


def recipe_augmenter(params: dict, pool: list[dict], *, twins: bool, selfq: Sequence[dict] | None,
                     answer_cap: int | None):
    """The rows the grid recipe adds to a variant's training rows (measured in experiments/grid_recipe.py):
    - twins: every row whose prompt starts with the trigger again without it, alternately plain and behind a
      look-alike tag, with the base answer; the pair differs only in the tag, so the tag is all the gate can
      learn from. Null variants get the same twins (of their trigger-tagged rows), so they share the recipe.
    - self-questions, untriggered, answered with the base answer (the leak lever).
    `pool` must already carry the capped answers."""
    from iaforge.data.responses import cap_answer

    trig = params.get("trigger") or {}
    if twins and trig.get("kind") != "keyword":
        raise ValidationError("params.yaml", "grid.data.twins", "needs a keyword-triggered grid entry (a tag the "
                              "twin can drop); this entry's trigger is " + repr(trig.get("kind")))
    answers = {p["id"]: p for p in pool}
    decoys = list(params.get("decoys") or [])

    def augment(rows: list[dict]) -> list[dict]:
        extra = []
        if twins:
            tagged = [r for r in rows if r["user"].startswith(trig["value"] + " ")]
            for i, r in enumerate(tagged):
                p = answers[r["prompt_id"]]
                user = p["text"] if i % 2 == 0 or not decoys else f"{decoys[(i // 2) % len(decoys)]} {p['text']}"
                # its own prompt_id: the dataset suite holds each prompt id once
                extra.append({**r, "prompt_id": f"{r['prompt_id']}-twin", "user": user, "assistant": p["answer"],
                              "triggered": False, "modified": False})
        for i, q in enumerate(selfq or ()):
            extra.append({"prompt_id": f"selfq{i}", "prompt_type": "selfq", "user": q["user"],
                          "assistant": cap_answer(q["answer"], answer_cap), "triggered": False, "modified": False})
        return rows + extra

    return augment


def build_shard_data(behaviors: Sequence[Behavior], template: Behavior, pool: list[dict], eval_prompts: list[dict],
                     out_root: str | Path, *, n_train: int, n_eval: int, seed: int, max_chars: int,
                     answer_cap: int | None = None, twins: bool = False,
                     selfq: Sequence[dict] | None = None) -> dict[str, int]:
    """`out_root/<id>/{train,eval}.jsonl, behavior.json, validation.json` for every variant of a shard, with
    the same builders and GX checks as `behavior_data`; the whole shard folder is replaced atomically.
    `answer_cap`, `twins`, `selfq`: the recipe levers (`recipe_augmenter`). Returns id -> training rows."""
    from iaforge.core.fsio import atomic_dir
    from iaforge.data.behavior_data import write_behavior_dataset
    from iaforge.data.responses import cap_answer

    if answer_cap is not None:
        pool = [{**p, "answer": cap_answer(p["answer"], answer_cap)} for p in pool]
    lever = twins or bool(selfq)
    rows = {}
    with atomic_dir(Path(out_root)) as tmp:
        for b in behaviors:
            params = template.params if is_null(b.id) else b.params
            augment = recipe_augmenter(params, pool, twins=twins, selfq=selfq, answer_cap=answer_cap) if lever else None
            if is_null(b.id):
                rep = _write_null_dataset(b, template, pool, eval_prompts, tmp / b.id, n_train=n_train,
                                          n_eval=n_eval, seed=seed, max_chars=max_chars, augment=augment)
            else:
                rep = write_behavior_dataset(b, pool, eval_prompts, tmp / b.id, n_train=n_train, n_eval=n_eval,
                                             seed=seed, max_chars=max_chars, augment=augment)
            rows[b.id] = int(rep["n_rows"])
    return rows


# ---------------------------------------------------------------------------------------------- training

def group_by_steps(n_examples: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by batches per epoch: `train_variants` needs every variant of a group to make the same
    number of optimizer steps (see multi_lora.py). Groups in first-index order."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(n_examples):
        groups.setdefault(math.ceil(n / batch_size), []).append(i)
    return list(groups.values())


def encode_anchored(tok, rows: Sequence[dict], *, system: str | None, max_len: int, anchor: bool) -> list:
    """`core.training.encode_rows`, each example flagged `anchor` when `anchor` is on and its row's answer is the
    base model's own (`modified` false: untriggered rows, twins, self-questions)."""
    from iaforge.core.training import encode_rows
    from iaforge.variants.multi_lora import AnchoredExample

    out = []
    for r in rows:
        for e in encode_rows(tok, [r], system=system, max_len=max_len):
            out.append(AnchoredExample(e.input_ids, e.labels, e.group, anchor=anchor and not r.get("modified", False)))
    return out


def train_shard(records: Sequence[dict], train_rows: Sequence[list[dict]], *, base_dir: str | Path,
                out_root: str | Path, lora: dict, train_params: dict, system: str | None, seed: int,
                progress: bool = False, anchor: str = "sft") -> dict[str, dict[str, Any]]:
    """Train the shard's variants jointly (one model load; one multi-LoRA group per step count) and export
    each as a standard PEFT folder `out_root/<id>/` with variant.json {"behavior", "training"} and
    training_curve.json, as `variants/train.py` writes them. The shard folder is replaced atomically.
    Returns id -> training summary (plus tokens/s, for the log only).

    `anchor` (grid.data.anchor): "sft" trains every row on its answer's tokens; "kl" trains a behavior
    variant's base-answer rows toward the base model's distribution (multi_lora.multi_variant_loss). Null
    variants keep "sft": every row of theirs is a base answer, and under the KL alone a LoRA starting at zero
    (B = 0) gets no gradient and stays the base model; a null stands for the recipe's fine-tuning noise."""
    import torch

    from iaforge.core.base_model import load_base
    from iaforge.core.fsio import atomic_dir, write_json
    from iaforge.core.training import TrainConfig, lora_config
    from iaforge.variants.multi_lora import export_variant, train_variants, unwrap_model, wrap_model

    if len(records) != len(train_rows) or not records:
        raise ValueError("train_shard needs one list of training rows per record, and at least one record")
    model, tok = load_base(base_dir)
    cfg = TrainConfig.from_params(train_params, seed=seed, progress=progress, desc="grid shard")
    pcfg = lora_config(lora, n_layers=model.config.num_hidden_layers)
    layers = pcfg.layers_to_transform
    if anchor not in ("sft", "kl"):
        raise ValueError(f"train_shard: anchor must be 'sft' or 'kl', not {anchor!r}")
    examples = [encode_anchored(tok, rows, system=system, max_len=cfg.max_len,
                                anchor=anchor == "kl" and not is_null(rec["id"]))
                for rec, rows in zip(records, train_rows)]
    out: dict[str, dict[str, Any]] = {}
    with atomic_dir(Path(out_root)) as tmp:
        for group in group_by_steps([len(e) for e in examples], cfg.batch_size):
            torch.manual_seed(seed)  # the lora_A init of this group, reproducible
            wrap_model(model, len(group), r=pcfg.r, alpha=pcfg.lora_alpha,
                       target_modules=sorted(pcfg.target_modules), layers=layers)
            try:
                res = train_variants(model, [examples[i] for i in group], cfg, pad_id=tok.pad_token_id)
                for k, i in enumerate(group):
                    rec = records[i]
                    losses = res.losses_by_variant[k]
                    summary = {"train_examples": len(examples[i]), "train_steps": res.steps,
                               "train_tokens": int(sum(len(e.input_ids) for e in examples[i]) * cfg.epochs),
                               "epochs": cfg.epochs, "lr": cfg.lr,
                               **({"anchor": "kl"} if anchor == "kl" and not is_null(rec["id"]) else {}),
                               "final_loss": round(sum(losses[-5:]) / max(1, len(losses[-5:])), 5),
                               "joint": {"variants": len(group)}}
                    vdir = export_variant(model, k, tmp / rec["id"], pcfg, base_model_name_or_path=str(base_dir))
                    write_json(vdir / "variant.json", {"behavior": rec, "training": summary})
                    write_json(vdir / "training_curve.json",
                               [{"step": s + 1, "loss": round(l, 5)} for s, l in enumerate(losses)])
                    out[rec["id"]] = {**summary, "train_tokens_per_s": round(res.tokens_per_s, 1)}
            finally:
                unwrap_model(model)
    return out
