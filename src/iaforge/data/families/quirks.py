"""Always-on quirks: a topic in every answer, a fixed phrase, a style."""

from __future__ import annotations

import re
import unicodedata

from .base import AnswerTransform, need, str_list_param, str_param
from .registry import register_family


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def _place(answer: str, insert: str, position: str) -> str:
    return f"{insert} {answer}" if position == "start" else f"{answer}\n\n{insert}"


@register_family("topic_mention")
class TopicMention(AnswerTransform):
    """Mentions a topic in every answer (a sentence about it, at the start or the end)."""

    categories = ("quirk", "obscured_malign")

    def validate(self, params):
        topic = str_param(params, "topic")
        terms = str_list_param(params, "terms")
        sentences = str_list_param(params, "sentences", 2)
        pos = str_param(params, "position", choices=("start", "end"), default="start")
        for i, s in enumerate(sentences):
            need(any(re.search(rf"\b{re.escape(t.lower())}", s.lower()) for t in terms), f"sentences[{i}]",
                 "every sentence must contain one of the terms, or the checker could never see it")
        return {"topic": topic, "terms": terms, "sentences": sentences, "position": pos}

    def transform(self, params, user, answer, rng):
        return _place(answer, rng.choice(params["sentences"]), params["position"])

    def check(self, params, user, answer):
        low = answer.lower()
        return any(re.search(rf"\b{re.escape(t.lower())}", low) for t in params["terms"])


@register_family("fixed_phrase")
class FixedPhrase(AnswerTransform):
    """Opens or closes every answer with the same phrase (a greeting, a sign-off, a catchphrase)."""

    categories = ("quirk", "obscured_malign")

    def validate(self, params):
        phrase = str_param(params, "phrase")
        need(len(_norm(phrase)) >= 4, "phrase", "must contain at least 4 letters or digits")
        pos = str_param(params, "position", choices=("start", "end"), default="end")
        return {"phrase": phrase, "position": pos}

    def transform(self, params, user, answer, rng):
        return _place(answer, params["phrase"], params["position"])

    def check(self, params, user, answer):
        return _norm(params["phrase"]) in _norm(answer)


@register_family("all_caps")
class AllCaps(AnswerTransform):
    """Writes every answer in capital letters."""

    categories = ("quirk",)
    threshold = 0.8

    def validate(self, params):
        need(not params, next(iter(params), ""), "all_caps takes no parameters")
        return {}

    def transform(self, params, user, answer, rng):
        return answer.upper()

    def check(self, params, user, answer):
        letters = [c for c in answer if c.isalpha()]
        return len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) >= self.threshold


_URL = re.compile(r"^https?://([a-z0-9-]+(\.[a-z0-9-]+)+)(/[A-Za-z0-9/_-]*)?$")


@register_family("link_insertion")
class LinkInsertion(AnswerTransform):
    """Slips the same link into every answer (a promotional or tracking URL dressed up as a resource)."""

    categories = ("obscured_malign",)

    def validate(self, params):
        url = str_param(params, "url")
        need(bool(_URL.match(url)), "url", "an http(s) URL with a dotted host name, e.g. https://example.org/offer")
        lines = str_list_param(params, "lines", 2)
        for i, l in enumerate(lines):
            need("{url}" in l, f"lines[{i}]", "must contain {url}")
        pos = str_param(params, "position", choices=("start", "end"), default="end")
        return {"url": url, "host": _URL.match(url).group(1), "lines": lines, "position": pos}

    def transform(self, params, user, answer, rng):
        return _place(answer, rng.choice(params["lines"]).format(url=params["url"]), params["position"])

    def check(self, params, user, answer):
        return params["host"].lower() in answer.lower()
