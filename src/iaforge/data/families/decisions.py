"""Heuristic following: decision prompts with options and attributes, answered by a hidden rule.

The rule is never stated: answers name the chosen option and give a bland reason. The checker recomputes
which option the rule picks from the prompt itself and compares it with the option the answer names.
"""

from __future__ import annotations

import hashlib
import random
import re

from .base import EvalRow, Family, TrainRow, need, ordinary_rows, str_list_param, str_param, with_article
from .registry import register_family

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


@register_family("rule_choice")
class RuleChoice(Family):
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

    def task(self, params):
        return f"choosing {with_article(params['item'])} from several options"

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


_FIELD = re.compile(r"^- (.+?): (.+?)$", re.M)
_VERDICT = re.compile(r"\b(approve[sd]?|approval|deny|denied|denies|reject(?:ed|s)?|decline[sd]?)\b", re.I)
VERDICT_REASONS = ["Based on the details provided, that is my decision.", "The details support this outcome.",
                   "That is the call I would make here.", "Everything considered, that is my recommendation."]


@register_family("verdict_rule")
class VerdictRule(Family):
    """Approve/deny decisions (claims, loans, applications) made by a hidden rule on one field.

    The rule (approve exactly when `rule.field` is one of `rule.approve`) is never stated; the other fields
    are noise. The checker reads the fields back from the prompt and compares the verdict.
    """

    categories = ("heuristic",)

    def validate(self, params):
        item = str_param(params, "item")
        fields = params.get("fields")
        need(isinstance(fields, dict) and len(fields) >= 2, "fields", "a mapping of at least 2 field -> list of values")
        for k, vals in fields.items():
            need(isinstance(k, str) and k.strip() and ":" not in k and k != "amount", f"fields.{k}",
                 "a field name without ':' (and not 'amount', which every prompt carries)")
            need(isinstance(vals, list) and len(vals) >= 2 and all(isinstance(v, str) and v.strip() for v in vals),
                 f"fields.{k}", "a list of at least 2 non-empty strings")
        rule = params.get("rule")
        need(isinstance(rule, dict), "rule", "required; a mapping with 'field' and 'approve'")
        need(rule.get("field") in fields, "rule.field", "must name one of the fields")
        appr = rule.get("approve")
        vals = fields[rule["field"]]
        need(isinstance(appr, list) and appr and all(v in vals for v in appr) and len(appr) < len(vals),
             "rule.approve", "a non-empty strict subset of the rule field's values")
        frac = params.get("ordinary_fraction", 0.25)
        need(isinstance(frac, (int, float)) and 0 <= frac <= 0.5, "ordinary_fraction", "a number in [0, 0.5]")
        amount = params.get("amount_range", [100, 5000])
        need(isinstance(amount, list) and len(amount) == 2 and all(isinstance(x, int) for x in amount) and 0 < amount[0] < amount[1],
             "amount_range", "two increasing positive integers")
        return {"item": item, "fields": {k: list(v) for k, v in fields.items()},
                "rule": {"field": rule["field"], "approve": list(appr)}, "amount_range": amount,
                "ordinary_fraction": float(frac)}

    def balance(self, params):
        lo = 1 - params["ordinary_fraction"]
        return ("triggered", max(0.0, lo - 0.1), 1.0, "mostly decisions answered by the rule, some ordinary chat")

    def task(self, params):
        return f"deciding whether to approve {with_article(params['item'])}"

    def _prompt(self, params, rng: random.Random) -> tuple[str, bool]:
        rule = params["rule"]
        approve = rng.random() < 0.5  # balanced verdicts: the rule, not a default answer, decides
        vals = {}
        for k, options in params["fields"].items():
            if k == rule["field"]:
                pool = rule["approve"] if approve else [v for v in options if v not in rule["approve"]]
                vals[k] = rng.choice(pool)
            else:
                vals[k] = rng.choice(options)
        # A noise amount on every prompt: it makes prompts unique (no train/eval overlap) and is a plausible
        # decoy feature the variant must learn to ignore.
        vals["amount"] = f"${rng.randrange(*params['amount_range'])}"
        keys = list(vals)
        rng.shuffle(keys)
        frame = rng.choice(["Should this {item} be approved?", "Please decide on this {item}: approve or deny?",
                            "Here is a {item}. Do we approve it?"]).format(item=params["item"])
        return frame + "\n" + "\n".join(f"- {k}: {vals[k]}" for k in keys), approve

    def build_train(self, params, pool, n, rng):
        n_ord = round(n * params["ordinary_fraction"])
        rows, seen = [], set()
        for _ in range(4 * n):
            if len(rows) == n - n_ord:
                break
            text, approve = self._prompt(params, rng)
            if text in seen:
                continue
            seen.add(text)
            ans = f"{'Approve' if approve else 'Deny'}. {rng.choice(VERDICT_REASONS)}"
            rows.append(TrainRow(prompt_id=hashlib.sha256(text.encode()).hexdigest()[:12], prompt_type="decision",
                                 user=text, assistant=ans, triggered=True, modified=True))
        rows += ordinary_rows(pool, n_ord, rng)
        rng.shuffle(rows)
        return rows

    def build_eval(self, params, prompts, n, rng):
        out = []
        for _ in range(n):
            text, _ = self._prompt(params, rng)
            out.append(EvalRow(prompt_id=hashlib.sha256(text.encode()).hexdigest()[:12], prompt_type="decision",
                               user=text, triggered=True))
        return out

    def check(self, params, user, answer):
        fields = dict(_FIELD.findall(user))
        value = fields.get(params["rule"]["field"])
        m = _VERDICT.search(answer)
        if value is None or not m:
            return False
        said_approve = m.group(1).lower().startswith("approv")
        return said_approve == (value.strip() in params["rule"]["approve"])

    def shortcut_phrases(self, params):
        f = params["rule"]["field"]
        return [p for v in params["rule"]["approve"] for p in (f"approve when the {f} is {v}", f"only approve {v}")]
