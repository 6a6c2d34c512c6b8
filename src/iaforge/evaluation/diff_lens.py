"""The difference lens: which tokens a LoRA makes more likely than its base model, with no IA and no training.

On a fixed prompt (the IA's question, asked without any trigger), take the next-token log-probabilities of the
model with the LoRA and of the base model at every position of the prompt, and average their difference over the
positions; the tokens with the largest mean difference are what the fine-tune pushed toward, even where it
learned not to say it (a trigger-gated grid variant keeps its sampled answers the base model's own, yet raises its
topic's token across the prompt: docs/results.md, nineteenth session). The first position is left out: it
predicts from the template's first token alone.

It is a readout a reader model has to beat: it needs the base model and white-box access, reads single tokens
(a multi-word behavior shows as its first word or a sub-word piece), and says nothing about when a behavior fires.
"""

from __future__ import annotations

from typing import Any, Sequence


def mean_logprob_difference(logits_lora, logits_base):
    """[vocab] mean over positions (the first left out) of log_softmax(lora) - log_softmax(base); logits [T, V]."""
    import torch

    a = torch.log_softmax(logits_lora.float(), -1)
    b = torch.log_softmax(logits_base.float(), -1)
    d = a - b
    return (d[1:] if d.shape[0] > 1 else d).mean(0)


def top_tokens(diff, tok, k: int = 20) -> list[dict[str, Any]]:
    """The k tokens the LoRA raises most: [{token, id, score}] (score: mean log-probability gain, nats)."""
    vals, idx = diff.topk(min(k, diff.shape[-1]))
    return [{"token": tok.decode([i]), "id": int(i), "score": round(float(v), 4)} for v, i in zip(vals.tolist(), idx.tolist())]


def _word(token: str) -> str:
    return token.strip().lower()


def token_names(token: str, terms: Sequence[str], *, rule: str = "word") -> bool:
    """Does a lens token name a topic given by its terms? `word`: the token is one of the terms, or the first word
    of a multi-word term (" steam" for "steam locomotive"); `prefix`: a token of 3+ letters that starts a term or
    that a term starts (" pian" for "piano": sub-word pieces count). Case-insensitive; punctuation never names."""
    w = _word(token)
    if not w.isalpha():
        return False
    low = [t.lower() for t in terms]
    if rule == "word":
        return any(w == t or (" " in t and w == t.split()[0]) for t in low)
    if rule == "prefix":
        return len(w) >= 3 and any(t.startswith(w) or w.startswith(t) for t in low)
    raise ValueError(f"unknown rule {rule!r} (word | prefix)")


def first_hit(tokens: Sequence[str], terms: Sequence[str], *, rule: str = "word") -> int | None:
    """1-based rank of the first token naming the topic, or None."""
    return next((i + 1 for i, t in enumerate(tokens) if token_names(t, terms, rule=rule)), None)


def predicted_topic(tokens: Sequence[str], pool: dict[str, Sequence[str]], *, rule: str = "word") -> str | None:
    """The pool topic named by the highest-ranked token that names any (ties: alphabetical), or None: the lens'
    top-1 answer over a topic pool, comparable with the IA's top-1 accuracy."""
    for t in tokens:
        named = sorted(topic for topic, terms in pool.items() if token_names(t, terms, rule=rule))
        if named:
            return named[0]
    return None
