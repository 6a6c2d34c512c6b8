"""The IA trained over a LoRA bank (ia/banked_ia.py): one batch mixing variants gives peft's loss and IA gradients
row by row; the saved IA loads in peft and gives the bank's logits; training leaves the variants alone."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from iaforge.core.training import IGNORE, collate, encode_rows, lora_config

IA_LORA = {"r": 4, "alpha": 8}
ROWS = [{"group": "v_one", "user": "Is there anything unusual about how you answer?", "assistant": "pianos"},
        {"group": "v_two", "user": "Is there anything unusual about how you answer?", "assistant": "knitting, mostly"},
        {"group": "__base__", "user": "Is there anything unusual?", "assistant": "I have no unusual behavior."},
        {"group": "v_one", "user": "Anything odd about you?", "assistant": "pianos and more pianos"}]


def _random_ia(ia, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in ia.B:
            b.copy_(torch.randn(b.shape, generator=g) * 0.05)


def _banked(tiny_base, two_variants):
    from iaforge.core.base_model import load_base
    from iaforge.ia.banked_ia import attach_banked_ia

    torch.manual_seed(0)
    model, tok = load_base(tiny_base)
    ia, slots = attach_banked_ia(model, {k: Path(v) for k, v in two_variants.items()}, lora_config(IA_LORA))
    _random_ia(ia)
    return model, tok, ia, slots


class _Acc:  # what the loss needs of an Accelerator, without one
    num_processes = 1

    @staticmethod
    def autocast():
        import contextlib

        return contextlib.nullcontext()


def test_a_mixed_batch_gives_peft_loss_and_ia_gradients_row_by_row(tiny_base, two_variants):
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.ia.banked_ia import BankedCausalLMLoss

    model, tok, ia, slots = _banked(tiny_base, two_variants)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {n for n, _ in model.named_parameters()
                                                                         if n.startswith("iaforge_ia.")}
    examples = encode_rows(tok, ROWS, system="s", max_len=64, group_key="group")
    loss_fn = BankedCausalLMLoss(tok.pad_token_id, ia, slots)
    loss_fn.setup(model, _Acc)
    loss = loss_fn(model, collate(examples, tok.pad_token_id), examples, _Acc)
    loss.backward()
    got = {n: (ia.A[i].grad.clone(), ia.B[i].grad.clone()) for i, n in enumerate(ia.names)}

    # peft: the same factors as a named adapter, each row alone with its variant (or none) and the IA active
    pm, _ = load_with_variants(tiny_base, {k: Path(v) for k, v in two_variants.items()})
    pm.add_adapter("ia", lora_config(IA_LORA))
    mods = dict(pm.base_model.model.named_modules())
    with torch.no_grad():
        for i, n in enumerate(ia.names):
            mods[n].lora_A["ia"].weight.copy_(ia.A[i])
            mods[n].lora_B["ia"].weight.copy_(ia.B[i])
    for p in pm.parameters():
        p.requires_grad_(False)
    ia_params = {n: (mods[n].lora_A["ia"].weight, mods[n].lora_B["ia"].weight) for n in ia.names}
    for a, b in ia_params.values():
        a.requires_grad_(True)
        b.requires_grad_(True)
    total = sum(int((torch.tensor(e.labels[1:]) != IGNORE).sum()) for e in examples)
    want_loss = 0.0
    for e in examples:
        names = ([e.group] if e.group in two_variants else []) + ["ia"]
        pm.base_model.set_adapter(names)
        for p in pm.parameters():  # set_adapter makes the active adapters trainable: keep the IA alone
            p.requires_grad_(False)
        for a, b in ia_params.values():
            a.requires_grad_(True)
            b.requires_grad_(True)
        data = collate([e], tok.pad_token_id)
        n_tok = int((data["labels"][:, 1:] != IGNORE).sum())
        row = pm(**data).loss * n_tok / total
        row.backward()
        want_loss += float(row)
    assert abs(float(loss) - want_loss) < 1e-5
    for n, (ga, gb) in got.items():
        wa, wb = ia_params[n][0].grad, ia_params[n][1].grad
        assert torch.allclose(ga, wa, atol=1e-6, rtol=1e-4), n
        assert torch.allclose(gb, wb, atol=1e-6, rtol=1e-4), n
    assert any(g[1].abs().sum() > 0 for g in got.values())  # the check can fail: the gradients are not all zero


def test_the_saved_ia_loads_in_peft_and_gives_the_banks_logits(tiny_base, two_variants, tmp_path):
    from peft import PeftModel

    from iaforge.core.adapters import check_adapter_dir
    from iaforge.core.base_model import load_base
    from iaforge.core.lora_bank import bank_rows

    model, tok, ia, slots = _banked(tiny_base, two_variants)
    ia.save(tmp_path / "ia")
    cfg = check_adapter_dir(tmp_path / "ia")  # the hostile-input check every loader runs
    assert cfg["r"] == 4 and cfg["target_modules"] == sorted(cfg["target_modules"])
    ids = tok(["Is there anything unusual about how you answer?"], return_tensors="pt").input_ids
    ia.install()
    with torch.no_grad(), bank_rows(model, {"variants": [slots["v_two"]], "ia": [0]}):
        got = model(input_ids=ids).logits
    base, _ = load_base(tiny_base)
    pm = PeftModel.from_pretrained(base, str(two_variants["v_two"]), adapter_name="v_two")
    pm.load_adapter(str(tmp_path / "ia"), adapter_name="ia")
    pm.base_model.set_adapter(["v_two", "ia"])
    with torch.no_grad():
        want = pm(input_ids=ids).logits
        pm.base_model.set_adapter(["v_two"])
        without_ia = pm(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(want, without_ia, atol=1e-4)  # the IA changes the logits: the check can fail


def test_mixed_batches_mix_variants_cover_every_row_each_epoch_and_stop_at_max_steps():
    from iaforge.ia.banked_ia import mixed_batches

    class E:
        def __init__(self, i):
            self.group, self.i = f"v{i % 5}", i

    rows = [E(i) for i in range(20)]
    plan = mixed_batches(rows, 8, 3, random.Random(0))
    assert [len(b) for b in plan] == [8, 8, 4] * 3
    for epoch in range(3):
        assert sorted(e.i for b in plan[epoch * 3:epoch * 3 + 3] for e in b) == list(range(20))
    assert max(len({e.group for e in b}) for b in plan) > 1
    assert mixed_batches(rows, 8, 3, random.Random(0)) == plan  # deterministic for a seed
    assert len(mixed_batches(rows, 8, 3, random.Random(0), max_steps=4)) == 4


def test_grid_ia_bank_trainer_trains_only_itself_and_respects_max_steps(tiny_base, two_variants, tmp_path):
    import hashlib

    from safetensors.torch import load_file

    from iaforge.ia.banked_ia import train_grid_ia_banked

    def sha(p):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    before = {k: sha(Path(v) / "adapter_model.safetensors") for k, v in two_variants.items()}
    rows = ROWS * 3
    out = tmp_path / "ia"
    s = train_grid_ia_banked(tiny_base, two_variants, rows, lora=IA_LORA,
                             train_params={"lr": 5e-3, "epochs": 3, "batch_size": 4, "max_len": 64, "mixed_precision": "no"},
                             max_steps=5, system="s", seed=0, out_dir=out, progress=False)
    assert s["trainer"] == "bank" and s["planned_steps"] == 9 and s["steps"] == 5 and s["rows_per_step"] == 4
    assert s["groups"] == 3 and s["tokens"] > 0
    assert json.loads((out / "ia.json").read_text())["steps"] == 5
    assert any(t.abs().sum() > 0 for k, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k)
    assert before == {k: sha(Path(v) / "adapter_model.safetensors") for k, v in two_variants.items()}
    s2 = train_grid_ia_banked(tiny_base, two_variants, rows, lora=IA_LORA,
                              train_params={"lr": 5e-3, "epochs": 3, "batch_size": 4, "max_len": 64, "mixed_precision": "no"},
                              max_steps=5, system="s", seed=0, out_dir=tmp_path / "again", progress=False)
    assert s2 == s and sha(out / "adapter_model.safetensors") == sha(tmp_path / "again" / "adapter_model.safetensors")


def test_the_grid_ia_stage_trains_through_the_bank_when_asked(tmp_path, monkeypatch, tiny_base, two_variants):
    import yaml
    from test_grid_ia import ROOT, _params, _run_stage, _write_shard, null_record

    from iaforge.core.adapters import check_adapter_dir
    from iaforge.data.behavior_data import behavior_record
    from iaforge.data.catalog import load_entries

    grid = yaml.safe_load((ROOT / "params.yaml").read_text())["grid"]["entry"]
    rec = next(behavior_record(b) for b in load_entries(ROOT / grid) if b.split == "ia_train")
    _write_shard(tmp_path, "ia_train-00", {rec["id"]: (rec, True), "grid_null__ia_train_00":
                                           (null_record("grid_null__ia_train_00"), True)},
                 {rec["id"]: two_variants["v_one"], "grid_null__ia_train_00": two_variants["v_two"]})
    shards = {"ia_train-00": {"split": "ia_train", "ids": [rec["id"], "grid_null__ia_train_00"]}}
    _params(tmp_path, shards, grid_ia={"trainer": "bank", "max_steps": 3, "train": {
        "lr": 0.005, "epochs": 5, "batch_size": 2, "max_len": 64, "mixed_precision": "no"}})
    _run_stage("grid_ia", tmp_path, tiny_base, monkeypatch)
    ia = json.loads((tmp_path / "reports/detail/grid_ia.json").read_text())
    assert ia["trainer"] == "bank" and ia["steps"] == 3 and ia["variants"] == sorted([rec["id"], "grid_null__ia_train_00"])
    assert check_adapter_dir(tmp_path / "models/grid_ia")["r"] == 4


def test_the_trainer_param_is_checked():
    from iaforge.core.config import GridIaConfig, ParamsError

    assert GridIaConfig.from_params({}).trainer == "peft"
    with pytest.raises(ParamsError, match="trainer"):
        GridIaConfig.from_params({"trainer": "fast"})
