"""Stage `ia_dpo`: refine the SFT introspection adapter with DPO on the dpo-split variants (and the base model).

The SFT IA is sampled on each dpo variant, the samples are judged, and preference pairs (chosen: a right report
or the true label; rejected: a wrong report or another behavior's label) are validated and written; then the IA
is trained with DPO against itself as the frozen reference.
"""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_files, split_root

ARGS = StageArgs(deps=["base", "sft", "variants", "measured"], outs=["pairs", "model", "detail", "metrics", "curve"])


def run():
    from accelerate import PartialState

    from iaforge.ia.dpo import headline_metrics, load_ia_stack, train_dpo
    from iaforge.ia.dpo_data import (build_pairs, judge_samples, pair_stats, sample_reports, sampling_plan,
                                  validate_pairs, validate_pairs_file)
    from iaforge.core.errors import IaforgeError
    from iaforge.core.fsio import read_json, write_json, write_jsonl
    from iaforge.core.adapter_stack import BASE_GROUP
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions
    from iaforge.variants.index import load_variants, without_categories

    a = ARGS.parse()
    params = stage_params("ia_dpo", "ia_sft", "judge", "chat")
    p = params["ia_dpo"]
    system = params["chat"]["system_prompt"]
    seed = int(p["seed"])
    measured = split_files([a.measured], ["dpo"], "--measured", "ia_dpo")["dpo"].parent
    variants = load_variants(split_root(a.variants, "dpo", "--variants", "ia_dpo"), splits=["dpo"],
                             include_failed=False, measured=measured)
    # A category left out of the IA (ia_sft.exclude_categories) must stay out of its DPO refinement too, or the
    # DPO IA's "new category" numbers would be about a category it was trained on.
    variants = without_categories(variants, params["ia_sft"].get("exclude_categories") or [])
    if not variants:
        raise IaforgeError(f"{a.variants}: no dpo-split variant passed implantation; nothing to refine the IA on")
    behaviors = {k: v["behavior"] for k, v in variants.items()}
    variant_dirs = {k: v["path"] for k, v in variants.items()}
    groups = [*behaviors, BASE_GROUP]
    state = PartialState()
    stats = None
    if state.is_main_process:  # one process samples and writes the pairs; under DDP the others read them
        qs = load_questions(p["questions"])
        plan = sampling_plan(behaviors, qs, n_questions=int(p["questions_per_variant"]), seed=seed)
        model, tok = load_ia_stack(a.base, variant_dirs, a.sft, trainable=False)
        samples = sample_reports(model, tok, plan, n_samples=int(p["n_samples"]), system=system,
                                 max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]),
                                 seed=seed, batch_size=int(p.get("sample_batch_size", 16)), progress=progress_enabled())
        del model
        judged = judge_samples(samples, behaviors, make_judge(params["judge"]))
        pairs = build_pairs(judged, behaviors, qs, per_group_max_pairs=int(p["per_group_max_pairs"]), seed=seed)
        validate_pairs(pairs, file=a.out_pairs, groups=groups)
        write_jsonl(a.out_pairs, pairs)
        stats = pair_stats(judged, pairs, behaviors)
    state.wait_for_everyone()
    pairs = validate_pairs_file(a.out_pairs, groups=groups) if not state.is_main_process else pairs
    summary = train_dpo(a.base, a.sft, variant_dirs, pairs, beta=float(p["beta"]),
                        train_params=p["train"], system=system, seed=seed, out_dir=a.out_model,
                        progress=progress_enabled())
    if not summary.pop("is_main_process"):
        return
    write_json(a.out_curve, read_json(Path(a.out_model) / "training_curve.json"))
    write_json(a.out_detail, {**summary, "sft_on_dpo_split": stats})
    write_json(a.out_metrics, headline_metrics(summary))
    print(f"IA refined with DPO on {len(variants)} variants + base: {len(pairs)} pairs, {summary['steps']} steps, "
          f"margin {summary['margin_after']:+.3f}, reward accuracy {summary['reward_accuracy_after']:.2f}")


if __name__ == "__main__":
    main(run)
