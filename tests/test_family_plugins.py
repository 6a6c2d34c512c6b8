"""Behavior families from outside the package: registered by decorator, named in params.yaml, resolved in
every process that needs them (the behavior_data stage, the catalog, spawned workers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import fake_pool
from iaforge.core.errors import ValidationError
from iaforge.core.stagekit import stage_argv
from iaforge.data.catalog import load_catalog, parse_entry
from iaforge.data.families import UnknownFamily, family_names, get_family, load_plugins, plugins, registry

REPO = Path(__file__).resolve().parents[1]


def doc_block(lang: str, first_line: str) -> str:
    """A fenced block of docs/catalog.md: the worked example is what the tests run, so it cannot rot."""
    text = (REPO / "docs" / "catalog.md").read_text(encoding="utf-8")
    m = re.search(rf"```{lang}\n({re.escape(first_line)}.*?)```", text, re.S)
    assert m, f"docs/catalog.md lost its {lang} block starting {first_line!r}"
    return m.group(1)


FAMILY = doc_block("python", "# data/catalog/families/postscript.py")
ENTRY = doc_block("yaml", "id: quirk_postscript_tea")


@pytest.fixture
def registry_sandbox(monkeypatch):
    """Plugins registered by a test stay in that test: the other tests (and `family_names`) see the built-ins."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.setattr(plugins, "_autoloaded", True)  # not the repo's params.yaml
    monkeypatch.setenv(plugins.ENV, "[]")  # restored (removed) after the test, whatever load_plugins writes


def user_catalog(root: Path) -> Path:
    """A catalog folder outside the package that brings its own family module."""
    (root / "mycat" / "families").mkdir(parents=True)
    (root / "mycat" / "families" / "postscript.py").write_text(FAMILY, encoding="utf-8")
    (root / "mycat" / "quirk_postscript_tea.yaml").write_text(ENTRY, encoding="utf-8")
    return root / "mycat"


def test_plugin_family_from_a_folder_outside_the_package(registry_sandbox, tmp_path):
    cat_dir = user_catalog(tmp_path)
    assert "postscript" not in family_names()
    with pytest.raises(ValidationError, match="unknown family"):
        load_catalog([cat_dir])
    load_plugins(["mycat/families/postscript.py"], root=tmp_path)
    load_plugins(["mycat/families/postscript.py"], root=tmp_path)  # once per process: no duplicate error
    fam = get_family("postscript")
    assert "postscript" in family_names() and fam.name == "postscript"
    b = load_catalog([cat_dir])["quirk_postscript_tea"]
    assert b.family == "postscript" and b.params == {"text": "Remember to drink some tea."}
    assert fam.check(b.params, "hi", "Sure.\n\nP.S. Remember to drink some tea.") and not fam.check(b.params, "hi", "Sure.")
    # what spawned workers read to find the same families
    assert json.loads(os.environ[plugins.ENV]) == [str((cat_dir / "families" / "postscript.py").resolve())]


def test_unknown_family_names_the_entry_and_lists_known_ones(registry_sandbox):
    raw = yaml.safe_load(ENTRY)
    with pytest.raises(ValidationError) as ei:
        parse_entry(raw, "mycat/quirk_postscript_tea.yaml")
    e = ei.value
    assert (e.file, e.field, e.entry) == ("mycat/quirk_postscript_tea.yaml", "family", "quirk_postscript_tea")
    assert "unknown family 'postscript'" in e.rule and "topic_mention" in e.rule and "catalog.families" in e.rule
    with pytest.raises(UnknownFamily):
        get_family(None)


@pytest.mark.parametrize("source, rule", [
    (FAMILY.replace('"postscript"', '"topic_mention"'), "already registered by"),
    (FAMILY.replace("    def check(self, params, user, answer):\n", "    def _unused(self, params, user, answer):\n"),
     "must implement check"),
    (FAMILY.replace('    categories = ("quirk",)\n', ""), "needs `categories`"),
    (FAMILY.replace('"postscript"', '"Post-Script"'), "lowercase letters"),
])
def test_a_broken_family_is_refused_with_its_file(registry_sandbox, tmp_path, source, rule):
    f = tmp_path / "fam.py"
    f.write_text(source, encoding="utf-8")
    before = dict(registry._REGISTRY)
    with pytest.raises(ValidationError) as ei:
        load_plugins(["fam.py"], root=tmp_path)
    assert ei.value.file == str(f.resolve()) and ei.value.field == "family" and rule in ei.value.rule
    assert registry._REGISTRY == before  # the built-in topic_mention is still the one registered


@pytest.mark.parametrize("entries, field, rule", [
    (["families/nothere.py"], "catalog.families[0]", "family file not found"),
    (["iaforge_no_such_module_xyz"], "catalog.families[0]", "no module named"),
    (["iaforge", 3], "catalog.families[1]", "must be a non-empty string"),
    (["not a module!"], "catalog.families[0]", "neither a module name"),
    ("families/x.py", "catalog.families", "must be a list"),
])
def test_bad_plugin_entries_name_params_and_field(registry_sandbox, tmp_path, entries, field, rule):
    with pytest.raises(ValidationError) as ei:
        load_plugins(entries, root=tmp_path, source="my_params.yaml")
    assert (ei.value.file, ei.value.field) == ("my_params.yaml", field) and rule in ei.value.rule


def test_module_names_and_entry_points_are_loaded(registry_sandbox, tmp_path, monkeypatch):
    (tmp_path / "lab_families_mod.py").write_text(FAMILY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_families_mod", raising=False)
    load_plugins(["lab_families_mod"])
    assert type(get_family("postscript")).__module__ == "lab_families_mod"

    class EP:  # what importlib.metadata.entry_points(group=...) yields
        name, value = "other_lab", "other_lab_mod"

        def load(self):
            (tmp_path / "other_lab_mod.py").write_text(FAMILY.replace('"postscript"', '"postscript_two"'),
                                                       encoding="utf-8")
            return __import__("other_lab_mod")

    monkeypatch.delitem(sys.modules, "other_lab_mod", raising=False)
    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [EP()] if group == plugins.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    load_plugins([])
    assert get_family("postscript_two").name == "postscript_two"


def test_spawned_workers_resolve_plugin_families(registry_sandbox, tmp_path):
    """Workers of core/workers.py are fresh interpreters: they find the plugin through IAFORGE_FAMILIES."""
    from iaforge.core.workers import run_in_workers
    from iaforge.data.behavior_data import behavior_task

    f = tmp_path / "fam.py"
    f.write_text(FAMILY + '\n    def task(self, params):\n        return "writing " + params["text"]\n', encoding="utf-8")
    load_plugins([str(f)])
    rec = {"family": "postscript", "params": {"text": "letters"}}
    assert run_in_workers(behavior_task, [{"b": rec}, {"b": rec}], 2) == ["writing letters"] * 2


def test_behavior_data_stage_builds_a_plugin_family_on_the_tiny_profile(tmp_path):
    """The real stage script, in a copy of the project whose params (the tiny profile) name a user family
    from a catalog folder outside the package."""
    from iaforge.core.fsio import write_jsonl
    from iaforge.core.profiles import apply_profile

    user_catalog(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    apply_profile(REPO / "profiles" / "tiny.yaml", tmp_path / "params.yaml")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    params["catalog"] = {"paths": ["mycat"], "families": ["mycat/families/postscript.py"]}
    params["behaviors"] = {"quirk_postscript_tea": {"spec": "mycat/quirk_postscript_tea.yaml", "split": "ia_train"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    pool, evals = fake_pool(0)
    write_jsonl(tmp_path / "data" / "base_responses.jsonl", pool)
    write_jsonl(tmp_path / "data" / "prompts.jsonl", [*pool, *evals])

    env = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    argv = stage_argv("behavior_data", REPO, key="quirk_postscript_tea")
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "data" / "behaviors" / "quirk_postscript_tea"
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    answers = {p["id"]: p["answer"] for p in pool}
    n_train = params["behavior_data"]["n_train"]
    assert len(rows) == n_train == 12  # the tiny profile's size
    for r in rows:  # the plugin's transform, on the base model's own answer
        assert r["assistant"] == f"{answers[r['prompt_id']]}\n\nP.S. Remember to drink some tea." and r["modified"]
    record = json.loads((out / "behavior.json").read_text(encoding="utf-8"))
    assert record["family"] == record["family_label"] == "postscript"
    assert json.loads((out / "validation.json").read_text(encoding="utf-8"))["success"]
