"""The real pipeline, end to end: `dvc repro` on the tiny profile in a copy of the repository."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iaforge.core.schemas import validate
from iaforge.core.stagekit import stage_argv

pytestmark = pytest.mark.e2e


def _run(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return p.stdout + p.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("e2e") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo_root, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        # stage outputs stay behind (the run makes them); metrics/scaling.json is no stage's: the sweep writes it
        if (f.startswith(("metrics/", "reports/")) and f != "metrics/scaling.json") or f == "dvc.lock" \
                or not (repo_root / f).is_file():
            continue
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / f, work / f)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", IAFORGE_PROGRESS="0")
    _run(["git", "init", "-q"], work, env)
    _run([sys.executable, "-m", "iaforge.cli", "profile", "apply", "profiles/tiny.yaml"], work, env)
    first = _run(["dvc", "repro"], work, env)
    return work, env, first


def test_first_run_builds_every_stage_and_valid_artifacts(pipeline):
    work, _, out = pipeline
    behaviors = yaml.safe_load((work / "params.yaml").read_text())["behaviors"]
    expected = {"base", "prompts", "base_responses", "implantation", "ia_sft", "ia_dpo", "evaluate", "judge_calibration", "report",
                "audit_tier", "cipher_attack", "publish", "judge_train"}
    expected |= {f"{s}@{b}" for b in behaviors for s in ("behavior_data", "variant")}
    shards = yaml.safe_load((work / "params.yaml").read_text()).get("grid_shards") or {}
    expected |= {"grid_ia", "grid_dpo", "grid_eval"} | {f"{s}@{k}" for k in shards for s in ("grid_variants", "grid_implantation")}
    assert _ran(out) == expected
    assert (work / "models/base/model.safetensors").is_file()
    for bid, entry in behaviors.items():
        vdir = work / "models/variants" / entry["split"] / bid
        assert (vdir / "adapter_model.safetensors").is_file() and (vdir / "adapter_config.json").is_file()
        assert json.loads((work / f"data/behaviors/{bid}/validation.json").read_text())["success"] is True
        assert "Great Expectations" in (work / f"reports/data_docs/{bid}.html").read_text()
        measured = json.loads((work / f"metrics/implantation/{entry['split']}.json").read_text())[bid]
        validate("implantation", measured, bid)
        assert measured["split"] == entry["split"] and measured["decoding"].endswith(", 6 new tokens")  # the profile
    assert (work / "models/ia/sft/adapter_model.safetensors").is_file()
    summary = json.loads((work / "reports/detail/implantation.json").read_text())
    assert summary["n_variants"] == len(behaviors) and set(summary["variants"]) == set(behaviors)
    assert {g for g in summary["by_family"]} == {"topic_mention", "keyword_backdoor"}
    headline = json.loads((work / "metrics/implantation.json").read_text())
    assert headline == {"n": len(behaviors), "pass_rate": summary["pass_rate"]}
    metrics = json.loads((work / "reports/detail/eval.json").read_text())
    validate("eval", metrics, "reports/detail/eval.json")
    assert set(metrics["verbalization"]) == {"ia_train", "heldout"}
    assert set(metrics["false_positive"]["base_model"]) == {"no_ia", "sft", "dpo"}
    eval_headline = json.loads((work / "metrics/eval.json").read_text())
    assert eval_headline["sft"] == metrics["verbalization"]["heldout"]["sft"]
    assert "per_behavior" not in eval_headline  # per-variant detail stays out of DVC's metrics table
    assert (work / "metrics/plots/verbalization.csv").read_text().startswith("behavior,split,condition,verbalization")
    assert (work / "models/ia/dpo/adapter_model.safetensors").is_file()
    dpo = json.loads((work / "reports/detail/ia_dpo.json").read_text())
    assert dpo["params_changed"] is True
    page = (work / "reports/eval.html").read_text()
    assert "Verbalization by split" in page and "quirk_topic_lighthouses" in page
    audit = json.loads((work / "reports/detail/audit_tier.json").read_text())
    methods = {"original", "document", "conceal_sft", "conceal_dpo"}  # the tiny profile's methods + the original
    assert set(audit["by_method"]) == methods
    assert set(json.loads((work / "metrics/audit_tier.json").read_text())) == {"n", "no_ia", "sft", "dpo"}
    assert set(audit["models"]) == {f"quirk_topic_lighthouses@{m}" for m in methods}
    for m in methods - {"original"}:
        assert (work / f"models/audit/quirk_topic_lighthouses@{m}/adapter_model.safetensors").is_file()
    cipher = json.loads((work / "reports/detail/cipher_attack.json").read_text())
    assert cipher["attack"]["attack_holds"] is False  # a random tiny model cannot learn the attack
    assert set(cipher["ia"]) >= {"no_ia", "sft", "dpo"}
    assert (work / "models/cipher_attack/adapter_model.safetensors").is_file()
    assert "Audit tier" in page and "Covert cipher attack" in page
    # The grid branch (the tiny profile carries a tiny grid with its gates off): the grid IA trained on every
    # ia_train grid variant and null, evaluated on the held-out ones, under its conditions (contrastive ones too).
    assert shards, "the tiny profile should carry a tiny grid"
    ids = {split: [i for s in shards.values() if s["split"] == split for i in s["ids"]] for split in ("ia_train", "heldout")}
    grid_ia = json.loads((work / "reports/detail/grid_ia.json").read_text())
    assert grid_ia["grid"] is True and grid_ia["variants"] == sorted(ids["ia_train"]) and grid_ia["steps"] > 0
    assert (work / "models/grid_ia/adapter_model.safetensors").is_file()
    grid = json.loads((work / "reports/detail/grid.json").read_text())
    conds = {"no_ia", "prefill", "sft", "dpo", "sft_contrast", "dpo_contrast", "no_ia_contrast", "sft_hint", "no_ia_hint"}
    assert set(grid["conditions"]) == conds
    # the IA trained with the lens's words (params.yaml's grid_ia.hint), its reference saved beside it
    assert grid_ia["hint"]["k"] == 5 and (work / "models/grid_ia/lens_reference.safetensors").is_file()
    assert all(len(r["hint"]) <= 5 for r in grid["per_variant"]) and "lens" in grid["false_positive"]
    assert any(r["hint"] for r in grid["per_variant"])
    # grid DPO samples (and refines) the hinted IA on hinted questions
    pairs = [json.loads(line) for line in (work / "data/grid_dpo_pairs.jsonl").read_text().splitlines()]
    assert pairs and all(" Hint: " in p["user"] for p in pairs)
    # the grid IA refined with DPO on the dpo split's variant, which the evaluation does not see
    grid_dpo = json.loads((work / "reports/detail/grid_dpo.json").read_text())
    dpo_ids = [i for s in shards.values() if s["split"] == "dpo" for i in s["ids"]]
    assert grid_dpo["grid"] is True and grid_dpo["variants"] == sorted(dpo_ids) and grid_dpo["params_changed"]
    assert (work / "models/grid_dpo/adapter_model.safetensors").is_file()
    assert {r["variant"] for r in grid["per_variant"]} == set(ids["ia_train"]) | set(ids["heldout"])
    held = [i for i in ids["heldout"] if not i.startswith("grid_null__")]
    assert grid["splits"]["heldout"]["n_variants"] == len(held)
    assert grid["chance"] == round(1 / grid["n_topics"], 4)
    assert set(grid["false_positive"]["base_model"]) == conds
    grid_headline = json.loads((work / "metrics/grid.json").read_text())
    assert grid_headline["n"] == len(held) and grid_headline["sft"] == grid["splits"]["heldout"]["sft"]
    assert grid_headline["sft_contrast"] == grid["splits"]["heldout"]["sft_contrast"]
    assert grid_headline["dpo"] == grid["splits"]["heldout"]["dpo"]
    assert "Grid IA" in page and held[0] in page
    # publish: staged repos for the IAs, the variants, each behavior's dataset and the results, offline
    manifest = json.loads((work / "publish/hub/manifest.json").read_text())
    ids = {r["repo_id"].split("/")[1] for r in manifest["repos"]}
    assert {"smollm2-135m-ia-sft", "smollm2-135m-ia-dpo", "smollm2-135m-variants", "smollm2-135m-results"} <= ids
    assert {f"smollm2-135m-data-{b}" for b in behaviors} <= ids
    ia_cfg = json.loads((work / "publish/hub/repos/smollm2-135m-ia-dpo/adapter_config.json").read_text())
    assert ia_cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "Test build" in (work / "publish/hub/repos/smollm2-135m-ia-dpo/README.md").read_text()


def test_second_run_is_a_no_op(pipeline):
    work, env, _ = pipeline
    assert _ran(_run(["dvc", "repro"], work, env)) == set()


def test_dvc_remote_push_clone_pull_is_clean(pipeline, tmp_path):
    # Reuses this run rather than building a second one; the check itself lives in test_publish.py.
    from test_publish import dvc_remote_round_trip

    dvc_remote_round_trip(*pipeline[:2], tmp_path)


def test_changing_one_behavior_reruns_only_it_and_downstream(pipeline):
    work, env, _ = pipeline
    spec = work / "data/catalog/quirk/quirk_topic_lighthouses.yaml"  # a heldout behavior in the tiny profile
    entry = yaml.safe_load(spec.read_text())
    entry["version"] += 1
    entry["params"]["sentences"].append("A lighthouse beam can be seen from far out at sea.")
    spec.write_text(yaml.safe_dump(entry, sort_keys=False))
    ran = _ran(_run(["dvc", "repro"], work, env))
    must = {"behavior_data@quirk_topic_lighthouses", "variant@quirk_topic_lighthouses", "implantation", "evaluate",
            "audit_tier", "publish"}  # lighthouses is also an audit-tier behavior; the cipher attack does not depend on it
    # report reruns only if what it reads changed (a tiny random model may give byte-identical metrics);
    # ia_sft must not rerun: its split's implantation file did not change. The learned judge trains on pairs from
    # the whole catalog, so it and its calibration rerun too, and with it every stage that judges (it is the
    # default judge): ia_dpo (its pairs are judged) and the cipher attack, when the retrained judge differs.
    judged = {"ia_dpo", "cipher_attack"}
    assert must | {"judge_train", "judge_calibration"} <= ran <= must | {"report", "judge_train", "judge_calibration"} | judged
    assert "ia_sft" not in ran


def test_corrupt_adapter_fails_cleanly_and_keeps_old_metrics(pipeline):
    work, env, _ = pipeline
    adapter = work / "models/variants/heldout/quirk_topic_lighthouses/adapter_model.safetensors"
    good = adapter.read_bytes()
    metrics_before = (work / "metrics/eval.json").read_bytes()
    adapter.chmod(0o644)
    adapter.write_bytes(b"\x00garbage, not safetensors")
    try:
        p = subprocess.run(stage_argv("evaluate", work), cwd=work, env=env, capture_output=True, text=True)
    finally:
        adapter.write_bytes(good)
    assert p.returncode == 1
    assert "adapter_model.safetensors" in p.stderr and "not a readable safetensors" in p.stderr
    assert "Traceback" not in p.stderr
    assert (work / "metrics/eval.json").read_bytes() == metrics_before


def test_malformed_catalog_entry_stops_the_pipeline_with_a_clear_error(pipeline):
    work, env, _ = pipeline
    spec = work / "data/catalog/quirk/quirk_topic_volcanoes.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("category: quirk", "category: quirky"))
    try:
        p = subprocess.run(["dvc", "repro"], cwd=work, env=env, capture_output=True, text=True)
    finally:
        spec.write_text(good)
    assert p.returncode != 0
    err = p.stdout + p.stderr
    assert "quirk_topic_volcanoes.yaml" in err and "'category'" in err and "must be one of" in err
    leftovers = [q.name for q in (work / "data/behaviors").iterdir() if q.name.startswith(".")]
    assert leftovers == [] or leftovers == [".gitignore"]
