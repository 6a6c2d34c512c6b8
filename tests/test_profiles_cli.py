import shutil

import yaml

from iaforge.cli import main
from iaforge.core.profiles import apply_profile, deep_merge


def test_deep_merge_replaces_behaviors_only():
    base = {"variant": {"train": {"lr": 1, "epochs": 3}}, "behaviors": {"a": {}, "b": {}}}
    out = deep_merge(base, {"variant": {"train": {"epochs": 1}}, "behaviors": {"c": {}}})
    assert out["variant"]["train"] == {"lr": 1, "epochs": 1}
    assert out["behaviors"] == {"c": {}}


def test_tiny_profile_applies(repo_root, tmp_path):
    p = tmp_path / "params.yaml"
    shutil.copy(repo_root / "params.yaml", p)
    merged = apply_profile(repo_root / "profiles/tiny.yaml", p)
    again = yaml.safe_load(p.read_text())
    assert again == merged and again["base"]["model"] == "tiny-random"
    assert again["variant"]["lora"]["r"] == 8  # untouched keys survive


def test_catalog_list_and_check(repo_root, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert main(["catalog", "list"]) == 0
    out = capsys.readouterr().out
    assert "quirk_topic_volcanoes" in out and "backdoor" in out and "families" in out
    assert main(["catalog", "check"]) == 0


def test_catalog_check_reports_unknown_behavior(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["behaviors"]["ghost"] = {"spec": "data/catalog/ghost.yaml", "split": "heldout"}
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    assert main(["catalog", "check", "--params", str(p), "--paths", str(repo_root / "data/catalog")]) == 1
    assert "behaviors.ghost" in capsys.readouterr().err
