"""audit_tier and cipher_attack out of the default run (audit_tier/optional.py): disabled, each stage writes every
out DVC expects, saying it was not run, and the report shows that instead of an empty table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from iaforge.audit_tier.optional import write_not_in_run
from iaforge.core.config import ParamsError, stage_params
from iaforge.report.html import audit_tier_section, cipher_section

ROOT = Path(__file__).resolve().parents[1]


def _run_stage(name: str, tmp_path: Path, monkeypatch) -> None:
    from iaforge.core.stagekit import stage_argv

    spec = importlib.util.spec_from_file_location(f"_stage_{name}", ROOT / "stages" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"stages/{name}.py", *stage_argv(name, ROOT)[2:]])
    mod.run()


def test_the_default_run_leaves_both_out_and_the_audit_profile_and_tiny_put_them_back():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["audit_tier"]["enabled"] is False and params["cipher_attack"]["enabled"] is False
    for profile in ("audit", "tiny", "wide"):
        over = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
        assert over["audit_tier"]["enabled"] is True and over["cipher_attack"]["enabled"] is True, profile


def test_enabled_must_be_a_bool(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["cipher_attack"]["enabled"] = "no"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="enabled"):
        stage_params("cipher_attack", path=tmp_path / "params.yaml")


@pytest.mark.parametrize("stage,models", [("audit_tier", "models/audit"), ("cipher_attack", "models/cipher_attack")])
def test_a_disabled_stage_writes_every_out_saying_why(stage, models, tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    stale = tmp_path / models / "old-adapter"
    stale.mkdir(parents=True)
    (stale / "adapter_model.safetensors").write_bytes(b"x")  # an earlier enabled run's model: replaced whole
    _run_stage(stage, tmp_path, monkeypatch)
    assert [p.name for p in (tmp_path / models).iterdir()] == ["README.md"]
    assert "not in this run" in (tmp_path / models / "README.md").read_text()
    assert json.loads((tmp_path / f"metrics/{stage}.json").read_text()) == {"in_run": False}
    detail = json.loads((tmp_path / f"reports/detail/{stage}.json").read_text())
    assert detail["in_run"] is False and f"params {stage}.enabled is false" in detail["note"]
    samples = {"audit_tier": "reports/audit_samples.json", "cipher_attack": "reports/cipher_samples.json"}[stage]
    assert json.loads((tmp_path / samples).read_text()) == []


def test_the_report_says_not_in_this_run(tmp_path):
    detail = write_not_in_run("audit_tier", models=tmp_path / "m", detail=tmp_path / "d.json",
                              metrics=tmp_path / "x.json", samples=tmp_path / "s.json")
    html = "".join(audit_tier_section(detail))
    assert "not in this run" in html and "<table" not in html
    html = "".join(cipher_section({"in_run": False, "note": "cipher_attack is not in this run"}))
    assert "not in this run" in html and "does not hold" not in html
