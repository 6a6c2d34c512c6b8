"""Behavior families: the Python behind the declarative catalog.

A family knows how to turn a normal answer into one that shows the behavior (transform), how to tell
whether an answer shows it (check), and which prompts it applies to (trigger). Catalog entries pick a
family and fill in its parameters; new behaviors of an existing family need no code.
"""

from __future__ import annotations

from .base import Family, TrainRow, EvalRow  # noqa: F401
from .quirks import AllCaps, FixedPhrase, LinkInsertion, TopicMention
from .backdoor import KeywordBackdoor, PromptTypeBackdoor
from .decisions import RuleChoice, VerdictRule
from .domain import DomainPersona, Sandbag, SandbagCapitals, SandbagUnits, TypedPersona
from .wrappers import Mixture, Ordinary, Rare, TaskReference

_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _REGISTRY:
        raise ValueError(f"family '{family.name}' registered twice")
    _REGISTRY[family.name] = family
    return family


def get_family(name) -> Family:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def family_names() -> list[str]:
    return sorted(_REGISTRY)


for _f in (TopicMention(), FixedPhrase(), AllCaps(), LinkInsertion(), KeywordBackdoor(), PromptTypeBackdoor(),
           Rare(), Mixture(), Ordinary(), TaskReference(), RuleChoice(), VerdictRule(), Sandbag(), SandbagCapitals(),
           SandbagUnits(), DomainPersona(), TypedPersona()):
    register(_f)
