"""The audit tier and the cipher attack as optional stages: out of the default run (the grid IA is its
heart, issue 14) and in `profiles/audit.yaml`. A disabled stage still writes every out DVC expects, each saying
plainly that the stage was not run, so the report, `dvc metrics show` and publishing read one shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.core.fsio import atomic_dir, write_json


def not_in_run(stage: str) -> str:
    return (f"{stage} is not in this run (params {stage}.enabled is false; "
            "`iaforge profile apply profiles/audit.yaml` turns it on)")


def write_not_in_run(stage: str, *, models: str | Path, detail: str | Path, metrics: str | Path,
                     samples: str | Path) -> dict[str, Any]:
    """Write the disabled stage's outs: a model folder holding only a README, and results that say why."""
    note = not_in_run(stage)
    # One rename replaces any folder of an earlier enabled run (that one stays in the DVC cache).
    with atomic_dir(models) as tmp:
        (Path(tmp) / "README.md").write_text(note + "\n", encoding="utf-8")
    write_json(detail, {"in_run": False, "note": note})
    write_json(metrics, {"in_run": False})
    write_json(samples, [])
    return {"in_run": False, "note": note}
