"""The family registry: one instance per family name, filled by `@register_family` at import time."""

from __future__ import annotations

import re
import sys

from iaforge.core.errors import ValidationError

from .base import Family

_REGISTRY: dict[str, Family] = {}
# Wrappers label themselves "rare:<inner>", so a name must not contain ':' (or anything a YAML key would quote).
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class UnknownFamily(ValidationError):
    """A family name that no imported module registered. It names params.yaml because that is where a
    family of one's own is made known; the catalog re-raises it with the entry's own file."""

    def __init__(self, name):
        super().__init__("params.yaml", "catalog.families",
                         f"unknown family {name!r} (known: {', '.join(sorted(_REGISTRY))}); a family of your own must "
                         "be listed in params.yaml catalog.families or installed under the 'iaforge.families' entry point")


def _where(cls: type) -> str:
    mod = sys.modules.get(cls.__module__)
    return getattr(mod, "__file__", None) or cls.__module__


def register_family(name: str):
    """Class decorator: `@register_family("shout")` on a `Family` subclass registers one instance of it under
    that name (and sets its `name`). Two families may not share a name, whichever module comes first."""

    def register(cls: type) -> type:
        where = _where(cls)

        def need(cond: bool, rule: str) -> None:
            if not cond:
                raise ValidationError(where, "family", rule)

        need(isinstance(cls, type) and issubclass(cls, Family),
             f"@register_family({name!r}) decorates a subclass of iaforge.data.families.Family")
        need(isinstance(name, str) and bool(_NAME.match(name)),
             f"name {name!r}: lowercase letters, digits and '_', 2-64 chars, starting with a letter")
        need(name not in _REGISTRY, f"name {name!r} is already registered by {_where(type(_REGISTRY.get(name)))}")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        need(not missing, f"class {cls.__name__} ({name!r}) must implement {', '.join(missing)}")
        cats = cls.categories
        need(isinstance(cats, tuple) and bool(cats) and all(isinstance(c, str) for c in cats),
             f"class {cls.__name__} ({name!r}) needs `categories`, a non-empty tuple of catalog categories")
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return register


def get_family(name) -> Family:
    """The registered family called `name`. An unknown name first imports the plugin families this process
    has not imported yet (a stage, or a worker it spawned, that never called `load_plugins`)."""
    if isinstance(name, str) and name not in _REGISTRY:
        from .plugins import autoload

        autoload()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownFamily(name)
    return _REGISTRY[name]


def family_names() -> list[str]:
    from .plugins import autoload

    autoload()
    return sorted(_REGISTRY)
