"""dvc.yaml is the single truth for what each stage depends on: every iaforge module a stage script can import
(directly or through the library, lazily or not) must be a dep of that stage, or `dvc repro` would keep a stale
artifact after a change to that module. The import graph is read statically (ast), so function-level imports count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Modules that cannot change what any stage computes, so editing them must not rerun the pipeline:
# error types and messages, the stage wrapper that prints them, atomic writing, JSON-schema checks of
# outputs already computed, and package markers.
NOT_DEPS = {
    "src/iaforge/__init__.py",
    "src/iaforge/core/errors.py",
    "src/iaforge/core/stagekit.py",
    "src/iaforge/core/fsio.py",
    "src/iaforge/core/schemas.py",
}


def module_file(name: str) -> Path | None:
    """The file of an `iaforge...` module name, or None when the name is an attribute, not a module."""
    base = SRC / Path(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_files(path: Path) -> set[Path]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if path.is_relative_to(SRC):
        rel = path.relative_to(SRC).with_suffix("")
        package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    else:
        package = []
    out: set[Path] = set()

    def add(name: str) -> None:
        # `import a.b.c` also runs a/__init__ and a/b/__init__
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            f = module_file(".".join(parts[:i]))
            if f is not None:
                out.add(f)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "iaforge":
                    add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "iaforge":
                continue
            add(mod)
            for a in node.names:  # `from iaforge.x import submodule`
                if module_file(f"{mod}.{a.name}") is not None:
                    add(f"{mod}.{a.name}")
    return out


def is_marker(path: Path) -> bool:
    """An __init__.py that only marks a package (a docstring at most) computes nothing."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(script: Path) -> set[str]:
    seen: set[Path] = set()
    todo = [script]
    while todo:
        f = todo.pop()
        for g in imported_files(f):
            if g not in seen:
                seen.add(g)
                todo.append(g)
    return {g.relative_to(ROOT).as_posix() for g in seen if not is_marker(g)}


def stages() -> dict[str, dict]:
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: (s["do"] if "foreach" in s else s) for name, s in raw.items()}


def stage_script(stage: dict) -> Path:
    cmd = stage["cmd"].split()
    scripts = [c for c in cmd if c.startswith("stages/") and c.endswith(".py")]
    assert len(scripts) == 1, f"cannot find the stage script in {stage['cmd']!r}"
    return ROOT / scripts[0]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_imported_code(name):
    stage = stages()[name]
    deps = [d for d in stage.get("deps", []) if isinstance(d, str)]
    script = stage_script(stage)
    assert covered(script.relative_to(ROOT).as_posix(), deps), f"{name}: its own script is not a dep"
    missing = sorted(f for f in closure(script) - NOT_DEPS if not covered(f, deps))
    assert not missing, f"dvc.yaml stage '{name}' imports code that is not in its deps: add\n" + "\n".join(
        f"      - {m}" for m in missing)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_name_no_code_the_stage_never_imports(name):
    """The other direction: a dep on a source file the stage cannot import reruns it for nothing."""
    stage = stages()[name]
    script = stage_script(stage)
    used = closure(script) | {script.relative_to(ROOT).as_posix()}
    stale = [d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith(("src/", "stages/"))
             and not any(u == d or u.startswith(d.rstrip("/") + "/") for u in used)]
    assert not stale, f"dvc.yaml stage '{name}' depends on code it never imports: {stale}"


def test_closure_sees_lazy_and_transitive_imports(tmp_path):
    # evaluate's stage imports the library lazily inside main(); the walker must still find the judge
    files = closure(ROOT / "stages" / "evaluate.py")
    assert "src/iaforge/evaluation/evaluate.py" in files
    assert "src/iaforge/judging/judge.py" in files
    assert "src/iaforge/core/chat.py" in files  # through generation, two levels down


def code_deps(stage: dict) -> list[str]:
    """The src/ deps a stage needs, a whole package folder where the stage imports all of it."""
    files = closure(stage_script(stage)) - NOT_DEPS
    out = set(files)
    for d in {str(Path(f).parent) for f in files}:
        folder = [p.relative_to(ROOT).as_posix() for p in (ROOT / d).glob("*.py") if not is_marker(p)]
        if d.count("/") >= 3 and folder and set(folder) <= files:  # a subpackage below a phase, e.g. families
            out = {f for f in out if not f.startswith(d + "/")} | {d}
    return sorted(out)


def fix_dvc_yaml() -> None:
    """Rewrite the `- src/...` lines of every stage's deps with the import closure (comments and order of
    the other deps kept): `python tests/test_dvc_deps.py --fix`."""
    lines = (ROOT / "dvc.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    want = {name: code_deps(s) for name, s in stages().items()}
    out, stage, in_deps = [], None, False
    for line in lines:
        s = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and s.endswith(":") and not s.startswith("-"):
            stage = s[:-1]
        if s == "deps:":
            in_deps, dep_indent = True, indent
            out.append(line)
            continue
        if in_deps and s.startswith("- "):
            if s.startswith("- src/"):
                if want.get(stage) is not None:
                    out += [" " * indent + f"- {d}\n" for d in want.pop(stage)]
                continue
        elif in_deps and s and not s.startswith("#"):
            in_deps = False
        out.append(line)
    (ROOT / "dvc.yaml").write_text("".join(out), encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--fix" in sys.argv:
        fix_dvc_yaml()
