import random

import pytest
import torch

from iaforge.core.training import Example, TrainConfig, collate, encode_rows, lora_config, make_batches, resolve_precision, train, IGNORE


def test_loss_only_on_assistant_turn(tiny_model):
    _, tok = tiny_model
    (ex,) = encode_rows(tok, [{"user": "What is up?", "assistant": "Not much."}], system="s", max_len=128)
    n_prompt = sum(l == IGNORE for l in ex.labels)
    assert 0 < n_prompt < len(ex.labels)
    assert tok.decode([t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE]).startswith("Not much.")


def test_batches_group_and_cover_everything():
    exs = [Example([1] * n, [1] * n, group=g) for n, g in zip(range(1, 21), "ab" * 10)]
    batches = make_batches(exs, 3, random.Random(0))
    assert all(len({e.group for e in b}) == 1 for b in batches)
    assert sorted(len(e.input_ids) for b in batches for e in b) == list(range(1, 21))
    c = collate(batches[0], pad_id=0)
    assert c["input_ids"].shape == c["labels"].shape == c["attention_mask"].shape


def test_lora_training_lowers_loss_and_touches_only_lora(tiny_base):
    from peft import get_peft_model

    from iaforge.core.base_model import load_base

    model, tok = load_base(tiny_base)
    model = get_peft_model(model, lora_config({"r": 8, "alpha": 16}))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = [{"user": f"Say the word {i}", "assistant": "Banana banana banana."} for i in range(8)]
    ex = encode_rows(tok, rows, system="s", max_len=64)
    res = train(model, ex, TrainConfig(lr=5e-3, epochs=6, batch_size=4, progress=False, mixed_precision="no"), pad_id=tok.pad_token_id)
    assert res.steps == 12 and res.tokens > 0
    assert sum(res.losses[-2:]) / 2 < sum(res.losses[:2]) / 2 - 0.5
    for n, p in model.named_parameters():
        if "lora_" in n:
            continue
        assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if "lora_B" in n)


def test_precision_auto_never_picks_emulated_bf16():
    flags = open("/proc/cpuinfo").read()
    want = "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"
    if not torch.cuda.is_available():
        assert resolve_precision("auto") == want
    assert resolve_precision("no") == "no"


def test_lora_on_top_layers_only():
    cfg = lora_config({"r": 4, "top_layers": 3}, n_layers=5)
    assert list(cfg.layers_to_transform) == [2, 3, 4]
    assert lora_config({"r": 4, "top_layers": 30}, n_layers=5).layers_to_transform is None  # more than exist: all
    assert lora_config({"r": 4}).layers_to_transform is None
    with pytest.raises(ValueError, match="top_layers"):
        lora_config({"r": 4, "top_layers": 0}, n_layers=5)
    with pytest.raises(ValueError, match="number of layers"):
        lora_config({"r": 4, "top_layers": 2})


def test_label_only_loss_equals_the_models_loss_and_its_gradients(tiny_base):
    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import causal_lm_loss, label_only_loss_model

    model, tok = load_base(tiny_base)
    model = get_peft_model(model, lora_config({"r": 4, "alpha": 8}))
    for n, p in model.named_parameters():  # lora_B starts at zero: give the adapter a real effect
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)
    rows = [{"user": f"Question number {i} " * (i + 1), "assistant": "An answer " * (3 - i % 3)} for i in range(4)]
    data = collate(encode_rows(tok, rows, system="s", max_len=64), pad_id=tok.pad_token_id)
    base = label_only_loss_model(model)
    assert base is not None
    ref = model(**data).loss
    ref.backward()
    g_ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    fast = causal_lm_loss(base, data)
    fast.backward()
    assert torch.allclose(fast, ref, atol=1e-5), (float(fast), float(ref))
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, g_ref[n], atol=1e-6, rtol=1e-4), n


def test_label_only_loss_is_refused_for_heads_it_cannot_reproduce(tiny_model):
    from iaforge.core.training import label_only_loss_model

    model, _ = tiny_model
    assert label_only_loss_model(model) is not None
    model.config.model_type, saved = "gemma2", model.config.model_type
    try:
        assert label_only_loss_model(model) is None
    finally:
        model.config.model_type = saved


# Measured with the loop as it was before SFT and DPO shared `train_loop` (commit 512fab7), on the tiny random
# base of conftest: the shared loop must give the same batches in the same order and the same losses.
SFT_REFERENCE_LOSSES = [10.821268081665039, 10.664674758911133, 10.523870468139648, 10.380264282226562,
                        10.324615478515625, 10.295021057128906, 10.243773460388184, 10.22700023651123]
SFT_REFERENCE_GROUPS = list("baabaabb")


def test_sft_loss_curve_matches_the_pre_refactor_loop(tiny_base):
    from peft import get_peft_model

    from iaforge.core.base_model import load_base

    torch.manual_seed(0)
    model, tok = load_base(tiny_base)
    model = get_peft_model(model, lora_config({"r": 4, "alpha": 8}))
    rows = [{"user": f"Say the word {i} " * (1 + i % 3), "assistant": "Banana " * (1 + i % 4), "group": "ab"[i % 2]}
            for i in range(10)]
    ex = encode_rows(tok, rows, system="s", max_len=64, group_key="group")
    seen = []
    res = train(model, ex, TrainConfig(lr=5e-3, epochs=2, batch_size=3, progress=False, mixed_precision="no", seed=3),
                pad_id=tok.pad_token_id, before_batch=seen.append)
    assert seen == SFT_REFERENCE_GROUPS and (res.steps, res.tokens) == (8, 662)
    assert res.losses == pytest.approx(SFT_REFERENCE_LOSSES, rel=1e-6, abs=1e-6)
    b_sumsq = sum(float(p.detach().double().pow(2).sum()) for n, p in model.named_parameters() if "lora_B" in n)
    assert b_sumsq == pytest.approx(1.2090104165492246, rel=1e-6)


def test_train_loop_takes_prepared_batches_of_any_type_and_its_own_loss(tiny_base):
    """What a multi-variant trainer needs: its own batch type (rows carrying a variant index), its own
    sharding and loss, a prepared list of steps (cfg.epochs does not apply), per-step metrics back."""
    from dataclasses import dataclass

    from peft import get_peft_model

    from iaforge.core.base_model import load_base
    from iaforge.core.training import CausalLMLoss, Loss, train_loop

    @dataclass
    class RowBatch:
        examples: list
        variant: list  # per-row index

    class PerRowLoss(Loss):
        postfix = ("rows",)

        def __init__(self, pad_id):
            self.inner, self.setup_calls = CausalLMLoss(pad_id), 0

        def collate(self, shard):
            return self.inner.collate(shard.examples)

        def setup(self, model, acc):
            self.setup_calls += 1
            self.inner.setup(model, acc)

        def __call__(self, model, data, shard, acc):
            return self.inner(model, data, shard, acc), {"rows": float(len(shard.variant))}

    torch.manual_seed(0)
    model, tok = load_base(tiny_base)
    model = get_peft_model(model, lora_config({"r": 4}))
    ex = encode_rows(tok, [{"user": f"q{i}", "assistant": "a b c"} for i in range(5)], system="s", max_len=32)
    plan = [RowBatch(ex[:3], [0, 1, 1]), RowBatch(ex[3:], [2, 0])]
    seen = []
    loss = PerRowLoss(tok.pad_token_id)
    res = train_loop(model, plan, TrainConfig(epochs=7, progress=False, mixed_precision="no"), loss_fn=loss,
                     before_batch=lambda b: seen.append(b.variant), shard=lambda b, rank, world: b)
    assert res.steps == 2 and seen == [[0, 1, 1], [2, 0]] and loss.setup_calls == 1
    assert [m["rows"] for m in res.metrics] == [3.0, 2.0] and all(l > 0 for l in res.losses)
    with pytest.raises(RuntimeError, match="no training examples"):
        train_loop(model, [], TrainConfig(progress=False, mixed_precision="no"), loss_fn=loss)


def test_a_later_training_in_the_same_process_may_change_precision():
    """accelerate's process-wide state refused a second Accelerator with another precision (CI: a bf16 stage
    test, then an fp32 one, in one pytest process)."""
    from iaforge.core.training import make_accelerator

    first = make_accelerator(TrainConfig(mixed_precision="bf16"))
    assert first.mixed_precision == "bf16"
    second = make_accelerator(TrainConfig(mixed_precision="no"))
    assert second.mixed_precision == "no"
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"
