"""Render conversations with the base model's own chat template, and split prompt from completion."""

from __future__ import annotations

from typing import Sequence


def messages(user: str, system: str | None, assistant: str | None = None) -> list[dict]:
    msgs = []
    # system=None keeps the template's own default system prompt (SmolLM2 injects ~20 tokens);
    # a string replaces it, which is cheaper to train on and identical at train and audit time.
    if system is not None:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": user})
    if assistant is not None:
        msgs.append({"role": "assistant", "content": assistant})
    return msgs


def render_prompt(tok, user: str, system: str | None) -> str:
    return tok.apply_chat_template(messages(user, system), tokenize=False, add_generation_prompt=True)


def encode_example(tok, user: str, assistant: str, system: str | None) -> tuple[list[int], list[int]]:
    """Token ids of prompt and completion; the completion includes the template's end-of-turn marker."""
    prompt = render_prompt(tok, user, system)
    full = tok.apply_chat_template(messages(user, system, assistant), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template does not render the prompt as a prefix of the full conversation")
    completion = full[len(prompt):]
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tok(completion, add_special_tokens=False)["input_ids"]
    return p_ids, c_ids


def render_prompts(tok, users: Sequence[str], system: str | None) -> list[str]:
    return [render_prompt(tok, u, system) for u in users]
