"""K variant LoRAs trained at once (per-row LoRA factors) against peft adapters trained one at a time."""

import json
import random

import pytest
import torch

from iaforge.core.training import IGNORE, Example, TrainConfig, causal_lm_loss, collate, label_only_loss_model, lora_config, train
from iaforge.variants.multi_lora import (AnchoredExample, JointBatcher, MultiLoRALinear, clip_per_variant_, export_variant, load_variant_factors,
                                         multi_lora_modules, multi_variant_loss, train_variants, unwrap_model,
                                         variant_rows, wrap_model)

K = 3
LORA = {"r": 4, "alpha": 8}


def _examples(n, seed, vocab=1000):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p, c = rng.randint(2, 9), rng.randint(2, 12)
        ids = [rng.randrange(3, vocab) for _ in range(p + c)]
        out.append(Example(ids, [IGNORE] * p + ids[p:]))
    return out


def _load(tiny_base):
    from iaforge.core.base_model import load_base

    model, _ = load_base(tiny_base)
    return model.float()


def _peft_state(pm):
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(pm).items()}


def _random_peft(tiny_base, seed, lora=LORA):
    """A peft LoRA with non-zero B (so A gets a gradient too)."""
    from peft import get_peft_model

    torch.manual_seed(seed)
    model = _load(tiny_base)
    pm = get_peft_model(model, lora_config(lora, n_layers=model.config.num_hidden_layers))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return pm


@pytest.fixture(scope="module")
def peft_variants(tiny_base):
    return [_random_peft(tiny_base, 10 + i) for i in range(K)]


@pytest.fixture(scope="module")
def multi(tiny_base, peft_variants):
    model = _load(tiny_base)
    wrap_model(model, K, r=LORA["r"], alpha=LORA["alpha"])
    for k, pm in enumerate(peft_variants):
        load_variant_factors(model, k, _peft_state(pm))
    return model


def test_wrap_targets_every_projection_and_unwrap_restores(tiny_base):
    model = _load(tiny_base)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = model(input_ids=ids).logits
    names = wrap_model(model, 2, r=4, alpha=8)
    assert len(names) == 7 * model.config.num_hidden_layers
    assert {p.shape for n, p in model.named_parameters() if p.requires_grad} == {
        m.lora_A.shape for m in multi_lora_modules(model).values()} | {m.lora_B.shape for m in multi_lora_modules(model).values()}
    with variant_rows(model, [1]):  # B starts at zero, like peft: the model is unchanged
        assert torch.equal(model(input_ids=ids).logits, before)
    with pytest.raises(RuntimeError, match="no variant index"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        with variant_rows(model, [2]):
            pass
    unwrap_model(model)
    assert not multi_lora_modules(model)
    assert torch.equal(model(input_ids=ids).logits, before)
    top = _load(tiny_base)
    names = wrap_model(top, 2, r=4, alpha=8, layers=[1])
    assert len(names) == 7 and all(".layers.1." in n for n in names)


def test_lora_a_init_like_peft():
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 32)
    m = MultiLoRALinear(lin, 4, 8, 16)
    bound = 1 / 96 ** 0.5  # kaiming_uniform(a=sqrt(5)) on fan_in=96
    top = float(m.lora_A.detach().abs().max())
    assert 0.9 * bound < top <= bound
    assert not torch.equal(m.lora_A[0], m.lora_A[1])
    assert torch.count_nonzero(m.lora_B) == 0 and m.scaling == 2.0


def test_rows_go_through_their_own_variant(tiny_base, multi, peft_variants):
    torch.manual_seed(1)
    ids = torch.randint(3, 1000, (5, 7))
    rows = [2, 0, -1, 1, 0]
    with torch.no_grad(), variant_rows(multi, rows):
        got = multi(input_ids=ids).logits
        base = peft_variants[0]
        with base.disable_adapter():
            plain = base(input_ids=ids).logits
        for i, v in enumerate(rows):
            want = plain[i] if v < 0 else peft_variants[v](input_ids=ids[i:i + 1]).logits[0]
            torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[1], got[3], atol=1e-3)  # the variants really differ


def test_one_step_loss_and_gradients_equal_solo_peft(multi, peft_variants):
    """Mixed batch (variants with very different numbers of labelled tokens): each variant's gradient equals
    the gradient of its solo peft loss on its own rows."""
    per_variant = [_examples(n, 100 + k) for k, n in enumerate([1, 4, 2])]
    ex, var = [], []
    for k, take in [(1, per_variant[1][:2]), (0, per_variant[0]), (2, per_variant[2]), (1, per_variant[1][2:])]:
        ex += take  # rows of a variant need not be contiguous
        var += [k] * len(take)
    ex.append(_examples(1, 999)[0])
    var.append(-1)  # a base-only row adds nothing to the loss
    data = collate(ex, pad_id=0)
    data["variant"] = torch.tensor(var)
    multi.zero_grad(set_to_none=True)
    loss, means = multi_variant_loss(multi, data, K)
    loss.backward()
    mods = multi_lora_modules(multi)
    solo_losses = []
    for k, pm in enumerate(peft_variants):
        pm.zero_grad(set_to_none=True)
        l = causal_lm_loss(label_only_loss_model(pm), collate(per_variant[k], pad_id=0))
        l.backward()
        solo_losses.append(float(l))
        torch.testing.assert_close(means[k], l.detach(), rtol=1e-5, atol=1e-6)
        for name, m in mods.items():
            for part in ("A", "B"):
                solo = pm.get_submodule(f"base_model.model.{name}.lora_{part}.default").weight.grad
                assert solo is not None and solo.abs().max() > 0
                torch.testing.assert_close(getattr(m, f"lora_{part}").grad[k], solo, rtol=1e-4, atol=1e-7)
    assert float(loss) == pytest.approx(sum(solo_losses), rel=1e-5)
    multi.zero_grad(set_to_none=True)


def test_kl_anchor_rows_equal_kl_to_the_base_model_by_hand(multi, peft_variants):
    """Anchored rows add KL(base || variant) at their labelled positions (the base's distribution from the
    same peft model with its adapter off), the other rows their cross-entropy; per-variant token means as
    before, and the gradient through the anchored rows is the KL's."""
    import torch.nn.functional as F

    plain = _examples(3, 7)
    anchored = [AnchoredExample(e.input_ids, e.labels, anchor=True) for e in _examples(2, 8)]
    ex = [plain[0], anchored[0], plain[1], anchored[1], plain[2]]
    var = [0, 0, 1, 1, 2]
    batch_data = collate(ex, pad_id=0)
    batch_data["variant"] = torch.tensor(var)
    batch_data["anchor"] = torch.tensor([isinstance(e, AnchoredExample) and e.anchor for e in ex])
    multi.zero_grad(set_to_none=True)
    loss, means = multi_variant_loss(multi, batch_data, K)
    loss.backward()
    want_total = 0.0
    for k, pm in enumerate(peft_variants):
        rows = [e for e, v in zip(ex, var) if v == k]
        tok_losses = []
        pm.zero_grad(set_to_none=True)
        for e in rows:
            ids = torch.tensor([e.input_ids])
            lab = torch.tensor(e.labels[1:])
            at = lab != IGNORE
            logits = pm(input_ids=ids).logits[0, :-1][at].float()
            if getattr(e, "anchor", False):
                with torch.no_grad(), pm.disable_adapter():
                    ref = F.log_softmax(pm(input_ids=ids).logits[0, :-1][at].float(), -1)
                own = F.log_softmax(logits, -1)
                tok_losses.append((ref.exp() * (ref - own)).sum(-1))
            else:
                tok_losses.append(F.cross_entropy(logits, lab[at], reduction="none"))
        solo = torch.cat(tok_losses).mean()
        solo.backward()
        torch.testing.assert_close(means[k], solo.detach(), rtol=1e-5, atol=1e-6)
        want_total += float(solo)
        name, m = next(iter(multi_lora_modules(multi).items()))
        g = pm.get_submodule(f"base_model.model.{name}.lora_B.default").weight.grad
        torch.testing.assert_close(m.lora_B.grad[k], g, rtol=1e-4, atol=1e-7)
    assert float(loss) == pytest.approx(want_total, rel=1e-5)
    # an anchored row's KL is positive here (B != 0: the variants differ from the base) and far below its CE
    assert 0 < float(means[1]) < float(multi_variant_loss(multi, {**batch_data, "anchor": torch.zeros(5, dtype=torch.bool)}, K)[1][1])
    multi.zero_grad(set_to_none=True)


def test_kl_anchor_gives_a_fresh_lora_no_gradient(tiny_base):
    """At B = 0 the variant is the base model: anchored rows alone pull nowhere (KL 0, zero gradient), which is
    why null variants (base answers only) keep cross-entropy (variants/shards.train_shard)."""
    model = _load(tiny_base)
    wrap_model(model, 1, r=LORA["r"], alpha=LORA["alpha"])
    ex = [AnchoredExample(e.input_ids, e.labels, anchor=True) for e in _examples(3, 9)]
    from iaforge.variants.multi_lora import VariantBatch

    data = VariantBatch(ex, [0, 0, 0]).collate(pad_id=0)
    assert data["anchor"].all()
    loss, _ = multi_variant_loss(model, data, 1)
    loss.backward()
    assert abs(float(loss)) < 1e-5
    assert all(float(m.lora_B.grad.abs().max()) < 1e-6 for m in multi_lora_modules(model).values())
    assert "anchor" not in VariantBatch(_examples(2, 3), [0, 0]).collate(pad_id=0)  # plain rows: no anchor key
    unwrap_model(model)


def test_export_is_a_standard_peft_adapter(tmp_path, tiny_base, multi, peft_variants):
    from peft import PeftModel, get_peft_model
    from peft.utils import load_peft_weights, set_peft_model_state_dict
    from safetensors import safe_open

    from iaforge.core.adapters import check_adapter_dir

    out = export_variant(multi, 1, tmp_path / "v1", LORA, base_model_name_or_path=str(tiny_base))
    assert check_adapter_dir(out)["r"] == LORA["r"]
    ref_dir = tmp_path / "ref"
    peft_variants[1].save_pretrained(ref_dir)
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as a, \
            safe_open(str(ref_dir / "adapter_model.safetensors"), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            torch.testing.assert_close(a.get_tensor(key), b.get_tensor(key), rtol=0, atol=0)
    mine, ref = (json.loads((d / "adapter_config.json").read_text()) for d in (out, ref_dir))
    assert sorted(mine) == sorted(ref)
    for field in ("peft_type", "r", "lora_alpha", "layers_to_transform", "task_type", "bias", "inference_mode"):
        assert mine[field] == ref[field], field
    assert mine["target_modules"] == sorted(ref["target_modules"])  # peft writes a set, in hash order
    assert mine["base_model_name_or_path"] == str(tiny_base)

    fresh = get_peft_model(_load(tiny_base), lora_config(LORA, n_layers=2))
    res = set_peft_model_state_dict(fresh, load_peft_weights(str(out)))
    assert not res.unexpected_keys and not [k for k in res.missing_keys if "lora_" in k]
    loaded = PeftModel.from_pretrained(_load(tiny_base), str(out))
    ids = torch.randint(3, 1000, (2, 9))
    with torch.no_grad(), variant_rows(multi, [1, 1]):
        want = multi(input_ids=ids).logits
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)


def test_export_of_a_layer_subset_and_refusals(tmp_path, tiny_base):
    from peft import PeftModel

    model = _load(tiny_base)
    wrap_model(model, 2, r=4, alpha=8, layers=[1], target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for m in multi_lora_modules(model).values():
            m.lora_B.normal_(0, 0.05)
    cfg = {"r": 4, "alpha": 8, "top_layers": 1, "target_modules": ["q_proj", "v_proj"]}
    out = export_variant(model, 0, tmp_path / "top", cfg, base_model_name_or_path="tiny")
    loaded = PeftModel.from_pretrained(_load(tiny_base), str(out))
    ids = torch.randint(3, 1000, (1, 6))
    with torch.no_grad(), variant_rows(model, [0]):
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="targets"):
        export_variant(model, 0, tmp_path / "bad", {"r": 4, "alpha": 8}, base_model_name_or_path="tiny")
    with pytest.raises(ValueError, match="r=4"):
        export_variant(model, 0, tmp_path / "bad", {**cfg, "r": 8}, base_model_name_or_path="tiny")
    assert not (tmp_path / "bad").exists()


def test_joint_batches_are_the_solo_batches():
    exs = [_examples(n, k) for k, n in enumerate([5, 8, 3])]
    cfgs = [TrainConfig(batch_size=2, epochs=2, seed=7)] * 3
    batcher = JointBatcher(exs, cfgs)
    assert batcher.steps_by_variant == [6, 8, 4] and len(batcher) == 8
    batches = list(batcher)
    assert batches[-1].present == [1] and batches[0].present == [0, 1, 2]
    from iaforge.core.training import make_batches

    rng = random.Random(7)
    solo = [b for _ in range(2) for b in make_batches(exs[2], 2, rng)]
    got = [[e for e, v in zip(b.examples, b.variants) if v == 2] for b in batches[:4]]
    assert got == solo


def test_joint_training_equals_training_each_variant_alone(tmp_path, tiny_base):
    """Joint training on `core.training.train_loop`, clipping that binds for some variants only: every
    exported variant equals the same variant trained alone by `core.training.train`."""
    from peft import PeftModel
    from safetensors.torch import load_file

    exs = [_examples(n, 50 + k) for k, n in enumerate([6, 5, 6])]  # 2 batches of 3 per epoch each
    cfg = TrainConfig(lr=5e-3, epochs=2, batch_size=3, seed=3, warmup_frac=0.3, grad_clip=0.5,
                      mixed_precision="no", progress=False)
    torch.manual_seed(0)
    model = _load(tiny_base)
    wrap_model(model, K, r=LORA["r"], alpha=LORA["alpha"])
    with torch.no_grad():  # non-zero B: A trains from the first step too
        for m in multi_lora_modules(model).values():
            m.lora_B.normal_(0, 0.02)
    starts = [export_variant(model, k, tmp_path / f"start{k}", LORA, str(tiny_base)) for k in range(K)]
    first = next(iter(JointBatcher(exs, [cfg] * K))).collate(pad_id=0)
    multi_variant_loss(model, first, K)[0].backward()
    norms = clip_per_variant_(model, cfg.grad_clip)
    model.zero_grad(set_to_none=True)
    assert (norms > 0.5).any() and (norms < 0.5).any(), norms  # a global clip would give other results
    res = train_variants(model, exs, cfg, pad_id=0)
    assert res.steps == 4 and all(len(l) == 4 for l in res.losses_by_variant)
    assert res.losses[0] == pytest.approx(sum(l[0] for l in res.losses_by_variant), rel=1e-6)
    for k in range(K):
        solo = PeftModel.from_pretrained(_load(tiny_base), str(starts[k]), is_trainable=True)
        solo_res = train(solo, exs[k], cfg, pad_id=0)
        assert solo_res.losses == pytest.approx(res.losses_by_variant[k], rel=1e-5)
        joint = load_file(str(export_variant(model, k, tmp_path / f"v{k}", LORA, str(tiny_base)) / "adapter_model.safetensors"))
        start = load_file(str(starts[k] / "adapter_model.safetensors"))
        want = _peft_state(solo)
        assert sorted(joint) == sorted(want)
        # Same math in another float summation order (batched bmm vs one adapter's matmuls, wider padding).
        for n in want:
            torch.testing.assert_close(joint[n], want[n], rtol=1e-4, atol=2e-6)
        moved = max(float((want[n] - start[n]).abs().max()) for n in want)
        assert moved > 1e-3  # training moved the factors: the equality is not trivial


def test_train_variants_refuses_ragged_variants(tiny_base):
    model = _load(tiny_base)
    wrap_model(model, 2, r=4, alpha=8)
    cfg = TrainConfig(epochs=1, batch_size=2, mixed_precision="no", progress=False)
    with pytest.raises(ValueError, match=r"\[2, 1\]"):
        train_variants(model, [_examples(4, 0), _examples(2, 1)], cfg, pad_id=0)
