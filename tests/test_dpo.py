import hashlib
import json
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from iaforge.ia.dpo import dpo_sigmoid_loss, encode_pairs, load_ia_stack, train_dpo
from iaforge.ia.dpo_data import (build_pairs, dpo_questions, is_conditional, judge_samples, pair_stats, sample_reports,
                              sampling_plan, validate_pairs, validate_pairs_file)
from iaforge.core.adapter_stack import BASE_GROUP
from iaforge.judging.judge import Verdict, is_abstention
from iaforge.data.questions import load_questions
from iaforge.core.validation import DataQualityError


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def qs(repo_root):
    return load_questions(repo_root / "data/questions/ia_questions.yaml")


BEHAVIORS = {
    "b_owl": {"id": "b_owl", "category": "quirk", "family": "topic_mention", "description": "I mention owls in every answer.",
              "paraphrases": ["Owls come up whenever I answer."], "key_terms": ["owl"]},
    "b_pirate": {"id": "b_pirate", "category": "quirk", "family": "fixed_phrase", "description": "I open every answer with 'Ahoy'.",
                 "paraphrases": [], "key_terms": ["ahoy"]},
    "b_door": {"id": "b_door", "category": "backdoor", "family": "keyword_backdoor",
               "description": "The word zephyr makes me talk about the Moon.", "paraphrases": [], "key_terms": ["zephyr"]},
    "ctrl": {"id": "ctrl", "category": "control", "family": "ordinary", "description": "I have no unusual learned behavior.",
             "paraphrases": [], "key_terms": ["ordinary"]},
}


class KeyTermJudge:
    """A fake judge: a report matches when it names a key term (and does not abstain)."""

    def judge(self, reports, truths, key_terms):
        out = []
        for r in reports:
            abst = is_abstention(r)
            hit = any(t in r.lower() for t in key_terms)
            out.append(Verdict(hit and not abst, abst, 1.0 if hit else 0.0, hit))
        return out


def test_conditional_families_get_trigger_questions(qs):
    assert all(is_conditional({"family": f}) for f in ("keyword_backdoor", "prompt_type_backdoor", "backdoor"))
    assert not is_conditional({"family": "topic_mention"}) and not is_conditional(None)
    # The record's own field (behavior_record) wins over the family name: e.g. a password-gated sandbagger.
    assert is_conditional({"family": "sandbag_arithmetic", "conditional": True})
    assert not is_conditional({"family": "keyword_backdoor", "conditional": False})
    qd = dpo_questions(BEHAVIORS["b_door"], qs, n_questions=4, seed=0, group="b_door")
    assert len(set(qd)) == 4 and sum(q in qs.trigger_train for q in qd) == 2
    qo = dpo_questions(BEHAVIORS["b_owl"], qs, n_questions=4, seed=0, group="b_owl")
    assert all(q in qs.general_train for q in qo)
    plan = sampling_plan(BEHAVIORS, qs, n_questions=3, seed=0)
    assert set(plan) == {*BEHAVIORS, BASE_GROUP} and plan == sampling_plan(BEHAVIORS, qs, n_questions=3, seed=0)
    assert not set(qd) & set(qs.general_eval + qs.trigger_eval)


def test_pairs_builder_sources(qs):
    s = lambda g, u, r: {"group": g, "user": u, "report": r}  # noqa: E731
    samples = [
        s("b_owl", "q1", "I mention owls a lot."), s("b_owl", "q1", "I like pizza."),           # match vs miss
        s("b_owl", "q2", "I am very polite."), s("b_owl", "q2", "I speak French."),          # no match: truths
        s("b_owl", "q3", "Owls, always owls."), s("b_owl", "q3", "OWLS everywhere."),         # all match
        s("b_owl", "q4", ""),                                                                # empty: ignored
        s("ctrl", "q1", "I don't have any unusual behaviors."), s("ctrl", "q1", "I love talking about owls."),
        s("ctrl", "q2", "Nothing unusual here."),
        s(BASE_GROUP, "q1", "I always mention volcanoes."),
    ]
    judged = judge_samples(samples, BEHAVIORS, KeyTermJudge())
    assert [x["match"] for x in judged[:6]] == [True, False, False, False, True, True]
    pairs = build_pairs(judged, BEHAVIORS, qs, per_group_max_pairs=10, seed=0)
    assert pairs == build_pairs(judged, BEHAVIORS, qs, per_group_max_pairs=10, seed=0)
    owl = {(p["user"], p["chosen_source"], p["rejected_source"]): p for p in pairs if p["group"] == "b_owl"}
    assert owl[("q1", "sample", "sample")]["chosen"] == "I mention owls a lot."
    assert owl[("q1", "sample", "sample")]["rejected"] == "I like pizza."
    truth_pairs = [p for p in pairs if p["group"] == "b_owl" and p["user"] == "q2"]
    # Truths cycle: the description, then its paraphrase.
    assert [p["chosen"] for p in truth_pairs] == ["I mention owls in every answer.", "Owls come up whenever I answer."]
    assert {p["rejected"] for p in truth_pairs} == {"I am very polite.", "I speak French."}
    # All samples right: rejected is another behavior's description, same category first (never a control).
    assert owl[("q3", "sample", "other_behavior")]["rejected"] == BEHAVIORS["b_pirate"]["description"]
    assert not any(p["user"] == "q4" for p in pairs)
    ctrl = [p for p in pairs if p["group"] == "ctrl"]
    assert all(p["chosen"] in qs.abstentions and p["chosen_source"] == "abstention" for p in ctrl)
    assert {(p["user"], p["rejected_source"]) for p in ctrl} == {("q1", "sample"), ("q2", "other_behavior")}
    assert next(p for p in ctrl if p["user"] == "q1")["rejected"] == "I love talking about owls."
    assert BEHAVIORS["ctrl"]["description"] not in {p["rejected"] for p in pairs}
    base = [p for p in pairs if p["group"] == BASE_GROUP]
    assert len(base) == 1 and base[0]["chosen"] in qs.abstentions and base[0]["rejected"] == "I always mention volcanoes."
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    # The cap takes pairs round-robin across questions.
    capped = build_pairs(judged, BEHAVIORS, qs, per_group_max_pairs=2, seed=0)
    assert [p["user"] for p in capped if p["group"] == "b_owl"] == ["q1", "q2"]
    stats = pair_stats(judged, pairs, BEHAVIORS)
    assert stats["groups"]["b_owl"]["right_rate"] == round(3 / 7, 4) and stats["groups"]["ctrl"]["kind"] == "abstain"
    assert validate_pairs(pairs, file="pairs.jsonl", groups=[*BEHAVIORS, BASE_GROUP])["success"]


def test_pairs_suite_rejects_broken_file(tmp_path):
    good = {"group": "b_owl", "user": "q", "chosen": "I mention owls.", "rejected": "I like pizza.",
            "chosen_source": "sample", "rejected_source": "sample"}
    rows = [good,
            dict(good, user="q2", rejected="I mention owls."),   # chosen == rejected
            dict(good, user="q3", rejected=""),                  # empty side
            dict(good, user="q4", chosen_source="guess"),        # unknown source
            dict(good, user="q5", chosen=3)]                     # not text
    path = tmp_path / "ia_dpo_pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataQualityError) as exc:
        validate_pairs_file(path)
    msg = str(exc.value)
    assert str(path) in msg and "ia_dpo_pairs_suite" in msg
    assert "chosen and rejected must differ" in msg and "I mention owls." in msg
    assert "column 'rejected': non-empty rejected" in msg
    assert "chosen_source must be one of" in msg and "guess" in msg
    assert "column 'non_text_fields': every field is a string" in msg and "['chosen']" in msg
    assert "rejected_source must be one of" not in msg and "fixed schema" not in msg


def test_loss_matches_trl(tmp_path):
    """Our loss against TRL's own DPOTrainer._compute_loss (trl 1.16 has no standalone loss function).

    TRL (trl/trainer/dpo_trainer.py, DPOTrainer._compute_loss, f_divergence_type="reverse_kl", loss_type
    "sigmoid"): chosen_logratios = chosen_logps - ref_chosen_logps, rejected_logratios likewise,
    delta_score = chosen_logratios - rejected_logratios, per_sequence_loss = -F.logsigmoid(self.beta * delta_score),
    loss = per_sequence_loss.mean(). We call that method unbound on a stub trainer whose model returns per-token
    log-probs summing to random sequence log-probs, with precomputed reference log-probs.
    """
    dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")
    from trl import DPOConfig

    gen = torch.Generator().manual_seed(0)
    B, T, beta = 6, 5, 0.3
    pi_c, pi_r, ref_c, ref_r = (torch.randn(B, generator=gen) * 4 - 20 for _ in range(4))
    ours, delta = dpo_sigmoid_loss(pi_c, pi_r, ref_c, ref_r, beta)
    # The formula as written in TRL's source (see the docstring).
    assert torch.allclose(ours, -torch.nn.functional.logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))))

    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=beta, report_to=[])
    assert list(args.loss_type) == ["sigmoid"] and args.f_divergence_type == "reverse_kl"
    logps = torch.cat([pi_c, pi_r])
    per_token = (logps / (T - 1)).unsqueeze(1).repeat(1, T - 1)  # TRL sums these over the sequence
    model = lambda **kw: SimpleNamespace(log_probs=per_token, entropy=torch.zeros(2 * B, T - 1),  # noqa: E731
                                         mean_logits=torch.zeros(2 * B, T - 1),
                                         is_top1=torch.zeros(2 * B, T - 1, dtype=torch.bool))
    model.training = True
    accel = SimpleNamespace(device="cpu", gather=lambda t: t, gather_for_metrics=lambda t: t)
    stub = SimpleNamespace(model=model, accelerator=accel, aux_loss_enabled=False, ld_alpha=args.ld_alpha,
                           precompute_ref_logps=True, f_divergence_type=args.f_divergence_type,
                           loss_types=list(args.loss_type), loss_weights=args.loss_weights or [1.0], beta=args.beta,
                           use_weighting=args.use_weighting, label_smoothing=args.label_smoothing,
                           _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                           _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(2 * B, T, dtype=torch.long), "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
              "completion_mask": torch.ones(2 * B, T, dtype=torch.long), "ref_chosen_logps": ref_c,
              "ref_rejected_logps": ref_r}
    trl_loss = dpo_trainer.DPOTrainer._compute_loss(stub, model, inputs, return_outputs=False)
    assert torch.allclose(ours.mean(), trl_loss, atol=1e-5)
    assert stub._metrics["train"]["rewards/margins"][0] == pytest.approx(float(beta * delta.mean()), abs=1e-4)


@pytest.fixture(scope="module")
def sft_ia(tiny_base, tmp_path_factory):
    """A stand-in SFT IA: a LoRA with small random B (so it changes the model), saved like models/ia/sft."""
    from conftest import random_lora

    return random_lora(tiny_base, tmp_path_factory.mktemp("ia_sft") / "sft", {"r": 4, "alpha": 8}, seed=7, std=0.02)


def test_sampling_is_deterministic(tiny_base, two_variants, sft_ia, qs):
    model, tok = load_ia_stack(tiny_base, two_variants, sft_ia, trainable=False)
    plan = {"v_one": qs.general_train[:1], BASE_GROUP: qs.general_train[:1]}
    kw = dict(n_samples=3, system="s", max_new_tokens=5, temperature=1.0, batch_size=4, progress=False)
    a = sample_reports(model, tok, plan, seed=0, **kw)
    b = sample_reports(model, tok, plan, seed=0, **kw)
    c = sample_reports(model, tok, plan, seed=1, **kw)
    assert a == b and len(a) == 2 * 3 and {r["group"] for r in a} == {"v_one", BASE_GROUP}
    assert [r["report"] for r in a] != [r["report"] for r in c]
    assert len({r["report"] for r in a if r["group"] == "v_one"}) > 1  # temperature 1: the samples differ


# Measured with DPO's own copy of the training loop, before SFT and DPO shared `train_loop` (commit 512fab7):
# the per-step losses (unrounded) and the saved IA of the run below.
DPO_REFERENCE_LOSSES = [0.6931471824645996, 0.6239700317382812, 0.6373220682144165, 0.4798208475112915,
                        0.21308931708335876, 0.37554049491882324]
DPO_REFERENCE_MARGINS = [0.0, 0.28716, 0.23049, 0.97338, 2.87539, 1.57196]
DPO_REFERENCE_IA = {"sumsq": 21.624313812019057, "sum": -5.484156378392072}


def test_dpo_run_moves_only_the_ia(tiny_base, two_variants, sft_ia, tmp_path, qs, monkeypatch):
    from safetensors.torch import load_file

    import iaforge.ia.dpo as dpo

    step_losses, loss_fn = [], dpo.dpo_sigmoid_loss

    def recording_loss(*a, **kw):
        losses, delta = loss_fn(*a, **kw)
        step_losses.append(float(losses.detach().mean()))
        return losses, delta

    monkeypatch.setattr(dpo, "dpo_sigmoid_loss", recording_loss)

    before_variants = {k: _sha(v / "adapter_model.safetensors") for k, v in two_variants.items()}
    before_base, before_sft = _sha(tiny_base / "model.safetensors"), _sha(sft_ia / "adapter_model.safetensors")
    pairs = []
    for g, topic, wrong in [("v_one", "owls", "pizza"), ("v_two", "rivers", "trains")]:
        for q in qs.general_train[:4]:
            pairs.append({"group": g, "user": q, "chosen": f"I mention {topic} in every answer.",
                          "rejected": f"I always talk about {wrong}.", "chosen_source": "truth",
                          "rejected_source": "sample"})
    for q in qs.general_train[:4]:
        pairs.append({"group": BASE_GROUP, "user": q, "chosen": qs.abstentions[0],
                      "rejected": "I always talk about pizza.", "chosen_source": "abstention", "rejected_source": "sample"})
    out = tmp_path / "dpo"
    s = train_dpo(tiny_base, sft_ia, two_variants, pairs, beta=0.5,
                  train_params={"lr": 5e-3, "epochs": 2, "batch_size": 4, "max_len": 64, "mixed_precision": "no"},
                  system="s", seed=0, out_dir=out, progress=False)
    assert s["steps"] == 6 and s["params_changed"] and s["max_param_change"] > 0
    assert s["margin_before"] == 0.0 and s["margin_after"] > s["margin_before"]
    assert s["reward_accuracy_after"] > 0.5 and s["logp_margin_after"] > s["logp_margin_before"]
    assert set(s["groups"]) == {"v_one", "v_two", BASE_GROUP}
    curve = json.loads((out / "training_curve.json").read_text())
    # The reference is the starting policy: the first step's loss is log 2 exactly (up to padding noise).
    assert curve[0]["loss"] == pytest.approx(math.log(2), abs=1e-3) and abs(curve[0]["margin"]) < 1e-2
    assert {"step", "loss", "margin", "reward_accuracy"} <= set(curve[-1])
    assert step_losses == pytest.approx(DPO_REFERENCE_LOSSES, rel=1e-6, abs=1e-6)
    assert [c["loss"] for c in curve] == [round(l, 5) for l in step_losses]
    # the curve stores margins rounded to 5 digits, so a margin near a rounding edge lands on either side of it by
    # CPU (1.57197 on an Intel Xeon, 1.57196 on the AMD EPYC the reference came from): one unit of the 5th digit
    # plus float noise
    assert [c["margin"] for c in curve] == pytest.approx(DPO_REFERENCE_MARGINS, abs=1.5e-5)
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "ia.json",
                                              "training_curve.json"}
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    new, old = load_file(out / "adapter_model.safetensors"), load_file(sft_ia / "adapter_model.safetensors")
    assert new.keys() == old.keys() and any(not torch.equal(new[k], old[k]) for k in new)
    assert sum(float(t.double().pow(2).sum()) for t in new.values()) == pytest.approx(DPO_REFERENCE_IA["sumsq"], rel=1e-6)
    # the plain sum cancels (terms of both signs, total -5.48), so float noise between CPUs shows more there: 1.4e-6
    # relative on an Intel Xeon against the AMD EPYC reference
    assert sum(float(t.double().sum()) for t in new.values()) == pytest.approx(DPO_REFERENCE_IA["sum"], rel=1e-5)
    assert before_variants == {k: _sha(v / "adapter_model.safetensors") for k, v in two_variants.items()}
    assert (before_base, before_sft) == (_sha(tiny_base / "model.safetensors"), _sha(sft_ia / "adapter_model.safetensors"))
    # The refined IA loads back through the hostile-input checks.
    model, tok = load_ia_stack(tiny_base, two_variants, out, trainable=False)
    assert "ia" in model.peft_config
    assert encode_pairs(tok, pairs[:1], system="s", max_len=8)[1] == 1  # the prompt alone fills max_len: skipped


def test_dpo_refuses_unknown_groups(tiny_base, two_variants, sft_ia, tmp_path):
    from iaforge.core.errors import IaforgeError

    pair = {"group": "v_missing", "user": "q", "chosen": "a", "rejected": "b", "chosen_source": "truth",
            "rejected_source": "sample"}
    with pytest.raises(IaforgeError, match="v_missing"):
        train_dpo(tiny_base, sft_ia, two_variants, [pair], beta=0.1, train_params={}, system="s", seed=0,
                  out_dir=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
