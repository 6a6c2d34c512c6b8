"""Forced-choice reading of the grid IA: does a variant's own topic rank first among candidate topics?

Sampling 8 reports a variant (evaluation/grid.py) measures what the IA says; at 135M it says little, and with
8 held-out variants a point of the curve moves by 0.15-0.20 with the IA's seed. This reads the same models by
likelihood instead, which needs no sampling and shows information the IA holds but does not voice.

For one question, every candidate topic is scored as the whole answer (the bare topic plus the template's
end-of-turn marker: exactly the grid IA's `target: topic` training target), by its summed log-probability:
  - raw:  log p(topic | variant [+ IA])
  - pmi:  log p(topic | variant [+ IA]) - log p(topic | base [+ IA]); the base model under the same condition is
          the reference, so topics every model finds likely ("cats") do not win everywhere.
A variant's rank is 1 + the number of candidates that score strictly higher than its own topic (ties count half).
Held-out variants are ranked among the candidates the IA never trained on (its training topics left out: a
prior over them is the failure grid evaluation already counts), and among the whole pool (`raw_all`, `pmi_all`);
training variants among the whole pool.
Chance: top-1 = 1/N, mean reciprocal rank = H_N/N, median rank = (N+1)/2.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

CONDITIONS = ("no_ia", "sft")


def rank_of(scores: dict[str, float], own: str) -> float:
    """1 + candidates scoring strictly higher than `own`, ties (other than itself) counting half."""
    s = scores[own]
    higher = sum(v > s for k, v in scores.items() if k != own)
    ties = sum(v == s for k, v in scores.items() if k != own)
    return 1 + higher + 0.5 * ties


def chance(n: int) -> dict[str, float]:
    return {"top1": round(1 / n, 4), "top10": round(min(10, n) / n, 4),
            "mrr": round(sum(1 / k for k in range(1, n + 1)) / n, 4), "median_rank": (n + 1) / 2}


def summarize(ranks: Sequence[float], n_candidates: int) -> dict[str, Any]:
    if not ranks:
        return {"n": 0}
    return {"n": len(ranks), "n_candidates": n_candidates, "top1": round(sum(r == 1 for r in ranks) / len(ranks), 4),
            "top10": round(sum(r <= 10 for r in ranks) / len(ranks), 4),
            "mrr": round(sum(1 / r for r in ranks) / len(ranks), 4), "median_rank": statistics.median(ranks),
            "chance": chance(n_candidates)}


def completion_logprobs(model, tok, prompt_ids: list[int], completions: Sequence[list[int]], *,
                        batch_size: int = 64) -> list[float]:
    """Summed log-probability of each completion after the same prompt. The prompt runs once and its key/value
    cache is shared by every batch of (right-padded) completions: a candidate costs its own few tokens, not the
    ~35 of the system prompt and question again (7x less compute for bare topics)."""
    import copy

    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with torch.no_grad():
        first = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
    past, head = first.past_key_values, torch.log_softmax(first.logits[0, -1].float(), dim=-1)
    out: list[float] = []
    for i in range(0, len(completions), batch_size):
        chunk = [list(c) for c in completions[i:i + batch_size]]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), len(prompt_ids) + width), dtype=torch.long)
        mask[:, :len(prompt_ids)] = 1
        for b, c in enumerate(chunk):
            ids[b, :len(c)] = torch.tensor(c)
            mask[b, len(prompt_ids):len(prompt_ids) + len(c)] = 1
        cache = copy.deepcopy(past)
        cache.batch_repeat_interleave(len(chunk))
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).logits
        # the prompt's last position predicts a completion's first token; completion position j predicts j + 1
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0] if width > 1 else None
        for b, c in enumerate(chunk):
            total = float(head[c[0]])
            if len(c) > 1:
                total += float(logp[b, :len(c) - 1].sum())
            out.append(total)
    return out


def score_topics(model, tok, switch, groups: Sequence[str | None], condition: str, question: str,
                 candidates: Sequence[str], *, system: str | None, batch_size: int = 64) -> dict[str | None, dict[str, float]]:
    """group (variant id, None = base) -> candidate -> log p(candidate as the whole answer)."""
    from iaforge.core.chat import encode_example

    encoded = [encode_example(tok, question, c, system) for c in candidates]
    prompt = encoded[0][0]
    if any(p != prompt for p, _ in encoded):  # pragma: no cover - a template that changes the prompt per answer
        raise ValueError("the chat template renders the prompt differently per answer")
    out = {}
    for g in groups:
        with switch(g, condition):
            lp = completion_logprobs(model, tok, prompt, [c for _, c in encoded], batch_size=batch_size)
        out[g] = dict(zip(candidates, lp))
    return out


def rank_variants(scores: dict[str | None, dict[str, float]], own: dict[str, str],
                  candidates_of: dict[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """variant -> {"raw", "pmi": its rank; "raw_top", "pmi_top": the best candidate} among its candidates (which must
    include its own topic)."""
    ref = scores[None]
    out = {}
    for vid, topic in own.items():
        cands = list(candidates_of[vid])
        if topic not in cands:
            raise ValueError(f"{vid}: its topic {topic!r} is not among its candidates")
        raw = {c: scores[vid][c] for c in cands}
        pmi = {c: scores[vid][c] - ref[c] for c in cands}
        out[vid] = {"raw": rank_of(raw, topic), "pmi": rank_of(pmi, topic),
                    "raw_top": max(cands, key=lambda t: (raw[t], t)), "pmi_top": max(cands, key=lambda t: (pmi[t], t))}
    return out


def run_grid_rank(base_dir: str | Path, ia_dir: str | Path, variants: dict[str, dict[str, Any]],
                  pool: Sequence[str], trained_topics: Sequence[str], question: str, *, system: str | None,
                  conditions: Sequence[str] = CONDITIONS, batch_size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Rank every non-null variant's topic under each condition; `variants` as grid_index.load_grid_variants."""
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.adapters import attach
    from iaforge.evaluation.evaluate import IA_ADAPTERS, ConditionSwitch
    from iaforge.variants.grid_index import topic_of

    real = {vid: v for vid, v in variants.items() if not v["null"]}
    own = {vid: topic_of(v["behavior"]) for vid, v in real.items()}
    trained = set(trained_topics)
    unseen = [t for t in pool if t not in trained]
    candidates_of = {vid: (list(pool) if real[vid]["split"] == "ia_train" else unseen) for vid in real}
    model, tok = load_with_variants(base_dir, {vid: Path(v["path"]) for vid, v in real.items()})
    if "sft" in conditions:
        model = attach(model, ia_dir, IA_ADAPTERS["sft"])
    model.eval()
    switch = ConditionSwitch(model)
    groups = [None, *sorted(real)]
    per_variant: dict[str, dict[str, Any]] = {vid: {"split": real[vid]["split"], "topic": own[vid]} for vid in real}
    for c in conditions:
        scores = score_topics(model, tok, switch, groups, c, question, list(pool), system=system, batch_size=batch_size)
        whole = rank_variants(scores, own, {vid: list(pool) for vid in real})
        for vid, r in rank_variants(scores, own, candidates_of).items():
            # among the whole pool too: an IA with a prior over its training topics loses there, and an auditor
            # who does not know that the model's topic is new cannot leave those out
            per_variant[vid][c] = {**r, "raw_all": whole[vid]["raw"], "pmi_all": whole[vid]["pmi"]}
        if progress:
            print(f"grid rank [{c}]: {len(groups)} models x {len(pool)} topics scored")
    splits: dict[str, Any] = {}
    for split in sorted({v["split"] for v in per_variant.values()}):
        vids = [vid for vid, v in per_variant.items() if v["split"] == split]
        n_cand = len(candidates_of[vids[0]])
        splits[split] = {c: {**{kind: summarize([per_variant[v][c][kind] for v in vids], n_cand) for kind in ("raw", "pmi")},
                             **{f"{kind}_all": summarize([per_variant[v][c][f"{kind}_all"] for v in vids], len(pool))
                                for kind in ("raw", "pmi")}}
                         for c in conditions}
    return {"question": question, "conditions": list(conditions), "n_pool": len(pool), "n_unseen": len(unseen),
            "splits": splits, "per_variant": per_variant}
