"""Find trained variants on disk (models/variants/<split>/<id>/) with their behavior and implantation
(metrics/implantation/<split>.json, written by the `implantation` stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.core.errors import ValidationError
from iaforge.core.fsio import read_json


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


def without_categories(variants: dict[str, dict[str, Any]], excluded: list[str],
                       field: str = "ia_sft.exclude_categories") -> dict[str, dict[str, Any]]:
    """The variants whose behavior is of none of the `excluded` categories (leave-one-category-out)."""
    from iaforge.data.catalog import CATEGORIES

    if not isinstance(excluded, list):  # `-S ia_sft.exclude_categories=quirk` would otherwise exclude 'q', 'u', ...
        raise ValidationError("params.yaml", field, f"must be a list of categories, e.g. [quirk] (got {excluded!r})")
    for c in excluded:
        if c not in CATEGORIES:
            raise ValidationError("params.yaml", field, f"unknown category {c!r} (known: {', '.join(CATEGORIES)})")
    kept = {k: v for k, v in variants.items() if v["behavior"]["category"] not in excluded}
    if variants and not kept:
        raise ValidationError("params.yaml", field, f"excludes every variant ({', '.join(excluded)})")
    return kept
