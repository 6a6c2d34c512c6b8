"""Typed params: typos, wrong types and broken rules fail with one line naming params.yaml, the field and the
rule; the shipped params.yaml and every profile merged over it validate; `iaforge check` exits accordingly."""

import dataclasses
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iaforge.cli import main
from iaforge.core.config import (JudgeConfig, LoraParams, ParamsError, TrainConfig, check_params, load_params,
                                 section, stage_params)
from iaforge.core.errors import ValidationError
from iaforge.core.profiles import deep_merge
from iaforge.core.stagekit import stage_argv


@pytest.fixture
def params(repo_root):
    return load_params(repo_root / "params.yaml")


def _write(tmp_path, data) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_shipped_params_validate(params):
    assert check_params(params) == []


@pytest.mark.parametrize("profile", sorted(p.name for p in (Path(__file__).parent.parent / "profiles").glob("*.yaml")))
def test_every_profile_validates_merged_over_params(repo_root, params, profile):
    over = yaml.safe_load((repo_root / "profiles" / profile).read_text())
    merged = deep_merge(params, over)
    assert check_params(merged) == [], profile


def test_typo_in_nested_key_names_field_and_suggests(params):
    bad = copy.deepcopy(params)
    bad["variant"]["train"]["learning_rate"] = 0.5
    errors = check_params(bad)
    assert len(errors) == 1
    msg = str(errors[0])
    assert msg.startswith("params.yaml: field 'variant.train.learning_rate': unknown key; did you mean 'lr'?")
    assert "\n" not in msg and "known: lr, epochs" in msg


def test_train_config_rejects_typo_instead_of_using_default():
    with pytest.raises(ValidationError, match=r"'train.learning_rate'.*did you mean 'lr'"):
        TrainConfig.from_params({"learning_rate": 0.5})
    cfg = TrainConfig.from_params({"lr": 0.5, "epochs": 2}, seed=3, desc="x")
    assert (cfg.lr, cfg.epochs, cfg.seed, cfg.batch_size, cfg.desc) == (0.5, 2, 3, 8, "x")


def test_wrong_type_and_rule_violation(params):
    bad = copy.deepcopy(params)
    bad["ia_sft"]["train"]["epochs"] = "two"
    bad["implantation"]["thresholds"]["min_rate"] = 1.5
    bad["base"]["dtype"] = "float8"
    bad["evaluate"]["workers"] = 0
    msgs = sorted(str(e) for e in check_params(bad))
    assert msgs == sorted([
        "params.yaml: field 'ia_sft.train.epochs': must be an integer (got 'two')",
        "params.yaml: field 'implantation.thresholds.min_rate': must be between 0 and 1",
        "params.yaml: field 'base.dtype': must be one of 'float32', 'bfloat16', 'float16' (got 'float8')",
        "params.yaml: field 'evaluate.workers': must be 'auto' or an integer >= 1",
    ])


def test_grid_anchor_is_sft_or_kl(params):
    bad = copy.deepcopy(params)
    bad["grid"]["data"]["anchor"] = "kld"
    msgs = [str(e) for e in check_params(bad)]
    assert len(msgs) == 1 and msgs[0].startswith("params.yaml: field 'grid.data.anchor': must be one of 'sft', 'kl'")
    bad["grid"]["data"]["anchor"] = "kl"
    assert check_params(bad) == []


def test_bool_is_not_an_int_and_missing_key_is_named(params):
    bad = copy.deepcopy(params)
    bad["variant"]["lora"]["r"] = True
    del bad["prompts"]["per_type"]
    msgs = {e.field: e.rule for e in check_params(bad)}
    assert msgs["variant.lora.r"].startswith("must be an integer")
    assert msgs["prompts.per_type"] == "required key is missing"


def test_unknown_section_and_moved_judge_key(params):
    bad = copy.deepcopy(params)
    bad["evalaute"] = {}
    bad["evaluate"]["judge"] = {"kind": "embedding"}
    msgs = {e.field: e.rule for e in check_params(bad)}
    assert msgs["evalaute"].startswith("unknown section; did you mean 'evaluate'?")
    assert "top-level 'judge' section" in msgs["evaluate.judge"]


def test_audit_behaviors_must_be_held_out(params):
    bad = copy.deepcopy(params)
    bad["audit_tier"]["behaviors"] = ["quirk_topic_volcanoes"]  # ia_train in the default run
    (err,) = check_params(bad)
    assert err.field == "audit_tier.behaviors" and "not a held-out behavior" in err.rule


def test_lora_params_strict_and_peft_config():
    from iaforge.core.training import lora_config

    with pytest.raises(ParamsError, match=r"'lora.alpah': unknown key; did you mean 'alpha'"):
        lora_config({"r": 8, "alpah": 16})
    with pytest.raises(ParamsError, match="dropout"):
        LoraParams(dropout=1.0)
    cfg = lora_config({"r": 4, "alpha": 8, "dropout": 0.1})
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (4, 8, 0.1)


def test_one_judge_section_with_the_calibrated_defaults(params):
    from iaforge.judging.judge import EmbeddingJudge, make_judge

    for name in ("ia_dpo", "evaluate", "audit_tier", "cipher_attack"):
        assert "judge" not in params[name]
    # The file picks the learned judge (models/judge, stage judge_train); the code's default stays the embedding
    # judge, which needs no trained model (library use outside a run). Every other field agrees with the defaults.
    from_file = JudgeConfig.from_params(params["judge"], "judge")
    assert from_file.kind == "learned" and dataclasses.replace(from_file, kind="embedding") == JudgeConfig()
    judge = make_judge({**params["judge"], "kind": "embedding"})
    assert isinstance(judge, EmbeddingJudge)
    with pytest.raises(ParamsError, match=r"'judge.threshhold': unknown key; did you mean 'threshold'"):
        make_judge({"threshhold": 0.5})
    with pytest.raises(ParamsError, match=r"'judge.kind'"):
        make_judge({"kind": "oracle"})
    with pytest.raises(ParamsError, match=r"'judge.base_url'.*needs base_url and model"):
        make_judge({"kind": "llm"})


def test_stage_params_fill_defaults_and_section_validates(repo_root, params, tmp_path):
    p = _write(tmp_path, params)
    out = stage_params("variant", "judge", path=p)
    assert out["variant"]["train"]["warmup_frac"] == 0.1 and out["variant"]["lora"]["top_layers"] is None
    assert out["judge"]["threshold"] == 0.45
    assert out["evaluate"] == params["evaluate"]  # sections not asked for are left as they are
    bad = copy.deepcopy(params)
    bad["prompts"]["per_typ"] = 3
    with pytest.raises(ValidationError, match="prompts.per_typ"):
        section("prompts", _write(tmp_path, bad))


def test_cli_check_exit_codes(repo_root, params, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("ok: params.yaml valid")
    bad = copy.deepcopy(params)
    bad["variant"]["train"]["learning_rate"] = 0.5
    bad["behaviors"]["ghost"] = {"spec": "data/catalog/ghost.yaml", "split": "heldout"}
    assert main(["check", "--params", str(_write(tmp_path, bad))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "field 'variant.train.learning_rate': unknown key; did you mean 'lr'?" in err[0]
    assert "field 'behaviors.ghost': no catalog entry" in err[1]


def test_stage_fails_on_a_params_typo_with_one_line(repo_root, params, tmp_path):
    bad = copy.deepcopy(params)
    bad["prompts"]["per_tpye"] = 10
    _write(tmp_path, bad)
    res = subprocess.run(stage_argv("prompts", repo_root), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "field 'prompts.per_tpye': unknown key; did you mean 'per_type'?" in lines[0]
    assert not (tmp_path / "data/prompts.jsonl").exists()


def test_base_dtype_is_honoured_by_load_base(tiny_base, tmp_path):
    """base.dtype reaches every loader through the base folder's manifest; the default stays float32."""
    import torch

    from iaforge.core.base_model import build_base, load_base
    from iaforge.core.errors import BaseModelError

    assert next(load_base(tiny_base)[0].parameters()).dtype == torch.float32
    build_base("tiny-random", tmp_path / "bf16", dtype="bfloat16")
    assert next(load_base(tmp_path / "bf16")[0].parameters()).dtype == torch.bfloat16
    assert next(load_base(tmp_path / "bf16", dtype="float32")[0].parameters()).dtype == torch.float32
    with pytest.raises(BaseModelError, match="not one of float32"):
        load_base(tmp_path / "bf16", dtype="int8")
