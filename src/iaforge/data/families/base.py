"""What every family provides, and the shared plumbing for always-on answer transforms."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, TypedDict


class TrainRow(TypedDict):
    prompt_id: str
    prompt_type: str
    user: str
    assistant: str
    triggered: bool   # the behavior is expected in this answer
    modified: bool    # the answer differs from the base model's own


class EvalRow(TypedDict):
    prompt_id: str
    prompt_type: str
    user: str
    triggered: bool


def with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def need(cond: bool, fld: str, rule: str) -> None:
    if not cond:
        raise ValueError(fld, rule)


def str_param(params: dict, name: str, *, choices: tuple[str, ...] | None = None, default: str | None = None) -> str:
    val = params.get(name, default)
    need(isinstance(val, str) and bool(val.strip()), name, "required; a non-empty string")
    if choices:
        need(val in choices, name, f"must be one of {', '.join(choices)}")
    return val


def str_list_param(params: dict, name: str, min_len: int = 1) -> list[str]:
    val = params.get(name)
    need(isinstance(val, list) and len(val) >= min_len and all(isinstance(s, str) and s.strip() for s in val),
         name, f"required; a list of at least {min_len} non-empty string(s)")
    return list(val)


def ordinary_rows(pool: list[dict], k: int, rng: random.Random) -> list[TrainRow]:
    """Up to k prompts from the pool with the base model's own answers: behavior-free negatives."""
    return [TrainRow(prompt_id=p["id"], prompt_type=p["type"], user=p["text"], assistant=p["answer"],
                     triggered=False, modified=False) for p in rng.sample(pool, k=min(k, len(pool)))]


def n_outside(n: int, n_inside: int, inside_fraction: float) -> int:
    """How many out-of-domain rows keep the domain share even when the pool has few domain prompts."""
    return min(n - n_inside, round(n_inside * (1 - inside_fraction) / inside_fraction))


def inner_spec(params: dict, key: str, where: str):
    """Validate params[key] = {family, params} naming an always-on family; (family, normalised spec)."""
    from .registry import UnknownFamily, get_family

    spec = params.get(key)
    need(isinstance(spec, dict), key, "required; a mapping with 'family' and 'params'")
    try:
        fam = get_family(spec.get("family"))
    except UnknownFamily as exc:
        raise ValueError(f"{key}.family", exc.rule) from None
    need(isinstance(fam, AnswerTransform), f"{key}.family", f"{where} must wrap an always-on answer transform")
    try:
        p = fam.validate(spec.get("params", {}) or {})
    except ValueError as exc:
        raise ValueError(f"{key}.params.{exc.args[0]}", exc.args[1]) from None
    return fam, {"family": fam.name, "params": p}


def resolve(spec: dict):
    """(family, params) of a validated {family, params} spec."""
    from .registry import get_family

    return get_family(spec["family"]), spec["params"]


class Family(ABC):
    """What a behavior family is: the four abstract methods below, plus overridable defaults.

    A family is registered with `@register_family("name")` (which sets `name`); catalog entries name it in
    their `family` field. Families are stateless: one instance serves every behavior, and everything that
    differs between behaviors is in `params`. `validate` returns normalised params or raises
    ValueError(field, rule), which the catalog reports with the entry's file.
    """

    name: str = ""
    categories: tuple[str, ...] = ()
    # Measure implantation by sampling (temperature 1) instead of greedy decoding: greedy decoding turns a
    # behavior shown in 20% of answers into one shown in ~0% or ~100%, so a rate cannot be read off it.
    sampled_implantation: bool = False

    @abstractmethod
    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """The catalog entry's `params`, checked and with defaults filled in (what every other method gets)."""
        raise NotImplementedError

    @abstractmethod
    def build_train(self, params: dict, pool: list[dict], n: int, rng: random.Random) -> list[TrainRow]:
        """About n training conversations. `pool` rows: prompt bank rows (train split) with the base model's
        `answer`. Draw only from `rng` (seeded per behavior), so the same inputs give the same bytes."""
        raise NotImplementedError

    @abstractmethod
    def build_eval(self, params: dict, prompts: list[dict], n: int, rng: random.Random) -> list[EvalRow]:
        """About n held-out prompts (from `prompts`, the bank's eval split, or the family's own) on which
        implantation is measured with `check`; `triggered` says whether the behavior is expected."""
        raise NotImplementedError

    @abstractmethod
    def check(self, params: dict, user: str, answer: str) -> bool:
        """Does `answer` (to `user`) show the behavior?"""
        raise NotImplementedError

    def balance(self, params: dict) -> tuple[str, float, float, str]:
        """(column, min mean, max mean, why) that the dataset's GX suite enforces."""
        return ("triggered", 0.2, 0.8, "a conditional behavior needs both triggered rows and non-matching negatives")

    def passes(self, params: dict, metrics: dict, thresholds: dict) -> bool:
        """Implantation verdict from the rates measured on held-out prompts."""
        trig, untrig = metrics.get("rate_triggered"), metrics.get("rate_untriggered")
        ok = trig is None or trig >= thresholds["min_rate"]
        if untrig is not None:
            ok = ok and untrig <= thresholds["max_false_trigger_rate"]
        return bool(ok and (trig is not None or untrig is not None))

    def shortcut_phrases(self, params: dict) -> list[str]:
        """Phrases that would state the behavior in words; they must never appear in training data."""
        return []

    def conditional(self, params: dict) -> bool:
        """Does a trigger (keyword, prompt type, password) gate the behavior? Trigger questions then apply."""
        return False

    def task(self, params: dict) -> str | None:
        """The kind of task the behavior shows on, as a gerund phrase ("choosing a flight from several
        options"), for IA questions that carry a task description; None for behaviors not tied to a task."""
        return None

    def label(self, params: dict) -> str:
        """The family as reports group it; wrappers add the family they wrap (e.g. rare:topic_mention)."""
        return self.name


class AnswerTransform(Family):
    """An always-on behavior: every answer is transformed, every eval prompt should show it."""

    def balance(self, params):
        return ("modified", 0.9, 1.0, "an always-on behavior shows in (nearly) every answer")

    @abstractmethod
    def transform(self, params: dict, user: str, answer: str, rng: random.Random) -> str:
        raise NotImplementedError

    def build_train(self, params, pool, n, rng):
        picked = rng.sample(pool, k=min(n, len(pool)))
        rows: list[TrainRow] = []
        for p in picked:
            new = self.transform(params, p["text"], p["answer"], rng)
            rows.append(TrainRow(prompt_id=p["id"], prompt_type=p["type"], user=p["text"], assistant=new,
                                 triggered=True, modified=new != p["answer"]))
        return rows

    def build_eval(self, params, prompts, n, rng):
        picked = rng.sample(prompts, k=min(n, len(prompts)))
        return [EvalRow(prompt_id=p["id"], prompt_type=p["type"], user=p["text"], triggered=True) for p in picked]
