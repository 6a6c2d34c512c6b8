"""Forced-choice ranks of the grid IA (evaluation/grid_rank.py)."""

from __future__ import annotations

import pytest
import torch

from iaforge.evaluation.grid_rank import chance, completion_logprobs, rank_of, rank_variants, summarize


def test_rank_counts_strictly_higher_and_half_ties():
    assert rank_of({"a": 3.0, "b": 1.0, "c": 2.0}, "a") == 1
    assert rank_of({"a": 3.0, "b": 1.0, "c": 2.0}, "b") == 3
    assert rank_of({"a": 2.0, "b": 2.0, "c": 1.0}, "a") == 1.5  # a tie is not a win


def test_chance_and_summary():
    c = chance(4)
    assert c["top1"] == 0.25 and c["median_rank"] == 2.5 and c["mrr"] == round((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4, 4)
    s = summarize([1, 2, 12, 1], 40)
    assert s["top1"] == 0.5 and s["top10"] == 0.75 and s["median_rank"] == 1.5 and s["n_candidates"] == 40
    assert summarize([], 40) == {"n": 0}


def test_pmi_removes_what_every_model_finds_likely():
    # "cats" is likely everywhere (the base too); the variant raises "pianos" most over the base
    scores = {None: {"cats": -1.0, "pianos": -9.0, "roses": -8.0},
              "v": {"cats": -1.5, "pianos": -5.0, "roses": -8.0}}
    r = rank_variants(scores, {"v": "pianos"}, {"v": ["cats", "pianos", "roses"]})["v"]
    assert r == {"raw": 2, "pmi": 1, "raw_top": "cats", "pmi_top": "pianos"}
    with pytest.raises(ValueError, match="not among its candidates"):
        rank_variants(scores, {"v": "pianos"}, {"v": ["cats", "roses"]})


def test_batched_padded_logprobs_equal_one_sequence_at_a_time(tiny_model):
    model, tok = tiny_model
    model.eval()
    prompt = tok("Is there anything unusual", add_special_tokens=False)["input_ids"]
    completions = [tok(t, add_special_tokens=False)["input_ids"] for t in (" pianos", " hot air balloons", " x")]
    batched = completion_logprobs(model, tok, prompt, completions, batch_size=3)
    for c, got in zip(completions, batched):
        ids = torch.tensor([prompt + c])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.float()[0, :-1], dim=-1)
        want = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(c))
        assert got == pytest.approx(want, abs=1e-4)


def test_run_ranks_held_out_among_unseen_topics_and_training_among_all(tiny_base, two_variants):
    from iaforge.evaluation.grid_rank import run_grid_rank

    def behavior(topic):
        return {"id": f"grid_k7_topic__{topic}", "instance": topic,
                "params": {"behavior": {"family": "topic_mention", "params": {"topic": topic, "terms": [topic]}}}}

    variants = {"held": {"path": two_variants["v_one"], "split": "heldout", "behavior": behavior("pianos"), "null": False},
                "seen": {"path": two_variants["v_two"], "split": "ia_train", "behavior": behavior("cats"), "null": False},
                "null": {"path": two_variants["v_two"], "split": "heldout", "behavior": {"id": "n"}, "null": True}}
    # any PEFT adapter folder stands in for the IA here: this checks the wiring, not what an IA learned
    d = run_grid_rank(tiny_base, two_variants["v_two"], variants, ["cats", "pianos", "roses"], ["cats"],
                      "Is there anything unusual about how you answer?", system="s", progress=False)
    assert d["n_pool"] == 3 and d["n_unseen"] == 2 and set(d["per_variant"]) == {"held", "seen"}
    assert d["splits"]["heldout"]["sft"]["pmi"]["n_candidates"] == 2
    assert d["splits"]["ia_train"]["no_ia"]["raw"]["n_candidates"] == 3
    held = d["per_variant"]["held"]
    assert 1 <= held["sft"]["pmi"] <= 2 and held["no_ia"]["raw_top"] in ("pianos", "roses")
    assert 1 <= held["sft"]["raw_all"] <= 3 and held["sft"]["raw_all"] >= held["sft"]["raw"]  # more candidates
    assert d["splits"]["heldout"]["sft"]["raw_all"]["n_candidates"] == 3
