"""The package tree tells the pipeline's story: a module imports only from core, its own phase and earlier
phases, so the data -> variants -> IA -> evaluation -> audit tier -> report flow cannot tangle back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "iaforge"
ORDER = ["core", "data", "variants", "judging", "ia", "evaluation", "audit_tier", "report", "publish"]
TOP_LEVEL = {"cli"}  # the command line may reach every phase


def phase_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "iaforge" or len(parts) < 2:
        return None
    return parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_every_module_lives_in_a_phase():
    loose = sorted(p.name for p in PKG.glob("*.py") if p.stem not in TOP_LEVEL | {"__init__"})
    assert not loose, f"modules outside the phase packages: {loose}"
    assert sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(ORDER)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_go_backwards(path):
    rel = path.relative_to(PKG)
    if len(rel.parts) == 1:
        return  # cli.py and the package marker
    own = ORDER.index(rel.parts[0])
    bad = [f"line {n}: {m}" for n, m in imports(path)
           if (ph := phase_of(m)) in ORDER and ORDER.index(ph) > own]
    assert not bad, f"{rel} ({rel.parts[0]}) imports a later phase: {bad}"


def test_evaluation_imports_no_ia_training_code():
    for path in (PKG / "evaluation").rglob("*.py"):
        bad = [m for _, m in imports(path) if m.startswith("iaforge.ia")]
        assert not bad, f"{path.name} imports IA training code: {bad}"
