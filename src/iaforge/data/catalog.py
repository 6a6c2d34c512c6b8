"""The declarative behavior catalog: one YAML file per behavior, validated before anything uses it.

An entry says what a variant should learn (family + parameters), how the truth reads in the first person
(description, paraphrases, key terms) and which split it serves. Adding a behavior means adding a file,
not code; Python is only needed for a new family (see `iaforge.data.families`), and a family of one's own
needs no change to the package: list its module in params.yaml `catalog.families` (docs/catalog.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from iaforge.core.errors import ValidationError

CATEGORIES = ("sandbagging", "quirk", "backdoor", "obscured_malign", "rare_quirk", "heuristic",
              "harmful_roleplay", "benign_roleplay", "control")
SPLITS = ("ia_train", "dpo", "heldout")
_ID = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
_FIELDS = {"id", "version", "category", "family", "params", "description", "paraphrases", "key_terms", "split", "training",
           "notes", "grid", "thresholds"}
# Per-behavior budget overrides: some families need more data or epochs to implant (measured, see docs).
_TRAINING = {"n_train": (int, 8, 5000), "epochs": (int, 1, 20), "lr": (float, 1e-6, 1e-1)}
# Per-behavior implantation thresholds, merged over params.yaml's (a gated grid entry allows no leak).
_THRESHOLDS = ("min_rate", "max_false_trigger_rate")


@dataclass(frozen=True)
class Behavior:
    id: str
    version: int
    category: str
    family: str
    params: dict[str, Any]
    description: str
    paraphrases: tuple[str, ...]
    key_terms: tuple[str, ...]
    split: str
    source: str = field(default="", compare=False)
    training: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    grid: str = ""       # the grid entry's id, for a behavior expanded from one (data/grids.py)
    instance: str = ""   # its instance's name

    @property
    def truths(self) -> list[str]:
        return [self.description, *self.paraphrases]

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "Behavior":
        """Rebuild from `behavior_record` (data/behaviors/<id>/behavior.json): stages downstream of
        behavior_data read that record, so they depend on the built dataset, not on the catalog file."""
        return cls(id=rec["id"], version=int(rec["version"]), category=rec["category"], family=rec["family"],
                   params=rec["params"], description=rec["description"], paraphrases=tuple(rec["paraphrases"]),
                   key_terms=tuple(rec["key_terms"]), split=rec["split"], training=dict(rec.get("training") or {}),
                   thresholds=dict(rec.get("thresholds") or {}), grid=rec.get("grid", ""), instance=rec.get("instance", ""))


def _need(cond: bool, file, entry, fld, rule):
    if not cond:
        raise ValidationError(file, fld, rule, entry)


def _str_list(raw, file, entry, fld, min_len):
    _need(isinstance(raw, list) and all(isinstance(s, str) and s.strip() for s in raw), file, entry, fld,
          "must be a list of non-empty strings")
    _need(len(raw) >= min_len, file, entry, fld, f"needs at least {min_len} item(s)")
    return tuple(s.strip() for s in raw)


def parse_entry(raw: Any, file: str | Path) -> Behavior:
    from iaforge.data.families import UnknownFamily, get_family

    file = str(file)
    _need(isinstance(raw, dict), file, None, "<root>", "an entry must be a mapping")
    entry = raw.get("id") if isinstance(raw.get("id"), str) else None
    _need("grid" not in raw, file, entry, "grid", "a grid entry expands into many behaviors: load it with load_entries")
    unknown = sorted(set(raw) - _FIELDS)
    _need(not unknown, file, entry, unknown[0] if unknown else "", f"unknown field; allowed: {', '.join(sorted(_FIELDS))}")
    _need(isinstance(raw.get("id"), str) and _ID.match(raw["id"]), file, entry, "id",
          "required; lowercase letters, digits and '_', 3-64 chars, starting with a letter")
    _need(isinstance(raw.get("version"), int) and raw["version"] >= 1, file, entry, "version", "required; an integer >= 1")
    _need(raw.get("category") in CATEGORIES, file, entry, "category", f"must be one of {', '.join(CATEGORIES)}")
    _need(raw.get("split") in SPLITS, file, entry, "split", f"must be one of {', '.join(SPLITS)}")
    _need(isinstance(raw.get("description"), str) and len(raw["description"].strip()) >= 10, file, entry,
          "description", "required; a first-person sentence of at least 10 characters")
    paraphrases = _str_list(raw.get("paraphrases", []), file, entry, "paraphrases", 1)
    key_terms = _str_list(raw.get("key_terms", []), file, entry, "key_terms", 1)
    params = raw.get("params", {})
    _need(isinstance(params, dict), file, entry, "params", "must be a mapping")
    try:
        fam = get_family(raw.get("family"))
    except UnknownFamily as exc:
        raise ValidationError(file, "family", exc.rule, entry) from None
    _need(raw["category"] in fam.categories, file, entry, "family",
          f"family '{fam.name}' does not belong to category '{raw['category']}' (allowed: {', '.join(fam.categories)})")
    try:
        params = fam.validate(params)
    except ValueError as exc:
        raise ValidationError(file, f"params.{exc.args[0]}", exc.args[1], entry) from None
    training = raw.get("training", {}) or {}
    _need(isinstance(training, dict), file, entry, "training", "must be a mapping")
    for k, v in training.items():
        _need(k in _TRAINING, file, entry, f"training.{k}", f"unknown key; allowed: {', '.join(_TRAINING)}")
        typ, lo, hi = _TRAINING[k]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (typ is float or isinstance(v, int)) and lo <= v <= hi
        _need(ok, file, entry, f"training.{k}", f"must be a {typ.__name__} in [{lo}, {hi}]")
    thresholds = raw.get("thresholds", {}) or {}
    _need(isinstance(thresholds, dict), file, entry, "thresholds", f"must be a mapping of {', '.join(_THRESHOLDS)}")
    for k, v in thresholds.items():
        _need(k in _THRESHOLDS, file, entry, f"thresholds.{k}", f"unknown key; allowed: {', '.join(_THRESHOLDS)}")
        _need(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, file, entry, f"thresholds.{k}",
              "must be a number in [0, 1]")
    return Behavior(raw["id"], raw["version"], raw["category"], fam.name, params, raw["description"].strip(),
                    paraphrases, key_terms, raw["split"], source=file, training=dict(training),
                    thresholds={k: float(v) for k, v in thresholds.items()})


def load_entries(path: str | Path, instance: str | None = None) -> list[Behavior]:
    """The behaviors of one catalog file: one for a plain entry, one per instance for a grid entry (or only
    `instance`, by name or slug)."""
    from iaforge.data.grids import SEP, expand_raw

    path = Path(path)
    if not path.is_file():
        raise ValidationError(path, "<file>", "catalog file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(path, "<yaml>", f"not valid YAML ({exc})") from None
    if isinstance(raw, dict) and "grid" in raw:
        gid = raw.get("id")
        _need(isinstance(gid, str) and bool(_ID.match(gid)) and SEP not in gid, str(path), None, "id",
              f"required; lowercase letters, digits and '_' (no '{SEP}'), 3-64 chars, starting with a letter")
        if gid != path.stem:
            raise ValidationError(path, "id", f"must equal the file name stem '{path.stem}'", gid)
        return [replace(parse_entry(one, path), grid=gid, instance=name) for name, one in expand_raw(raw, str(path), only=instance)]
    b = parse_entry(raw, path)
    if b.id != path.stem:
        raise ValidationError(path, "id", f"must equal the file name stem '{path.stem}'", b.id)
    if instance is not None:
        raise ValidationError(path, "instance", f"only a grid entry has instances (asked for {instance!r})", b.id)
    return [b]


def load_entry_file(path: str | Path, instance: str | None = None) -> Behavior:
    """One behavior: a plain entry, or one instance of a grid entry (params.yaml `behaviors.<id>.instance`)."""
    found = load_entries(path, instance)
    if found[0].grid and instance is None:
        raise ValidationError(path, "instance", "a grid entry: name one of its instances (behaviors.<id>.instance "
                              "in params.yaml)", found[0].grid)
    return found[0]


def load_catalog(paths: list[str | Path]) -> dict[str, Behavior]:
    """Every *.yaml under the given files or folders, grid entries expanded (one behavior per instance);
    duplicate ids are an error."""
    found: dict[str, Behavior] = {}
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ValidationError(p, "catalog.paths", "path does not exist")
        files = sorted(p.rglob("*.yaml")) if p.is_dir() else [p]
        for f in files:
            for b in load_entries(f):
                if b.id in found:
                    raise ValidationError(f, "id", f"duplicate id, also defined in {found[b.id].source}", b.id)
                found[b.id] = b
    return found
