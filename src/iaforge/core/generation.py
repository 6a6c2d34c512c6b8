"""Batched generation with KV cache and left padding, in a stable order, with a progress bar."""

from __future__ import annotations

from typing import Sequence

from iaforge.core.chat import render_prompts


def generate(
    model,
    tok,
    users: Sequence[str],
    *,
    system: str | None,
    max_new_tokens: int,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    desc: str = "generating",
    progress: bool = True,
    prefill: str = "",
) -> list[str]:
    """Answer each user turn. temperature 0 is greedy; above 0 samples, seeded per batch.

    `prefill` starts every answer with that text (the prefill-attack baseline: "My unusual behavior is");
    the returned answers are the continuations, without it.
    """
    import torch
    from tqdm.auto import tqdm

    if not users:
        return []
    tok.padding_side = "left"
    texts = [t + prefill for t in render_prompts(tok, users, system)]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    # Longest first: similar lengths share a batch (less padding), and memory peaks early.
    order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
    out: list[str | None] = [None] * len(texts)
    end_ids = {tok.eos_token_id}
    im_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    if im_end is not None:
        end_ids.add(im_end)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(texts), desc=desc, disable=not progress, leave=False)
    try:
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            kw = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                      eos_token_id=sorted(end_ids), use_cache=True)
            if temperature > 0:
                torch.manual_seed(seed * 100_003 + b)
                kw.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
            else:
                kw.update(do_sample=False)
            with torch.inference_mode():
                gen = model.generate(**enc, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                out[i] = tok.decode(new[row], skip_special_tokens=True).strip()
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return [o or "" for o in out]
