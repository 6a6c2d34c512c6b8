"""Reports sampled in full batches (`grid_eval`, `evaluate`): rows of different variants, conditions and IAs share one
generation batch, each row through its own variant and IA (`core.lora_bank`), and a contrastive row beside its
reference row.

Why: asked one variant and one condition at a time, grid_eval generated 2-16 rows per batch (contrastive sampling
in two passes of 8), and on a CPU 48 prompts in one batch took about half the time of the same prompts in batches
of 12 (bench/generation_batch.py). Here every report of the run is one row list, cut into batches of `batch_size`
rows.

How a row is sampled: `generate` runs greedy over scores that `RowSampler` has already turned into the sampled
token (0 there, -inf elsewhere), so the sampling (plain, or contrastive as `contrastive.contrast_logits` defines
it) is this module's and `generate` keeps the KV cache, the left padding and the stopping. A contrastive row's
reference (the base model under the same IA condition) is the next row of its batch and is forced to the same
token, so both sides read the same text, as `contrastive.contrastive_sample` does with two caches.

Determinism: each report has its own random stream, seeded from (seed, variant, condition, question, sample
number), so a report does not depend (up to the float rounding of another batch shape) on which rows share its
batch, on the number of worker processes, or on which other jobs the run holds: adding a variant to the grid leaves
every other variant's reports as they were, and the audit tier reads the same reports of a variant as the
`evaluate` stage (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from iaforge.evaluation.contrastive import CONTRAST, base_condition, contrast_logits

def plan_rows(jobs: Sequence[dict[str, Any]], prefill: str) -> list[list[dict[str, Any]]]:
    """Units of rows, jobs grouped by condition (stable): a plain report is one row, a contrastive one its row and
    its reference row. Each row: job, group (variant id, None: base model), condition (the IA condition), user,
    prefill, ref. Why grouped: a batch runs until its longest answer ends, and the IA's reports are a few tokens
    while a variant asked without it talks for all of max_new_tokens; mixed, every batch ran to the cap."""
    units = []
    for ji in sorted(range(len(jobs)), key=lambda i: jobs[i]["condition"]):
        j = jobs[ji]
        # "sample_as": how the rows are sampled when the job's condition is only its name (grid.py's *_hint
        # conditions sample as sft or no_ia, with another question); the seed key keeps the name
        sample_as = j.get("sample_as", j["condition"])
        cond = base_condition(sample_as)
        pre = prefill if cond == "prefill" else ""
        for q in j["questions"]:
            for k in range(j["n"]):
                lead = {"job": ji, "group": j["group"], "condition": cond, "user": q, "prefill": pre, "ref": False,
                        "key": [j["group"], j["condition"], q, k]}
                unit = [lead]
                if sample_as.endswith(CONTRAST):
                    unit.append(dict(lead, group=None, ref=True))
                units.append(unit)
    return units


def pack_batches(units: list[list[dict[str, Any]]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Consecutive units into batches of at most `batch_size` rows; a unit is never split."""
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (a contrastive report needs two rows)")
    batches, cur = [], []
    for u in units:
        if len(cur) + len(u) > batch_size:
            batches.append(cur)
            cur = []
        cur += u
    if cur:
        batches.append(cur)
    return batches


def row_seed(seed: int, key: Sequence[Any]) -> int:
    """A report's own seed: stable across processes and Python versions (not `hash`)."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([seed, *key]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class RowSampler:
    """A transformers logits processor that samples each lead row's token (plain: softmax(log p / T); contrastive:
    contrast_logits against its reference row, the next row) and returns scores that make greedy decoding pick it,
    the reference row forced to its lead's token. temperature 0: the argmax of the same scores."""

    def __init__(self, refs: Sequence[bool], *, alpha: float, beta: float, temperature: float, seeds: Sequence[int]):
        import torch

        self.lead = [i for i, r in enumerate(refs) if not r]
        if len(seeds) != len(self.lead):
            raise ValueError("one seed per lead row")
        self.partner = [i + 1 if i + 1 < len(refs) and refs[i + 1] else -1 for i in self.lead]
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        logp = torch.log_softmax(scores.float(), -1)
        lead = torch.tensor(self.lead)
        logits = logp[lead].clone()
        pairs = [(n, p) for n, p in enumerate(self.partner) if p >= 0]
        if pairs:
            at = torch.tensor([n for n, _ in pairs])
            ref = torch.tensor([p for _, p in pairs])
            logits[at] = contrast_logits(logp[lead[at]], logp[ref], self.alpha, self.beta)
        if self.temperature > 0:
            probs = torch.softmax(logits.cpu() / self.temperature, -1)
            tok = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.gens)]).to(scores.device)
        else:
            tok = logits.argmax(-1)
        out = torch.full_like(scores, float("-inf"))
        out[lead, tok] = 0.0
        if pairs:
            out[ref, tok[at]] = 0.0
        return out


def contiguous_shares(costs: Sequence[int], n: int) -> list[list[int]]:
    """Indices 0..len-1 cut into at most n consecutive runs of near-equal total cost: batches are in job order, so a
    worker's run covers about 1/n of the variants and loads only those."""
    total, shares, cur, done = sum(costs), [], [], 0
    for i, c in enumerate(costs):
        cur.append(i)
        done += c
        if len(shares) < n - 1 and done >= total * (len(shares) + 1) / n:
            shares.append(cur)
            cur = []
    if cur:
        shares.append(cur)
    return shares


def sample_batches(*, base_dir: str | Path, variant_dirs: dict[str, str | Path], ia_dirs: dict[str, str | Path],
                   batches: list[tuple[int, list[dict[str, Any]]]], system: str | None, max_new_tokens: int,
                   temperature: float, seed: int, contrast: dict[str, float] | None, progress: bool = False) -> list[list[str]]:
    """Answers for each (batch index, rows) on one model holding these variants and IAs in LoRA banks.
    Module-level: a worker process runs it (`workers.run_in_workers`)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import LogitsProcessorList

    from iaforge.core.base_model import load_base
    from iaforge.core.chat import render_prompts
    from iaforge.core.lora_bank import bank_rows, load_banks
    from iaforge.evaluation.contrastive import end_token_ids

    model, tok = load_base(base_dir)
    vids = sorted(variant_dirs)
    slot = {v: i for i, v in enumerate(vids)}
    ia_slot = {c: i for i, c in enumerate(sorted(ia_dirs))}  # IA condition -> slot in the "ia" bank
    banks = {"variant": [variant_dirs[v] for v in vids], "ia": [ia_dirs[c] for c in sorted(ia_dirs)]}
    load_banks(model, {b: d for b, d in banks.items() if d})
    model.eval()
    tok.padding_side = "left"
    ends = sorted(end_token_ids(tok))
    alpha, beta = (float(contrast["alpha"]), float(contrast["beta"])) if contrast else (0.0, 0.0)
    out = []
    for b, rows in tqdm(batches, desc="batched sampling", disable=not progress, leave=False):
        texts = [t + r["prefill"] for t, r in zip(render_prompts(tok, [r["user"] for r in rows], system), rows)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        route = {}
        if banks["variant"]:
            route["variant"] = [slot[r["group"]] if r["group"] is not None else -1 for r in rows]
        if banks["ia"]:
            route["ia"] = [ia_slot.get(r["condition"], -1) for r in rows]
        sampler = RowSampler([r["ref"] for r in rows], alpha=alpha, beta=beta, temperature=temperature,
                             seeds=[row_seed(seed, r["key"]) for r in rows if not r["ref"]])
        with torch.inference_mode(), bank_rows(model, route):
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 logits_processor=LogitsProcessorList([sampler]), pad_token_id=tok.pad_token_id,
                                 eos_token_id=ends, temperature=None, top_p=None, top_k=None)
        new = gen[:, enc["input_ids"].shape[1]:]
        out.append([tok.decode(new[i], skip_special_tokens=True).strip() for i in range(len(rows))])
    return out


def answer_jobs_batched(*, jobs: list[dict[str, Any]], base_dir: str | Path, variant_paths: dict[str, str | Path],
                        ia_dirs: dict[str, str | Path], system: str | None, max_new_tokens: int, temperature: float,
                        batch_size: int, seed: int, prefill: str, contrast: dict[str, float] | None = None,
                        workers: int = 1, progress: bool = False) -> list[list[str]]:
    """Each job's answers ({"group", "condition", "questions", "n"}: n per question, in question order), as
    `grid.answer_grid_jobs` returns them: the rows of all jobs in batches, the batches shared out over `workers`
    processes (each loads only the variants its batches ask)."""
    from iaforge.core.workers import run_in_workers
    from iaforge.evaluation.evaluate import IA_ADAPTERS

    missing = sorted({base_condition(j.get("sample_as", j["condition"])) for j in jobs} & set(IA_ADAPTERS) - set(ia_dirs))
    if missing:
        raise ValueError(f"condition {missing[0]!r} needs its IA folder")
    if contrast is None and any(j.get("sample_as", j["condition"]).endswith(CONTRAST) for j in jobs):
        raise ValueError("a *_contrast condition needs the contrast settings (alpha, beta)")
    ia_dirs = {c: d for c, d in ia_dirs.items() if c in IA_ADAPTERS}
    batches = pack_batches(plan_rows(jobs, prefill), batch_size)
    shares = contiguous_shares([len(b) for b in batches], max(1, workers))
    calls = []
    for share in shares:
        mine = sorted(share)
        groups = {r["group"] for b in mine for r in batches[b] if r["group"] is not None}
        calls.append(dict(base_dir=base_dir, variant_dirs={g: variant_paths[g] for g in sorted(groups)},
                          ia_dirs=ia_dirs, batches=[(b, batches[b]) for b in mine], system=system,
                          max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, contrast=contrast,
                          progress=progress and len(shares) == 1))
    answers: list[list[str]] = [[] for _ in jobs]
    got_by_batch: dict[int, list[str]] = {}
    for call, got in zip(calls, run_in_workers(sample_batches, calls, len(calls))):
        for (b, _), a in zip(call["batches"], got):
            got_by_batch[b] = a
    for b, rows in enumerate(batches):
        for r, a in zip(rows, got_by_batch[b]):
            if not r["ref"]:
                answers[r["job"]].append(f"{r['prefill']} {a}" if r["prefill"] else a)
    return answers
