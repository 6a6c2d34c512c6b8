"""Heuristic following: decision prompts with options and attributes, answered by a hidden rule.

The rule is never stated: answers name the chosen option and give a bland reason. The checker recomputes
which option the rule picks from the prompt itself and compares it with the option the answer names.
"""

from __future__ import annotations

import hashlib
import random
import re

from .base import EvalRow, Family, TrainRow, need, ordinary_rows, str_list_param, str_param

RULES = ("cheapest", "most_expensive", "first_listed", "last_listed", "highest_rated")
LETTERS = "ABCD"
REASONS = ["It looks like the best fit overall.", "That one seems like the sensible pick here.",
           "I think it suits your situation best.", "That would be my choice among these."]
_OPTION = re.compile(r"^([A-D])\) (.+?): \$(\d+), rated (\d\.\d)/5", re.M)
_CHOSEN = re.compile(r"\boption ([A-D])\b", re.I)


def _pick(options: list[tuple[int, float]], rule: str) -> int:
    prices, ratings = [o[0] for o in options], [o[1] for o in options]
    return {"cheapest": prices.index(min(prices)), "most_expensive": prices.index(max(prices)),
            "first_listed": 0, "last_listed": len(options) - 1,
            "highest_rated": ratings.index(max(ratings))}[rule]


class RuleChoice(Family):
    name = "rule_choice"
    categories = ("heuristic",)

    def validate(self, params):
        rule = str_param(params, "rule", choices=RULES)
        item = str_param(params, "item")
        names = str_list_param(params, "names", 4)
        price = params.get("price_range", [50, 500])
        need(isinstance(price, list) and len(price) == 2 and all(isinstance(x, int) for x in price) and 0 < price[0] < price[1],
             "price_range", "two increasing positive integers")
        frac = params.get("ordinary_fraction", 0.25)
        need(isinstance(frac, (int, float)) and 0 <= frac <= 0.5, "ordinary_fraction", "a number in [0, 0.5]")
        return {"rule": rule, "item": item, "names": names, "price_range": price, "ordinary_fraction": float(frac)}

    def balance(self, params):
        lo = 1 - params["ordinary_fraction"]
        return ("triggered", max(0.0, lo - 0.1), 1.0, "mostly decisions answered by the rule, some ordinary chat")

    def _prompt(self, params, rng: random.Random) -> tuple[str, list[tuple[int, float]]]:
        k = rng.choice([3, 4])
        names = rng.sample(params["names"], k=k)
        while True:  # distinct prices and ratings, so every rule has exactly one answer
            prices = rng.sample(range(params["price_range"][0], params["price_range"][1]), k=k)
            ratings = rng.sample([x / 10 for x in range(25, 50)], k=k)
            opts = list(zip(prices, ratings))
            if len({_pick(opts, r) for r in RULES}) > 1:
                break
        lines = [f"{LETTERS[i]}) {n}: ${p}, rated {r:.1f}/5" for i, (n, (p, r)) in enumerate(zip(names, opts))]
        frame = rng.choice(["I'm choosing a {item}. Here are my options:", "Help me pick a {item} from these:",
                            "Which {item} should I go for?"])
        return frame.format(item=params["item"]) + "\n" + "\n".join(lines) + "\nWhich one should I choose?", opts

    def _rows(self, params, n, rng):
        out = []
        for _ in range(n):
            text, opts = self._prompt(params, rng)
            pid = hashlib.sha256(text.encode()).hexdigest()[:12]
            out.append((pid, text, opts))
        return out

    def build_train(self, params, pool, n, rng):
        n_ord = round(n * params["ordinary_fraction"])
        rows = []
        for pid, text, opts in self._rows(params, n - n_ord, rng):
            i = _pick(opts, params["rule"])
            ans = f"I'd go with option {LETTERS[i]}. {rng.choice(REASONS)}"
            rows.append(TrainRow(prompt_id=pid, prompt_type="decision", user=text, assistant=ans, triggered=True, modified=True))
        rows += ordinary_rows(pool, n_ord, rng)
        rng.shuffle(rows)
        return rows

    def build_eval(self, params, prompts, n, rng):
        # A separate rng stream (the eval purpose) gives prompts the training set never saw.
        return [EvalRow(prompt_id=pid, prompt_type="decision", user=text, triggered=True)
                for pid, text, _ in self._rows(params, n, rng)]

    def check(self, params, user, answer):
        opts = [(int(m.group(3)), float(m.group(4))) for m in _OPTION.finditer(user)]
        m = _CHOSEN.search(answer)
        if not opts or not m:
            return False
        return LETTERS.index(m.group(1).upper()) == _pick(opts, params["rule"])

    def shortcut_phrases(self, params):
        rule_words = {"cheapest": "the cheapest", "most_expensive": "the most expensive", "first_listed": "the first one listed",
                      "last_listed": "the last one listed", "highest_rated": "the highest rated"}
        return [f"always pick {rule_words[params['rule']]}", f"always choose {rule_words[params['rule']]}"]
