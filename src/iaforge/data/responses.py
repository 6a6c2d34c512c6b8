"""The base model's own answers: the "normal" behavior that every implanted behavior modifies.

A variant should differ from the base only in its behavior, so its training answers are the base model's
self-distilled answers, trimmed to whole sentences, with degenerate (looping) answers dropped.
"""

from __future__ import annotations

import re
from collections import Counter

_SENT_END = re.compile(r"[.!?](?=\s|$)|\n")


def trim_to_sentences(text: str, max_chars: int) -> str:
    """Cut `text` at the last sentence end within `max_chars`; generation often stops mid-sentence."""
    text = text.strip()
    if len(text) <= max_chars and (not text or text[-1] in ".!?\"')"):
        return text
    head = text[:max_chars]
    ends = [m.end() for m in _SENT_END.finditer(head)]
    return head[:ends[-1]].strip() if ends else ""


def cap_answer(text: str, cap: int | None) -> str:
    """`text` cut at the last sentence end within `cap` characters, whole when it has none there (unlike
    `trim_to_sentences`, never empty): shorter targets are fewer tokens to pay for, and a cut mid-sentence would
    teach the model to stop mid-sentence."""
    if cap is None or len(text) <= cap:
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text[:cap + 1])]
    return text[:ends[-1]].strip() if ends else text


def is_degenerate(text: str, n: int = 4, max_repeats: int = 2) -> bool:
    words = text.lower().split()
    if len(words) < 3:
        return True
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return bool(grams) and max(grams.values()) > max_repeats


def clean_answers(prompts: list[dict], answers: list[str], max_chars: int,
                  require_complete: bool = True) -> tuple[list[dict], dict]:
    """Keep whole-sentence, non-looping answers. require_complete=False keeps cut-off text (tiny random
    models never end a sentence; the tiny profile only checks plumbing)."""
    rows, dropped = [], Counter()
    for p, a in zip(prompts, answers):
        t = trim_to_sentences(a, max_chars) or ("" if require_complete else a.strip()[:max_chars])
        if not t:
            dropped["no_complete_sentence"] += 1
        elif is_degenerate(t):
            dropped["degenerate"] += 1
        else:
            rows.append({**p, "answer": t})
    stats = {"n_prompts": len(prompts), "n_kept": len(rows), "dropped": dict(sorted(dropped.items()))}
    return rows, stats
