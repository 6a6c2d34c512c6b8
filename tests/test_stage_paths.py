"""dvc.yaml is the one place that names the pipeline's paths: each stage script gets the paths it reads and
writes from its `cmd:` line, and those are exactly the paths DVC tracks for the stage."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from iaforge.core.errors import ValidationError
from iaforge.core.stagekit import StageArgs, split_files, split_root, stage_argv

ROOT = Path(__file__).resolve().parents[1]

# Tracked paths a stage reads without being told on its command line, each because something else names it:
# (stage or "*", path) -> why.
NOT_IN_CMD = {
    # User family plugins: loaded from params catalog.families (docs/catalog.md), a dep like the built-in code.
    ("*", "data/catalog/families"): "params catalog.families",
    # The catalog entry file and the grid files its instance comes from are named by params behaviors.<id>.
    ("behavior_data", "${item.spec}"): "params behaviors.<id>.spec",
    ("behavior_data", "data/grids"): "the catalog entry's grid",
    # The judge every judging stage uses is params `judge` (kind learned: `judge.model`, default models/judge);
    # test_judge_learned checks that each of them depends on it.
    ("*", "models/judge"): "params judge.model",
}
# Question sets stay in params (`<stage>.questions`): they are params deps too, and a question-set experiment is
# a `dvc exp run -S` away. The test below checks that the params value is the dep.
QUESTIONS_FROM_PARAMS = {"ia_sft", "ia_dpo", "evaluate", "audit_tier", "cipher_attack"}
# The learned judge's hand-labelled training sets stay in params (`judge_train.dev_sets`): the judge's manifest
# records them with the rest of its training config. The test below checks that they are the stage's deps.
DEV_SETS_FROM_PARAMS = {"judge_train"}


def stages() -> dict[str, dict]:
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: (s["do"] if "foreach" in s else s) for name, s in raw.items()}


def entries(stage: dict, *kinds: str) -> list[str]:
    """deps/outs/metrics/plots as paths (an entry with options is a one-key mapping)."""
    out = []
    for kind in kinds:
        for e in stage.get(kind, []):
            out.extend([e] if isinstance(e, str) else list(e))
    return out


def under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def cmd_args(stage: dict) -> tuple[str, list[str]]:
    argv = shlex.split(stage["cmd"])
    assert argv[0] == "python" and argv[1].startswith("stages/"), stage["cmd"]
    return argv[1], argv[2:]


def cmd_paths(stage: dict) -> list[str]:
    # Options start with "--" and ids (`${key}`) have no slash; everything else passed is a path.
    return [a for a in cmd_args(stage)[1] if not a.startswith("-") and "/" in a]


def problems(name: str, stage: dict) -> list[str]:
    tracked = entries(stage, "deps", "outs", "metrics", "plots")
    passed = cmd_paths(stage)
    bad = [f"{p} is passed but not a dep/out/metric/plot" for p in passed if not under(p, tracked)]
    for p in entries(stage, "deps", "outs", "metrics", "plots"):
        if p.startswith(("src/", "stages/")) or under(p, passed):
            continue
        if (name, p) in NOT_IN_CMD or ("*", p) in NOT_IN_CMD:
            continue
        if name in QUESTIONS_FROM_PARAMS and p.startswith("data/questions/"):
            continue
        if name in DEV_SETS_FROM_PARAMS and p in yaml.safe_load((ROOT / "params.yaml").read_text())[name]["dev_sets"]:
            continue
        bad.append(f"{p} is tracked but not passed in cmd")
    return bad


@pytest.mark.parametrize("name", sorted(stages()))
def test_cmd_passes_exactly_the_tracked_paths(name):
    assert problems(name, stages()[name]) == []


def test_the_check_catches_an_untracked_path_and_an_unpassed_dep():
    stage = {"cmd": "python stages/x.py --base models/base --other data/secret.jsonl",
             "deps": ["stages/x.py", "models/base", "data/prompts.jsonl"], "outs": [{"metrics/x.json": {"cache": False}}]}
    assert problems("x", stage) == ["data/secret.jsonl is passed but not a dep/out/metric/plot",
                                    "data/prompts.jsonl is tracked but not passed in cmd",
                                    "metrics/x.json is tracked but not passed in cmd"]


def test_questions_left_in_params_are_the_stage_deps():
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for name in sorted(QUESTIONS_FROM_PARAMS):
        deps = [d for d in entries(stages()[name], "deps") if d.startswith("data/questions/")]
        assert deps == [params[name]["questions"]], name


def test_judge_dev_sets_left_in_params_are_the_stage_deps():
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for name in sorted(DEV_SETS_FROM_PARAMS):
        deps = [d for d in entries(stages()[name], "deps") if d.startswith("data/judge/") and "calibration" not in d]
        assert deps == params[name]["dev_sets"], name


def _script_args(script: str) -> StageArgs:
    spec = importlib.util.spec_from_file_location(f"_stage_{Path(script).stem}", ROOT / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # the scripts import only stagekit at module level; the library loads in run()
    return mod.ARGS


@pytest.mark.parametrize("name", sorted(stages()))
def test_script_accepts_its_cmd(name):
    script, args = cmd_args(stages()[name])
    ns = _script_args(script).parse(args, prog=name)
    flat = [x for v in vars(ns).values() for x in (v if isinstance(v, list) else [v])]
    assert sorted(flat) == sorted(a for a in args if not a.startswith("--"))


def test_no_stage_script_names_a_path():
    literal = re.compile(r"""[fbr]?["'](models|data|metrics|reports)/""")
    found = [f"{p.name}:{i}: {line.strip()}" for p in sorted((ROOT / "stages").glob("*.py"))
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if literal.search(line)]
    assert found == []


def test_missing_or_unknown_option_is_one_line_naming_dvc_yaml():
    args = StageArgs(ids=["behavior"], deps=["base"], outs=["model"])
    ns = args.parse(["b1", "--base", "models/base", "--out-model", "models/variants/x/b1"], prog="variant")
    assert (ns.behavior, ns.base, ns.out_model) == ("b1", "models/base", "models/variants/x/b1")
    with pytest.raises(ValidationError, match=r"dvc.yaml: field 'stages.variant.cmd': .*--out-model"):
        args.parse(["b1", "--base", "models/base"], prog="variant")
    with pytest.raises(ValidationError, match="unrecognized arguments: --extra"):
        args.parse(["b1", "--base", "b", "--out-model", "m", "--extra", "x"], prog="variant")


def test_split_helpers_refuse_a_layout_the_library_cannot_read():
    files = ["metrics/implantation/ia_train.json", "metrics/implantation/heldout.json"]
    assert split_files(files, ["heldout", "ia_train"], "--measured", "evaluate") == {
        "ia_train": Path(files[0]), "heldout": Path(files[1])}
    with pytest.raises(ValidationError, match="one <split>.json for each of dpo, heldout, ia_train"):
        split_files(files, ["ia_train", "heldout", "dpo"], "--measured", "evaluate")
    with pytest.raises(ValidationError, match="share one folder"):
        split_files(["a/ia_train.json", "b/heldout.json"], ["ia_train", "heldout"], "--measured", "evaluate")
    assert split_root("models/variants/dpo", "dpo", "--variants", "ia_dpo") == Path("models/variants")
    with pytest.raises(ValidationError, match="'dpo' split's folder"):
        split_root("models/variants/heldout", "dpo", "--variants", "ia_dpo")


def test_stage_argv_fills_foreach_values_and_runs_from_anywhere():
    argv = stage_argv("variant", ROOT, key="b1", item={"split": "heldout"})
    assert argv[:3] == [sys.executable, str(ROOT / "stages/variant.py"), "b1"]
    assert "models/variants/heldout/b1" in argv and not any("${" in a for a in argv)
    with pytest.raises(ValueError, match=r"no value for \$\{item.split\}"):
        stage_argv("variant", ROOT, key="b1")
