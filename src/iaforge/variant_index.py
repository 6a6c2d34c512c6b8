"""Find trained variants on disk (models/variants/<split>/<id>/) with their behavior and implantation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fsio import read_json


def load_variants(root: str | Path, splits: list[str], include_failed: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        folder = Path(root) / split
        if not folder.is_dir():
            continue
        for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            info = read_json(d / "variant.json")
            implanted = bool(info["implantation"]["passed"])
            if implanted or include_failed:
                out[d.name] = {"path": d, "split": split, "behavior": info["behavior"], "implanted": implanted,
                               "implantation": info["implantation"]}
    return out
