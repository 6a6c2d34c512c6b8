"""Behavior families: the Python behind the declarative catalog.

A family knows how to turn a normal answer into one that shows the behavior (transform), how to tell
whether an answer shows it (check), and which prompts it applies to (trigger). Catalog entries pick a
family and fill in its parameters; new behaviors of an existing family need no code, and a new family
needs no change here: a module of one's own that subclasses `Family` and uses `@register_family`, listed in
params.yaml `catalog.families` (see `plugins.py` and docs/catalog.md).
"""

from __future__ import annotations

from .base import AnswerTransform, EvalRow, Family, TrainRow  # noqa: F401
from .registry import UnknownFamily, family_names, get_family, register_family  # noqa: F401
from .plugins import ENTRY_POINT_GROUP, load_plugins  # noqa: F401

# The built-in families register themselves when imported.
from . import backdoor, decisions, domain, quirks, wrappers  # noqa: F401, E402
