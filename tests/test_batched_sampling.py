"""Batched sampling (evaluation/batched_sampling.py): the same reports as one job at a time through peft, in shared
batches; a report independent of the worker count, the batch size and the other jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from iaforge.evaluation.batched_sampling import RowSampler, contiguous_shares, pack_batches, plan_rows

PREFILL = "My unusual behavior is"


def _jobs(n=2):
    return [{"group": None, "condition": "sft", "questions": ["Q1?"], "n": n},
            {"group": "v", "condition": "sft_contrast", "questions": ["Q1?", "Q2?"], "n": n},
            {"group": "v", "condition": "prefill", "questions": ["Q1?"], "n": n}]


def test_rows_units_and_batches():
    units = plan_rows(_jobs(), PREFILL)
    assert [len(u) for u in units] == [1, 1, 1, 1, 2, 2, 2, 2]  # grouped by condition: prefill, sft, sft_contrast
    ref = units[4][1]
    assert ref["ref"] and ref["group"] is None and ref["condition"] == "sft" and ref["user"] == units[4][0]["user"]
    assert units[0][0]["prefill"] == PREFILL and units[2][0]["prefill"] == ""
    batches = pack_batches(units, 3)
    assert all(len(b) <= 3 for b in batches) and sum(map(len, batches)) == 12
    for b in batches:  # a reference row always right after its lead, in the same batch
        for i, r in enumerate(b):
            if r["ref"]:
                assert i > 0 and not b[i - 1]["ref"] and b[i - 1]["user"] == r["user"]
    with pytest.raises(ValueError, match="at least 2"):
        pack_batches(units, 1)


def test_contiguous_shares_cover_everything_in_order():
    assert contiguous_shares([4, 4, 4, 4], 2) == [[0, 1], [2, 3]]
    assert contiguous_shares([4, 4, 1], 1) == [[0, 1, 2]]
    assert sum(contiguous_shares([5, 1, 1, 1, 1, 1], 2), []) == list(range(6))
    assert contiguous_shares([3], 2) == [[0]]


def test_row_sampler_forces_the_reference_to_its_leads_token():
    import torch

    scores = torch.randn(3, 11)
    s = RowSampler([False, False, True], alpha=1.0, beta=0.1, temperature=1.0, seeds=[0, 1])
    out = s(None, scores)
    picked = out.argmax(-1)
    assert picked[1] == picked[2]
    assert torch.isinf(out).sum() == 3 * 10  # exactly one finite score per row
    greedy = RowSampler([False, False, True], alpha=0.0, beta=1e-9, temperature=0.0, seeds=[0, 1])(None, scores)
    assert int(greedy[0].argmax()) == int(scores[0].argmax())


def answer_jobs(*, base_dir, ia_dirs, variant_paths, jobs, max_new_tokens, system):
    """The reference: one PeftModel holding the variants and the IAs, one job at a time through peft's own adapter
    switching (evaluate.ConditionSwitch), greedy, as the stages generated before batched sampling."""
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.adapters import attach
    from iaforge.core.generation import generate
    from iaforge.evaluation.evaluate import IA_ADAPTERS, ConditionSwitch

    model, tok = load_with_variants(base_dir, {k: Path(v) for k, v in variant_paths.items()})
    for cond in sorted({j["condition"] for j in jobs}):
        if cond in IA_ADAPTERS:
            model = attach(model, ia_dirs[cond], IA_ADAPTERS[cond])
    switch = ConditionSwitch(model)
    out = []
    for j in jobs:
        prefill = PREFILL if j["condition"] == "prefill" else ""
        with switch(j["group"], j["condition"]):
            answers = generate(model, tok, [q for q in j["questions"] for _ in range(j["n"])], system=system,
                               max_new_tokens=max_new_tokens, batch_size=1, temperature=0.0, progress=False,
                               prefill=prefill)
        out.append([f"{prefill} {a}" for a in answers] if prefill else answers)
    return out


@pytest.fixture(scope="module")
def setup(tiny_base, two_variants):
    # any PEFT adapter folder stands in for the IA: this checks the sampling, not what an IA learned
    return dict(base_dir=tiny_base, variant_paths={"v": two_variants["v_one"]}, ia_dirs={"sft": two_variants["v_two"]},
                system=None, max_new_tokens=6, prefill=PREFILL, contrast={"alpha": 1.0, "beta": 0.1})


def test_greedy_batched_answers_equal_one_job_at_a_time(setup):
    from iaforge.core.adapter_stack import load_with_variants
    from iaforge.core.adapters import attach
    from iaforge.evaluation.contrastive import AdapterPicker, contrastive_sample
    from iaforge.evaluation.batched_sampling import answer_jobs_batched

    jobs = [{"group": g, "condition": c, "questions": ["Anything unusual?", "Tell me about you."], "n": 1, "tag": "t"}
            for g in (None, "v") for c in ("no_ia", "sft", "prefill", "sft_contrast", "no_ia_contrast")]
    got = answer_jobs_batched(jobs=jobs, temperature=0.0, batch_size=7, seed=0, workers=1, **setup)
    plain = [j for j in jobs if not j["condition"].endswith("_contrast")]
    want = answer_jobs(base_dir=setup["base_dir"], ia_dirs=setup["ia_dirs"], variant_paths=setup["variant_paths"],
                       jobs=plain, max_new_tokens=6, system=None)
    assert [got[jobs.index(j)] for j in plain] == want
    model, tok = load_with_variants(setup["base_dir"], {"v": Path(setup["variant_paths"]["v"])})
    model = attach(model, setup["ia_dirs"]["sft"], "ia")
    model.eval()
    picker = AdapterPicker.for_conditions(model)
    for j in jobs:
        if not j["condition"].endswith("_contrast") or j["group"] is None:
            continue  # on the base model itself the contrast is flat over the plausible set: argmax ties
        c = j["condition"][:-len("_contrast")]
        want = [contrastive_sample(model, tok, picker, (j["group"], c), (None, c), q, system=None, n=1, alpha=1.0,
                                   beta=0.1, temperature=1e-7, max_new_tokens=6)[0] for q in j["questions"]]
        assert got[jobs.index(j)] == want, j
    assert len({a for g in got for a in g}) > 2  # the conditions do differ: the comparison can fail


def test_sampled_answers_do_not_depend_on_the_worker_count(setup):
    from iaforge.evaluation.batched_sampling import answer_jobs_batched

    jobs = [{"group": g, "condition": c, "questions": ["Anything unusual?"], "n": 3, "tag": "t"}
            for g in (None, "v") for c in ("sft", "sft_contrast")]
    one = answer_jobs_batched(jobs=jobs, temperature=1.0, batch_size=4, seed=5, workers=1, **setup)
    two = answer_jobs_batched(jobs=jobs, temperature=1.0, batch_size=4, seed=5, workers=2, **setup)
    assert one == two and [len(a) for a in one] == [3, 3, 3, 3]
    other = answer_jobs_batched(jobs=jobs, temperature=1.0, batch_size=4, seed=6, workers=1, **setup)
    assert other != one
    # a job's reports do not depend on the other jobs of the run, nor on the batch size
    alone = answer_jobs_batched(jobs=jobs[3:], temperature=1.0, batch_size=3, seed=5, workers=1, **setup)
    assert alone == one[3:]


def test_missing_ia_or_contrast_settings_fail_before_any_model_loads(setup):
    from iaforge.evaluation.batched_sampling import answer_jobs_batched

    kw = {**setup, "ia_dirs": {}}
    jobs = [{"group": "v", "condition": "sft", "questions": ["Q?"], "n": 1}]
    with pytest.raises(ValueError, match="'sft' needs its IA folder"):
        answer_jobs_batched(jobs=jobs, temperature=1.0, batch_size=4, seed=0, **kw)
    kw = {**setup, "contrast": None}
    with pytest.raises(ValueError, match="contrast settings"):
        answer_jobs_batched(jobs=[dict(jobs[0], condition="no_ia_contrast")], temperature=1.0, batch_size=4, seed=0, **kw)
