"""Families from outside the package: plugin modules that register themselves with `@register_family`.

Three ways in, all imported at most once per process:
- `params.yaml: catalog.families`: importable module names (`my_lab.families`) or paths to .py files,
  relative to the repository root (the folder of params.yaml);
- the `iaforge.families` entry-point group of an installed distribution;
- `IAFORGE_FAMILIES` (a JSON list of module names and absolute paths), which `load_plugins` writes so that
  the `spawn` worker processes of `core/workers.py`, which start from a fresh interpreter, find the same
  families as their parent.

A process that never calls `load_plugins` (a stage other than behavior_data, a worker) gets the plugins on the
first unknown name (`autoload`): from IAFORGE_FAMILIES when set, else from ./params.yaml.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

from iaforge.core.errors import ValidationError

ENTRY_POINT_GROUP = "iaforge.families"
ENV = "IAFORGE_FAMILIES"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

_loaded: list[str] = []  # module names and absolute .py paths, in import order (also what ENV carries)
_entry_points_loaded = False
_autoloaded = False


def _is_path(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or os.sep in entry


def _import_file(path: Path, source: str, fld: str) -> None:
    if not path.is_file():
        raise ValidationError(source, fld, f"family file not found: {path}")
    # A name of its own per file, so two plugins both called families.py do not replace each other.
    name = f"_iaforge_family_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(source, fld, f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered before it runs: dataclasses and pickling look it up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _import_module(name: str, source: str, fld: str) -> None:
    if not _MODULE.match(name):
        raise ValidationError(source, fld, f"{name!r} is neither a module name (my_lab.families) nor a path ending in .py")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):  # the plugin itself is missing, not one of its imports
            raise ValidationError(source, fld, f"no module named {name!r}: install it, put it on PYTHONPATH, "
                                  "or give the file as a path ending in .py") from None
        raise


def load_entry_points() -> None:
    """Import every module (or object) declared under the `iaforge.families` entry-point group, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except ImportError as exc:
            raise ValidationError(f"entry point {ep.name} = {ep.value}", ENTRY_POINT_GROUP,
                                  f"cannot be imported ({exc})") from None


def load_plugins(entries, *, root: str | Path = ".", source: str | Path = "params.yaml") -> None:
    """Import the plugin families named in `entries` (params.yaml `catalog.families`; paths relative to
    `root`) and the entry-point families, each once; call it before loading the catalog. Errors name
    `source` and the entry."""
    source = str(source)
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ValidationError(source, "catalog.families", "must be a list of module names or .py file paths")
    for i, entry in enumerate(entries):
        fld = f"catalog.families[{i}]"
        if not isinstance(entry, str) or not entry.strip():
            raise ValidationError(source, fld, "must be a non-empty string: a module name or a .py file path")
        entry = entry.strip()
        key = str((Path(root) / entry).resolve()) if _is_path(entry) else entry
        if key in _loaded:
            continue
        if _is_path(entry):
            _import_file(Path(key), source, fld)
        else:
            _import_module(key, source, fld)
        _loaded.append(key)
    load_entry_points()
    if _loaded:
        os.environ[ENV] = json.dumps(_loaded)


def autoload() -> None:
    """Once per process: the plugins this process was told about (IAFORGE_FAMILIES, else ./params.yaml) and
    the entry points. Called by `get_family` on an unknown name, so a plugin family resolves in every stage."""
    global _autoloaded
    if _autoloaded:
        return
    _autoloaded = True  # first: a plugin that looks up a family while it is imported must not recurse here
    if ENV in os.environ:
        try:
            entries = json.loads(os.environ[ENV])
        except ValueError:
            raise ValidationError(f"${ENV}", ENV, "must be a JSON list of module names and .py paths") from None
        load_plugins(entries, source=f"${ENV}")
        return
    params = Path("params.yaml")
    entries = []
    if params.is_file():
        from iaforge.core.config import load_params

        entries = (load_params(params).get("catalog") or {}).get("families") or []
    load_plugins(entries, source=params)
