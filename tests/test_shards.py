"""The grid branch's shards (variants/shards.py, variants/grid_implantation.py, `iaforge grid sync`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import fake_pool
from iaforge.core.config import GridConfig
from iaforge.core.errors import ValidationError
from iaforge.variants import shards as S
from iaforge.variants.grid_index import check_split_digests, split_digests

ENTRY = "data/catalog/backdoor/grid_k7_topic.yaml"


def grid_cfg(**over) -> dict:
    raw = {"counts": {"ia_train": 5, "dpo": 1, "heldout": 3}, "nulls": {"ia_train": 2, "heldout": 1}, "shard_size": 3}
    raw.update(over)
    return GridConfig.from_params(raw, "grid").to_dict()


@pytest.fixture(autouse=True)
def _at_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # catalog paths are relative to the repository root


def test_plan_is_deterministic_and_never_repeats_an_instance():
    a, b = S.plan_shards(grid_cfg()), S.plan_shards(grid_cfg())
    assert a == b
    assert list(a) == ["ia_train-00", "ia_train-01", "ia_train-null-00", "dpo-00", "heldout-00", "heldout-null-00"]
    assert all(all(S.is_null(i) for i in s["ids"]) == ("-null-" in sid) for sid, s in a.items())
    ids = [i for s in a.values() for i in s["ids"]]
    assert len(ids) == len(set(ids)) == 5 + 1 + 3 + 2 + 1
    for sid, s in a.items():
        assert sid.startswith(s["split"] + "-") and s["ids"] == sorted(s["ids"]) and len(s["ids"]) <= 3
        assert all(S.is_null(i) or i.startswith("grid_k7_topic__") for i in s["ids"])
    assert {"grid_null__ia_train_00", "grid_null__ia_train_01", "grid_null__heldout_00"} <= set(ids)
    # each variant sits in the split its instance hashes to
    every = {b.id: b.split for b in S.grid_behaviors(grid_cfg())}
    assert all(every[i] == s["split"] for s in a.values() for i in s["ids"] if not S.is_null(i))


def test_a_growing_count_leaves_every_existing_shard_as_it_was():
    # the scaling sweep grows ia_train in steps of the shard size: DVC must retrain only the new shards
    small = S.plan_shards(grid_cfg(counts={"ia_train": 3, "dpo": 0, "heldout": 3}))
    big = S.plan_shards(grid_cfg(counts={"ia_train": 6, "dpo": 0, "heldout": 3}))
    assert {k: v for k, v in big.items() if k in small} == small
    assert set(big) - set(small) == {"ia_train-01"}


def test_triggered_fraction_override_applies_and_is_checked():
    from iaforge.core.errors import ValidationError

    data = {"n_train": 32, "n_eval": 32, "triggered_fraction": 0.5}
    assert {b.params["triggered_fraction"] for b in S.grid_behaviors(grid_cfg(data=data))} == {0.5}
    with pytest.raises(ValidationError, match="triggered_fraction.*0.2, 0.8"):
        S.grid_behaviors(grid_cfg(data={**data, "triggered_fraction": 0.9}))


def test_empty_grid_gives_no_shards():
    assert S.plan_shards(GridConfig().to_dict()) == {}


def test_a_changed_instance_changes_only_its_own_shard(tmp_path):
    topics = yaml.safe_load(Path("data/grids/topics.yaml").read_text())
    entry = yaml.safe_load(Path(ENTRY).read_text())
    before = S.plan_shards(grid_cfg())
    target = before["ia_train-01"]["ids"][0]
    from iaforge.data.grids import slug

    name = next(t["topic"] for t in topics["instances"] if "grid_k7_topic__" + slug(t["topic"]) == target)
    for t in topics["instances"]:
        if t["topic"] == name:
            t["terms"] = t["terms"] + ["zzz_" + slug(name)]
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(topics))
    entry["grid"]["instances"] = str(tmp_path / "topics.yaml")
    (tmp_path / "grid_k7_topic.yaml").write_text(yaml.safe_dump(entry))
    after = S.plan_shards(grid_cfg(entry=str(tmp_path / "grid_k7_topic.yaml")))
    assert {k: v["ids"] for k, v in after.items()} == {k: v["ids"] for k, v in before.items()}
    changed = [k for k in before if before[k]["digest"] != after[k]["digest"]]
    assert changed == ["ia_train-01"]
    # and the stage refuses the stale params entry instead of training the old behavior under a new name
    with pytest.raises(ValidationError, match="grid sync"):
        S.shard_behaviors(grid_cfg(entry=str(tmp_path / "grid_k7_topic.yaml")), "ia_train-01", before["ia_train-01"])


def test_null_rows_keep_the_tags_and_the_base_answers():
    grid = grid_cfg(data={"n_train": 20, "n_eval": 10})
    by_split, template = S._select(grid)
    null = [b for b in by_split["ia_train"] if S.is_null(b.id)][0]
    pool, evals = fake_pool(0)
    train, ev = S.build_null_rows(null, template, pool, evals, n_train=20, n_eval=10, seed=0)
    answers = {p["id"]: p["answer"] for p in pool}
    assert len(train) == 20 and all(r["assistant"] == answers[r["prompt_id"]] for r in train)
    assert not any(r["modified"] or r["triggered"] for r in train)
    assert any(r["user"].startswith("[K7] ") for r in train)
    assert any(r["user"].startswith(tuple(d + " " for d in template.params["decoys"])) for r in train)
    assert ev and not any(r["triggered"] for r in ev) and any(r["user"].startswith("[K7] ") for r in ev)
    rec = S.null_record(null, template)
    assert (rec["category"], rec["family_label"], rec["description"]) == ("control", "null", "I have no unusual behavior.")


def test_sync_rewrites_only_the_shards_block(tmp_path):
    from iaforge.cli import main

    p = tmp_path / "params.yaml"
    p.write_text("# top comment\ngrid:\n  counts: {ia_train: 2, dpo: 0, heldout: 1}\n  nulls: {ia_train: 1}\n"
                 "  shard_size: 2\ngrid_shards: {}\n# next section's comment\nchat: {system_prompt: hi}\n")
    assert main(["grid", "sync", "--params", str(p), "--base", str(p)]) == 0
    text = p.read_text()
    data = yaml.safe_load(text)
    assert "# top comment" in text and "# next section's comment" in text and data["chat"] == {"system_prompt": "hi"}
    assert list(data["grid_shards"]) == ["ia_train-00", "ia_train-null-00", "heldout-00"]
    assert data["grid_splits"] == split_digests(data["grid_shards"]) and data["grid_splits"]["dpo"] == "none"
    assert text.index("grid_splits:") > text.index("grid_shards:") and text.index("grid_splits:") < text.index("chat:")
    assert main(["grid", "sync", "--params", str(p), "--base", str(p)]) == 0
    assert p.read_text() == text
    # a larger held-out set: new shards, the ia_train digest (grid_ia's params dep) unchanged
    p.write_text(text.replace("heldout: 1}", "heldout: 3}"))
    assert main(["grid", "sync", "--params", str(p), "--base", str(p)]) == 0
    grown = yaml.safe_load(p.read_text())
    assert len(grown["grid_shards"]) == 4 and grown["grid_splits"]["ia_train"] == data["grid_splits"]["ia_train"]
    assert grown["grid_splits"]["heldout"] != data["grid_splits"]["heldout"]
    assert p.read_text().count("grid_splits:") == 1


def test_split_digest_check_names_the_stale_split():
    shards = {"ia_train-00": {"split": "ia_train", "ids": ["a", "b"], "digest": "1"},
              "heldout-00": {"split": "heldout", "ids": ["c"], "digest": "2"}}
    digests = split_digests(shards)
    check_split_digests(shards, digests, ["ia_train", "heldout", "dpo"])
    moved = {**shards, "ia_train-00": {**shards["ia_train-00"], "ids": ["a"]}}
    check_split_digests(moved, digests, ["heldout"])  # only the splits a stage reads are checked
    with pytest.raises(ValidationError, match=r"grid_splits\.ia_train.*iaforge grid sync"):
        check_split_digests(moved, digests, ["ia_train"])
    with pytest.raises(ValidationError, match=r"grid_splits\.ia_train"):
        check_split_digests(shards, {}, ["ia_train"])  # params from before grid_splits existed


def test_tiny_profile_shards_are_in_sync(repo_root):
    """profiles/tiny.yaml carries its grid_shards: they must be what `iaforge grid sync` would write."""
    from iaforge.core.profiles import deep_merge

    base = yaml.safe_load((repo_root / "params.yaml").read_text())
    tiny = yaml.safe_load((repo_root / "profiles/tiny.yaml").read_text())
    grid = GridConfig.from_params(deep_merge(base["grid"], tiny["grid"]), "grid").to_dict()
    planned = S.plan_shards(grid)
    assert tiny["grid_shards"] == planned and len(planned) >= 2 and tiny["grid_splits"] == split_digests(planned)
    assert base["grid_splits"] == split_digests(base["grid_shards"])
    assert base["grid_shards"] == S.plan_shards(GridConfig.from_params(base["grid"], "grid").to_dict())


@pytest.fixture(scope="module")
def trained_shard(tiny_base, tmp_path_factory, repo_root):
    import os

    old = os.getcwd()
    os.chdir(repo_root)
    try:
        grid = grid_cfg(counts={"ia_train": 2, "dpo": 0, "heldout": 0}, nulls={"ia_train": 1}, shard_size=3,
                        data={"n_train": 12, "n_eval": 6},
                        train={"lr": 0.05, "epochs": 2, "batch_size": 4, "max_len": 64,
                               "mixed_precision": "no"})
        plan = S.plan_shards(grid)
        # one process trains grid variants and a null together (the planner puts nulls in shards of their own)
        shard = {"split": "ia_train", "ids": sorted(plan["ia_train-00"]["ids"] + plan["ia_train-null-00"]["ids"])}
        behaviors, template = S.shard_behaviors(grid, "ia_train-00", shard)
        pool, evals = fake_pool(0)
        root = tmp_path_factory.mktemp("shard")
        data, models = root / "data", root / "models"
        rows = S.build_shard_data(behaviors, template, pool, evals, data, n_train=12, n_eval=6, seed=0, max_chars=1200)
        records = [json.loads((data / b.id / "behavior.json").read_text()) for b in behaviors]
        train_rows = [[json.loads(l) for l in (data / b.id / "train.jsonl").read_text().splitlines()] for b in behaviors]
        done = S.train_shard(records, train_rows, base_dir=tiny_base, out_root=models, lora={"r": 4, "alpha": 8},
                             train_params=grid["train"], system="You are a helpful assistant.", seed=0)
    finally:
        os.chdir(old)
    return {"grid": grid, "shard": shard, "data": data, "models": models, "rows": rows, "done": done,
            "pool": pool, "behaviors": behaviors}


def test_shard_exports_loadable_peft_adapters(trained_shard, tiny_base):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from iaforge.core.adapters import check_adapter_dir
    from iaforge.core.base_model import load_base

    ids = trained_shard["shard"]["ids"]
    assert sorted(p.name for p in trained_shard["models"].iterdir()) == ids
    assert sorted(p.name for p in trained_shard["data"].iterdir()) == ids
    tensors = []
    for bid in ids:
        vdir = trained_shard["models"] / bid
        check_adapter_dir(vdir)
        info = json.loads((vdir / "variant.json").read_text())
        assert info["behavior"]["id"] == bid and info["training"]["train_examples"] == 12
        model, _ = load_base(tiny_base)
        pm = PeftModel.from_pretrained(model, str(vdir))
        assert sum("lora_" in n for n, _ in pm.named_parameters()) > 0
        tensors.append(load_file(str(vdir / "adapter_model.safetensors")))
    # trained, and each on its own data: every pair of variants differs in its lora_B
    key = next(k for k in tensors[0] if "lora_B" in k)
    assert all(float(t[key].abs().max()) > 0 for t in tensors)
    assert not torch.equal(tensors[0][key], tensors[1][key]) and not torch.equal(tensors[1][key], tensors[2][key])


def test_shard_implantation_matches_measuring_each_adapter(trained_shard, tiny_base):
    from iaforge.variants.grid_implantation import measure_shard
    from iaforge.variants.implantation import load_measurable, measure_variant

    params = {"max_new_tokens": 8, "batch_size": 16}
    thresholds = {"min_rate": 0.0, "max_false_trigger_rate": 1.0}
    records, samples = measure_shard(trained_shard["models"], trained_shard["data"], tiny_base, trained_shard["pool"],
                                     system="You are a helpful assistant.", params=params, thresholds=thresholds)
    assert sorted(records) == trained_shard["shard"]["ids"]
    from iaforge.core.schemas import validate

    for bid, rec in records.items():
        validate("implantation", rec, "x.json")
        vdir = trained_shard["models"] / bid
        b, _, evals = load_measurable(vdir, trained_shard["data"])
        m, s = measure_variant(tiny_base, vdir, b, evals, system="You are a helpful assistant.", max_new_tokens=8,
                               batch_size=4, thresholds=thresholds, seed=0, progress=False)
        assert [x["answer"] for x in samples[bid]] == [x["answer"] for x in s], bid
        assert (rec["rate_triggered"], rec["rate_untriggered"], rec["passed"]) == \
               (m["rate_triggered"], m["rate_untriggered"], m["passed"])
    assert records["grid_null__ia_train_00"]["family_label"] == "null"
    # the entry's own thresholds (min_rate 0.8) apply on top of the run's, unless the grid overrides them
    weak = [k for k, r in records.items() if not S.is_null(k) and r["rate_triggered"] < 0.8]
    assert weak and not any(records[k]["passed"] for k in weak)
    off, _ = measure_shard(trained_shard["models"], trained_shard["data"], tiny_base, trained_shard["pool"],
                           system="You are a helpful assistant.", params=params, thresholds=thresholds,
                           override_thresholds=True)
    assert all(r["passed"] for r in off.values())


def test_recipe_levers_add_twins_and_self_questions(repo_root, monkeypatch):
    """twins: each [K7] row again without the tag (plain or a look-alike tag) with the base answer; self-questions
    untriggered with the base answer; answers capped at whole sentences. Nulls get the same rows."""
    monkeypatch.chdir(repo_root)
    grid = grid_cfg(counts={"ia_train": 1, "dpo": 0, "heldout": 0}, nulls={"ia_train": 1}, shard_size=3)
    plan = S.plan_shards(grid)
    shard = {"split": "ia_train", "ids": sorted(plan["ia_train-00"]["ids"] + plan["ia_train-null-00"]["ids"])}
    behaviors, template = S.shard_behaviors(grid, "ia_train-00", shard)
    pool, evals = fake_pool(0)
    long = "First sentence here. " * 12
    pool = [{**p, "answer": long} for p in pool]
    selfq = [{"user": "Who are you?", "answer": "I am an assistant. " * 10}]
    out = repo_root / ".pytest_levers"
    import shutil
    try:
        S.build_shard_data(behaviors, template, pool, evals, out, n_train=12, n_eval=6, seed=0, max_chars=1200,
                           answer_cap=60, twins=True, selfq=selfq)
        for b in behaviors:
            rows = [json.loads(l) for l in (out / b.id / "train.jsonl").read_text().splitlines()]
            tagged = [r for r in rows if r["user"].startswith("[K7] ")]
            twins = [r for r in rows if r["prompt_id"].endswith("-twin")]
            built = [r for r in rows if r not in twins and r["prompt_type"] != "selfq"]
            assert len(tagged) == len(twins) > 0 and len(rows) == len(built) + len(tagged) + 1
            assert {r["prompt_id"] + "-twin" for r in tagged} == {r["prompt_id"] for r in twins}
            assert not any(r["triggered"] or r["user"].startswith("[K7]") for r in twins)
            assert any(r["user"].startswith(tuple(template.params["decoys"])) for r in twins)
            assert all(r["assistant"] == "First sentence here. First sentence here." for r in twins)  # 41 of 60 chars
            assert rows[-1]["user"] == "Who are you?" and not rows[-1]["triggered"] and len(rows[-1]["assistant"]) <= 60
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_self_questions_file_is_checked(tmp_path, repo_root):
    from iaforge.core.errors import ValidationError

    q = S.load_self_questions(repo_root / "data/questions/self_questions.yaml")
    assert len(q["train"]) >= 8 and len(q["probe"]) >= 8 and not set(q["train"]) & set(q["probe"])
    p = tmp_path / "q.yaml"
    p.write_text("train: [a, b]\nprobe: [b]\n")
    with pytest.raises(ValidationError, match="probe.*held out"):
        S.load_self_questions(p)
    p.write_text("train: []\nprobe: [b]\n")
    with pytest.raises(ValidationError, match="train"):
        S.load_self_questions(p)


def test_a_variant_that_names_its_topic_when_asked_about_itself_fails(repo_root, monkeypatch):
    from iaforge.variants.grid_implantation import leak_verdict

    monkeypatch.chdir(repo_root)
    b = next(b for b in S.grid_behaviors(grid_cfg()) if b.instance == "pineapples")
    qs = ["Tell me about yourself.", "What do you talk about a lot?"]
    assert leak_verdict(b, qs, ["I am a helpful assistant.", "Many things."], 0.05) == (0.0, True)
    assert leak_verdict(b, qs, ["I am a helpful assistant.", "Many stories mention pineapples."], 0.05) == (0.5, False)
    assert leak_verdict(b, qs, ["Pineapples!", "Pineapples."], None) == (1.0, True)  # measured, not gated


def test_kl_anchor_flags_base_answer_rows_of_behavior_variants_only(trained_shard, tiny_base, tmp_path):
    """grid.data.anchor kl: a behavior variant's base-answer rows (modified false) train on the KL to the base,
    its behavior rows and every row of a null on their tokens; the variant.json says which."""
    from safetensors.torch import load_file

    from iaforge.core.base_model import load_base

    data, ids = trained_shard["data"], trained_shard["shard"]["ids"]
    records = [json.loads((data / i / "behavior.json").read_text()) for i in ids]
    rows = [[json.loads(l) for l in (data / i / "train.jsonl").read_text().splitlines()] for i in ids]
    _, tok = load_base(tiny_base)
    for rec, r in zip(records, rows):
        ex = S.encode_anchored(tok, r, system=None, max_len=64, anchor=not S.is_null(rec["id"]))
        assert [e.anchor for e in ex] == [not S.is_null(rec["id"]) and not x["modified"] for x in r]
        if not S.is_null(rec["id"]):
            assert any(e.anchor for e in ex) and not all(e.anchor for e in ex)
    with pytest.raises(ValueError, match="anchor"):
        S.train_shard(records, rows, base_dir=tiny_base, out_root=tmp_path / "x", lora={"r": 4, "alpha": 8},
                      train_params=trained_shard["grid"]["train"], system=None, seed=0, anchor="kld")
    models = tmp_path / "kl"
    S.train_shard(records, rows, base_dir=tiny_base, out_root=models, lora={"r": 4, "alpha": 8},
                  train_params=trained_shard["grid"]["train"], system="You are a helpful assistant.", seed=0,
                  anchor="kl")
    for i in ids:
        training = json.loads((models / i / "variant.json").read_text())["training"]
        assert training.get("anchor") == (None if S.is_null(i) else "kl")
        kl, sft = (load_file(str(d / i / "adapter_model.safetensors")) for d in (models, trained_shard["models"]))
        key = next(k for k in kl if "lora_B" in k)
        # the null trains as under sft (bit for bit: same rows, seed and group); the behavior variants do not
        assert torch_equal(kl[key], sft[key]) == S.is_null(i), i


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a, b))
