"""Shared plumbing for the thin scripts in stages/: paths from the command line, clean errors, quiet libraries."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from iaforge.core.errors import IaforgeError, ValidationError


def quiet_env() -> None:
    # Offline and quiet unless the user asked otherwise: stages must never reach the network by default.
    for k, v in {"GX_ANALYTICS_ENABLED": "False", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false",
                 "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}.items():
        os.environ.setdefault(k, v)


def main(fn: Callable[[], None]) -> None:
    """Run a stage body; an IaforgeError becomes one readable line and exit status 1, not a traceback."""
    import time

    quiet_env()
    t0 = time.perf_counter()
    try:
        fn()
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    # The script and its ids (`variant quirk_x`), not the dozen paths that follow them.
    head = list(itertools.takewhile(lambda a: not a.startswith("-"), sys.argv[1:]))
    name = " ".join([os.path.splitext(os.path.basename(sys.argv[0]))[0], *head])
    # Wall time goes to the log, never into a DVC-tracked output (it would change hashes every run).
    print(f"[iaforge] stage {name}: {time.perf_counter() - t0:.1f} s wall", file=sys.stderr)


def progress_enabled() -> bool:
    return os.environ.get("IAFORGE_PROGRESS", "1") != "0"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming dvc.yaml, not argparse's usage block and exit status 2
        raise ValidationError("dvc.yaml", f"stages.{self.prog}.cmd", message)


class StageArgs:
    """The paths one stage reads and writes, all given on its command line by dvc.yaml (the one place that
    names them, next to the deps and outs DVC tracks): `--base models/base --out-metrics metrics/eval.json`.

    ids are positional (`${key}` of a foreach stage); deps become `--name`, outs `--out-name`; names in `many`
    take one or more paths. Every option is required and none has a default, so a path cannot silently come
    from anywhere but dvc.yaml."""

    def __init__(self, *, ids: Sequence[str] = (), deps: Sequence[str] = (), outs: Sequence[str] = (),
                 many: Sequence[str] = ()):
        self.ids, self.deps, self.outs, self.many = list(ids), list(deps), list(outs), set(many)
        unknown = self.many - set(self.deps) - set(self.outs)
        if unknown:
            raise ValueError(f"many names no dep or out: {sorted(unknown)}")

    def parser(self, prog: str) -> argparse.ArgumentParser:
        ap = _Parser(prog=prog, add_help=False, allow_abbrev=False)
        for i in self.ids:
            ap.add_argument(i)
        for flag, name in [(f"--{d}", d) for d in self.deps] + [(f"--out-{o}", o) for o in self.outs]:
            ap.add_argument(flag, required=True, nargs="+" if name in self.many else None)
        return ap

    def parse(self, argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
        prog = prog or os.path.splitext(os.path.basename(sys.argv[0]))[0]
        return self.parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))


def split_files(files: Sequence[str], splits: Sequence[str], option: str, stage: str) -> dict[str, Path]:
    """`metrics/implantation/ia_train.json ...` -> {"ia_train": path}: exactly one `<split>.json` per split,
    all in one folder (the per-split layout that variants/index.py reads)."""
    paths = {Path(f).stem: Path(f) for f in files}
    field = f"stages.{stage}.cmd"
    if sorted(paths) != sorted(splits) or len(paths) != len(files):
        raise ValidationError("dvc.yaml", field, f"{option} must name one <split>.json for each of "
                              f"{', '.join(sorted(splits))} (got {' '.join(map(str, files))})")
    if len({p.parent for p in paths.values()}) != 1:
        raise ValidationError("dvc.yaml", field, f"{option}: the per-split files must share one folder")
    return paths


def split_root(folder: str, split: str, option: str, stage: str) -> Path:
    """`models/variants/dpo` -> `models/variants`: the library indexes variants by <root>/<split>/<id>."""
    p = Path(folder)
    if p.name != split:
        raise ValidationError("dvc.yaml", f"stages.{stage}.cmd", f"{option} must be the {split!r} split's folder "
                              f"(<root>/{split}), got {folder}")
    return p.parent


def stage_argv(stage: str, repo: str | Path, key: str | None = None, item: dict | None = None) -> list[str]:
    """The command dvc.yaml runs for `stage` (a foreach stage's ${key} and ${item.x} filled in), as an argv
    that runs from any folder: for tests and for running one stage by hand with exactly DVC's paths."""
    import re
    import shlex

    import yaml

    repo = Path(repo)
    spec = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    cmd = spec["do"]["cmd"] if "foreach" in spec else spec["cmd"]
    values = {"key": key, **{f"item.{k}": v for k, v in (item or {}).items()}}

    def fill(m: re.Match) -> str:
        if values.get(m.group(1)) is None:
            raise ValueError(f"dvc.yaml stage {stage}: no value for ${{{m.group(1)}}}")
        return str(values[m.group(1)])

    argv = shlex.split(re.sub(r"\$\{([^}]+)\}", fill, cmd))
    if argv[0] != "python" or not argv[1].startswith("stages/"):
        raise ValueError(f"dvc.yaml stage {stage}: expected `python stages/<script>.py ...`, got {cmd!r}")
    return [sys.executable, str(repo / argv[1]), *argv[2:]]
