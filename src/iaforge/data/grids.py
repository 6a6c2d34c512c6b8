"""Family grids: one catalog entry, many behaviors, one per instance of a shared list (topics, phrases, ...).

An entry with a `grid:` block names an instances file (`data/grids/*.yaml`), binds instance fields into its
params, and may use `{field}` placeholders in its description, paraphrases, key terms and params. It expands
to one behavior per instance, with the id `<entry id>__<slug of the instance's name>`.

Each instance's split comes from a hash of (entry id, instance name) alone: the splits never share an
instance, the same file gives the same splits on every machine, and appending instances never moves an old
one. Which instances a run trains on is chosen by `iaforge catalog sync --grid` (`select`), so
`params.yaml: behaviors` stays the one list DVC iterates over.
"""

from __future__ import annotations

import copy
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from iaforge.core.errors import ValidationError

SPLITS = ("ia_train", "dpo", "heldout")  # catalog.SPLITS; the catalog imports this module, not the reverse
GRID_FIELDS = ("instances", "bind", "splits")
DEFAULT_SPLITS = {"ia_train": 0.6, "dpo": 0.1, "heldout": 0.3}
SEP = "__"  # between the entry id and the instance slug; catalog ids never contain it
_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def slug(name: str) -> str:
    """'the Eiffel Tower' -> 'the_eiffel_tower'; ids must stay within the catalog's id rule."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def instance_split(entry_id: str, name: str, fractions: dict[str, float]) -> str:
    """The split of one instance: a sha256 of (entry id, name) mapped onto the cumulative fractions.
    Depends on nothing else, so it is stable across machines, Python versions and appended instances."""
    u = int.from_bytes(hashlib.sha256(f"{entry_id}\x00{name}".encode()).digest()[:8], "big") / 2**64
    acc = 0.0
    for s in SPLITS:
        acc += fractions.get(s, 0.0)
        if u < acc:
            return s
    return [s for s in SPLITS if fractions.get(s, 0.0) > 0][-1]  # u within rounding of 1.0


@lru_cache(maxsize=32)
def _read_instances(path: str, mtime_ns: int) -> tuple[str, tuple[dict, ...]]:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(p, "<yaml>", f"not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or set(raw) != {"key", "instances"}:
        raise ValidationError(p, "<root>", "an instances file is a mapping with exactly 'key' and 'instances'")
    key = raw["key"]
    if not isinstance(key, str) or not _FIELD.match(key):
        raise ValidationError(p, "key", "the instance field that names each instance (lowercase identifier)")
    items = raw["instances"]
    if not isinstance(items, list) or not items:
        raise ValidationError(p, "instances", "must be a non-empty list of mappings")
    seen: dict[str, int] = {}
    fields = None
    for i, inst in enumerate(items):
        where = f"instances[{i}]"
        if not isinstance(inst, dict) or not all(isinstance(k, str) and _FIELD.match(k) for k in inst):
            raise ValidationError(p, where, "must be a mapping of lowercase field names")
        name = inst.get(key)
        if not isinstance(name, str) or not slug(name):
            raise ValidationError(p, f"{where}.{key}", "required; a name with at least one letter or digit")
        if fields is None:
            fields = set(inst)
        elif set(inst) != fields:
            raise ValidationError(p, where, f"every instance needs the same fields ({', '.join(sorted(fields))})")
        for k, v in inst.items():
            ok = (isinstance(v, str) and v.strip()) or (isinstance(v, list) and v and all(isinstance(s, str) and s.strip() for s in v))
            if not ok:
                raise ValidationError(p, f"{where}.{k}", "must be a non-empty string or a non-empty list of strings")
        s = slug(name)
        if s in seen:
            raise ValidationError(p, f"{where}.{key}", f"duplicate instance '{name}' (same id as instances[{seen[s]}])")
        seen[s] = i
    return key, tuple(items)


def load_instances(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(name field, instances) of an instances file, validated; each instance is a fresh copy."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(p, "<file>", "instances file not found (paths are relative to the repository root)")
    key, items = _read_instances(str(p.resolve()), p.stat().st_mtime_ns)
    return key, copy.deepcopy(list(items))


def _fill(value: Any, inst: dict[str, Any]) -> Any:
    """Placeholders replaced: "{f}" inside a string by a string field; a list item that is exactly "{f}" by
    the items of a list field. Unknown names stay as they are (families use braces too, e.g. "{url}")."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: inst[m.group(1)] if isinstance(inst.get(m.group(1)), str) else m.group(0), value)
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            m = _PLACEHOLDER.fullmatch(v) if isinstance(v, str) else None
            if m and isinstance(inst.get(m.group(1)), list):
                out.extend(inst[m.group(1)])
            else:
                out.append(_fill(v, inst))
        return out
    if isinstance(value, dict):
        return {k: _fill(v, inst) for k, v in value.items()}
    return value


def _bind(params: dict, path: str, value: Any, file: str, entry: str) -> None:
    *parents, last = path.split(".")
    node = params
    for i, part in enumerate(parents):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ValidationError(file, f"grid.bind.{path}", f"params.{'.'.join(parents[:i + 1])} is not a mapping", entry)
        node = nxt
    node[last] = copy.deepcopy(value)


def parse_grid(raw: dict[str, Any], file: str) -> dict[str, Any]:
    """The entry's validated grid block: {instances (path), key, items, bind, splits}."""
    entry = raw.get("id") if isinstance(raw.get("id"), str) else None
    grid = raw.get("grid")

    def need(cond, fld, rule):
        if not cond:
            raise ValidationError(file, fld, rule, entry)

    need(isinstance(grid, dict), "grid", f"must be a mapping with {', '.join(GRID_FIELDS)}")
    unknown = sorted(set(grid) - set(GRID_FIELDS))
    need(not unknown, f"grid.{unknown[0]}" if unknown else "grid", f"unknown field; allowed: {', '.join(GRID_FIELDS)}")
    need("split" not in raw, "split", "a grid entry takes each instance's split from grid.splits; remove 'split'")
    need(isinstance(grid.get("instances"), str) and grid["instances"].endswith((".yaml", ".yml")), "grid.instances",
         "required; the path of an instances .yaml file (e.g. data/grids/topics.yaml)")
    need(Path(grid["instances"]).is_file(), "grid.instances",
         f"{grid['instances']} not found (paths are relative to the repository root)")
    key, items = load_instances(grid["instances"])
    fields = set(items[0])
    bind = grid.get("bind", {}) or {}
    need(isinstance(bind, dict), "grid.bind", "must be a mapping of params paths to instance fields")
    for path, fld in bind.items():
        need(isinstance(path, str) and bool(_PATH.match(path)), f"grid.bind.{path}", "a dotted params path, e.g. behavior.params.topic")
        need(fld in fields, f"grid.bind.{path}", f"unknown instance field {fld!r}; fields: {', '.join(sorted(fields))}")
    splits = grid.get("splits", DEFAULT_SPLITS)
    need(isinstance(splits, dict) and set(splits) <= set(SPLITS) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in splits.values()),
        "grid.splits", f"a mapping of {', '.join(SPLITS)} to fractions in [0, 1]")
    need(abs(sum(splits.values()) - 1.0) < 1e-9, "grid.splits", f"fractions must sum to 1 (they sum to {sum(splits.values()):g})")
    for fld in ("description", "paraphrases", "key_terms"):
        for name in _PLACEHOLDER.findall(yaml.safe_dump(raw.get(fld, ""))):
            need(name in fields, fld, f"unknown placeholder {{{name}}}; instance fields: {', '.join(sorted(fields))}")
    longest = max(len(slug(i[key])) for i in items)
    need(len(raw["id"]) + len(SEP) + longest <= 64 if entry else True, "id",
         f"too long for its instances: id + '{SEP}' + the longest slug ({longest} chars) must fit in 64")
    return {"instances": grid["instances"], "key": key, "items": items, "bind": dict(bind),
            "splits": {s: float(splits.get(s, 0.0)) for s in SPLITS}}


def expand_raw(raw: dict[str, Any], file: str, only: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(instance name, plain catalog entry) per instance, in the instances file's order; `only` keeps one
    instance (by name or slug). The entries still go through the catalog's own validation."""
    file = str(file)
    entry = raw.get("id") if isinstance(raw.get("id"), str) else None
    g = parse_grid(raw, file)
    items = g["items"]
    if only is not None:
        items = [i for i in items if only in (i[g["key"]], slug(i[g["key"]]))]
        if not items:
            raise ValidationError(file, "instance", f"no instance {only!r} in {g['instances']}", entry)
    body = {k: v for k, v in raw.items() if k != "grid"}
    out = []
    for inst in items:
        name = inst[g["key"]]
        one = _fill(copy.deepcopy(body), inst)
        one["params"] = one.get("params") if isinstance(one.get("params"), dict) else {}
        for path, fld in g["bind"].items():
            _bind(one["params"], path, inst[fld], file, entry)
        one["id"] = f"{raw['id']}{SEP}{slug(name)}"
        one["split"] = instance_split(raw["id"], name, g["splits"])
        out.append((name, one))
    return out


def parse_counts(text: str) -> tuple[str, dict[str, int]]:
    """'grid_k7_topic=16,2,6' -> ('grid_k7_topic', {ia_train: 16, dpo: 2, heldout: 6}) (`catalog sync --grid`)."""
    entry, sep, nums = text.partition("=")
    parts = nums.split(",")
    if not sep or len(parts) != len(SPLITS) or not all(p.strip().isdigit() for p in parts):
        raise ValidationError("--grid", text, f"expected <grid entry id>=<n {'>,<n '.join(SPLITS)}>, e.g. grid_k7_topic=16,2,6")
    return entry.strip(), dict(zip(SPLITS, (int(p) for p in parts)))


def select(behaviors: list[Any], counts: dict[str, int], where: str = "--grid") -> list[Any]:
    """The first n instances of each split, in the instances file's order (the expansion's order): the same
    counts always pick the same variants, and a larger count only adds to a smaller one's pick."""
    out = []
    for s in SPLITS:
        pool = [b for b in behaviors if b.split == s]
        if counts.get(s, 0) > len(pool):
            raise ValidationError(where, s, f"asks for {counts[s]} instances but the grid has {len(pool)} in this split")
        out += pool[:counts.get(s, 0)]
    return out


def check_instances_under(entry: str | Path, grids: str | Path) -> None:
    """A stage reading a grid entry's instances depends on `grids` (their folder): instances elsewhere would go
    untracked, so they are refused."""
    instances = Path(((yaml.safe_load(Path(entry).read_text(encoding="utf-8")) or {}).get("grid") or {}).get("instances", ""))
    if not instances.resolve().is_relative_to(Path(grids).resolve()):
        raise ValidationError(entry, "grid.instances", f"{instances} lies outside {grids}, the stage's dep")
