"""Stage `grid_dpo`: refine the grid IA with DPO on the grid's dpo split (its variants, its nulls, the base model).

The SFT grid IA is sampled on each group with its question (no trigger), the samples are judged by topic terms,
and preference pairs (ia/grid_dpo.py) are validated and written; then the IA trains with DPO against itself as
the frozen reference. Without a dpo split (grid.counts.dpo and grid.nulls.dpo 0) or without a grid: an explicit
"no grid DPO in this run" result in seconds.
"""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(deps=["base", "grid-models", "grid-measured", "grid-ia", "questions", "grid-entry", "grids"],
                 outs=["pairs", "model", "detail"])


def run():
    from pathlib import Path

    from iaforge.core.adapter_stack import BASE_GROUP
    from iaforge.core.config import stage_params
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import read_json, write_json, write_jsonl
    from iaforge.evaluation.grid import grid_topic_pool
    from iaforge.ia.dpo import load_ia_stack, train_dpo
    from iaforge.ia.dpo_data import sample_reports, validate_pairs
    from iaforge.ia.grid_dpo import grid_dpo_pairs, judge_grid_samples, sft_on_dpo_split, write_no_dpo
    from iaforge.ia.grid_sft import grid_ia_questions
    from iaforge.variants.grid_index import load_grid_variants, topic_of

    a = ARGS.parse()
    params = stage_params("grid_dpo", "grid_ia", "grid", "grid_shards", "chat")
    p, pia, shards = params["grid_dpo"], params["grid_ia"], params["grid_shards"]
    sft = read_json(Path(a.grid_ia) / "ia.json")
    if not sft.get("grid") or not any(s["split"] == "dpo" for s in shards.values()):
        write_jsonl(a.out_pairs, [])
        detail = write_no_dpo(a.out_model)
        write_json(a.out_detail, detail)
        print(f"grid_dpo: {detail['note']}")
        return
    if Path(a.grid_entry) != Path(params["grid"]["entry"]):
        raise ValidationError("dvc.yaml", "stages.grid_dpo.cmd", f"--grid-entry {a.grid_entry} is not params "
                              f"grid.entry ({params['grid']['entry']}): make them the same")
    # Every dpo variant, passed or not, as grid_ia trains on every ia_train variant (include_failed_variants).
    variants = load_grid_variants(a.grid_models, a.grid_measured, shards, splits=["dpo"],
                                  include_failed=bool(pia["include_failed_variants"]))
    if not variants:
        raise ValidationError(a.grid_measured, "passed", "no dpo-split grid variant passed implantation: nothing to "
                              "refine the grid IA on (grid_ia.include_failed_variants: true refines anyway)")
    pool = grid_topic_pool(a.grid_entry, a.grids)
    system, seed = params["chat"]["system_prompt"], int(p["seed"])
    questions = grid_ia_questions(pia, a.questions)
    variant_dirs = {k: v["path"] for k, v in variants.items()}
    plan = {g: questions for g in [*sorted(variants), BASE_GROUP]}
    from iaforge.variants.lens_hint import REFERENCE_FILE

    if (Path(a.grid_ia) / REFERENCE_FILE).is_file():  # an IA trained with lens hints is sampled (and refined) on them
        from iaforge.variants.lens_hint import hinted_question, hints_for_eval

        hints = hints_for_eval(a.base, a.grid_ia, variant_dirs, system, base_key=BASE_GROUP)
        plan = {g: [hinted_question(q, hints[g]) for q in qs] for g, qs in plan.items()}
    model, tok = load_ia_stack(a.base, variant_dirs, a.grid_ia, trainable=False)
    samples = sample_reports(model, tok, plan, n_samples=int(p["n_samples"]), system=system,
                             max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]), seed=seed,
                             batch_size=int(p["sample_batch_size"]), progress=progress_enabled())
    del model
    judged = judge_grid_samples(samples, variants, pool)
    # "a training topic the variant does not have": the wrong label when a group has no wrong sample
    trained = load_grid_variants(a.grid_models, a.grid_measured, shards, splits=["ia_train"], include_failed=True)
    trained_topics = sorted({topic_of(v["behavior"]) for k, v in trained.items()
                             if not v["null"] and k in set(sft.get("variants", []))} - {None})
    pairs = grid_dpo_pairs(judged, variants, target=pia["target"], null_answer=pia["null_answer"],
                           negatives=trained_topics or sorted(pool), per_group_max_pairs=int(p["per_group_max_pairs"]),
                           seed=seed)
    validate_pairs(pairs, file=a.out_pairs, groups=[*variants, BASE_GROUP])
    write_jsonl(a.out_pairs, pairs)
    summary = train_dpo(a.base, a.grid_ia, variant_dirs, pairs, beta=float(p["beta"]), train_params=p["train"],
                        system=system, seed=seed, out_dir=a.out_model, progress=progress_enabled())
    summary.pop("is_main_process", None)
    summary.pop("tokens_per_s", None)  # a timing in a tracked output would change its hash on every run
    before = sft_on_dpo_split(judged, variants)
    detail = {"grid": True, **summary, "variants": sorted(variants),
              "topics": {k: topic_of(v["behavior"]) for k, v in sorted(variants.items()) if not v["null"]},
              "sft_on_dpo_split": before}
    write_json(a.out_detail, detail)
    print(f"grid IA refined with DPO on {len(variants)} dpo variants + base: {len(pairs)} pairs, {summary['steps']} "
          f"steps, margin {summary['margin_after']:+.3f}; the SFT IA named the dpo topics {before['topic_right']}")


if __name__ == "__main__":
    main(run)
