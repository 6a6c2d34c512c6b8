"""Profiles: partial params files deep-merged over params.yaml (mappings merge; `behaviors` is replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from iaforge.core.errors import ValidationError
from iaforge.core.fsio import atomic_write_text

# A profile names its whole run (and its grid shards, planned by `iaforge grid sync`): it does not add to the default one.
REPLACED = {"behaviors", "grid_shards"}


def deep_merge(base: dict[str, Any], over: dict[str, Any], top: bool = True) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not (top and k in REPLACED):
            out[k] = deep_merge(out[k], v, top=False)
        else:
            out[k] = v
    return out


def apply_profile(profile: str | Path, params: str | Path = "params.yaml") -> dict[str, Any]:
    profile, params = Path(profile), Path(params)
    over = yaml.safe_load(profile.read_text(encoding="utf-8")) if profile.exists() else None
    if not isinstance(over, dict):
        raise ValidationError(profile, "<root>", "profile not found or not a mapping")
    merged = deep_merge(yaml.safe_load(params.read_text(encoding="utf-8")) or {}, over)
    atomic_write_text(params, yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=120))
    return merged
