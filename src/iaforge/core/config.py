"""Read one section of params.yaml: each stage sees only its own knobs (plus shared ones it names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from iaforge.core.errors import ValidationError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ValidationError(path, "<file>", "params file not found; run from the repository root")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValidationError(path, "<root>", "must be a mapping of stage sections")
    return data


def section(name: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    data = load_params(path)
    if name not in data or not isinstance(data[name], dict):
        raise ValidationError(path, name, "missing section (a mapping is required)")
    return data[name]
