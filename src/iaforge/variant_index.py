"""Find trained variants on disk (models/variants/<split>/<id>/) with their behavior and implantation
(metrics/implantation/<split>.json, written by the `implantation` stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ValidationError
from .fsio import read_json


def load_variants(root: str | Path, splits: list[str], include_failed: bool,
                  measured: str | Path = "metrics/implantation") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        folder = Path(root) / split
        if not folder.is_dir():
            continue
        dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not dirs:
            continue
        mfile = Path(measured) / f"{split}.json"
        if not mfile.is_file():
            raise ValidationError(mfile, "<file>", "missing: run the implantation stage before using variants")
        metrics = read_json(mfile)
        for d in dirs:
            info = read_json(d / "variant.json")
            m = metrics.get(d.name)
            if m is None or m.get("version") != info["behavior"].get("version"):
                raise ValidationError(mfile, d.name, "no implantation measurement for this trained variant "
                                      "(or one of another version): rerun the implantation stage")
            implanted = bool(m["passed"])
            if implanted or include_failed:
                out[d.name] = {"path": d, "split": split, "behavior": info["behavior"], "implanted": implanted,
                               "implantation": m}
    return out
