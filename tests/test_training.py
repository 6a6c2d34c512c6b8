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
