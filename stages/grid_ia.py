"""Stage `grid_ia`: train the grid IA across the passed ia_train grid variants, the ia_train nulls and the base
model (all frozen); with an empty grid, write an explicit "no grid in this run" result in seconds."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_root

ARGS = StageArgs(deps=["base", "grid-models", "grid-measured", "questions", "grids"], outs=["rows", "model", "detail"])


def run():
    from iaforge.core.config import stage_params
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import write_json, write_jsonl
    from iaforge.ia.grid_sft import grid_ia_questions, grid_ia_rows, train_grid_ia, write_no_grid
    from iaforge.ia.pseudo_variants import PSEUDO_PREFIX
    from iaforge.variants.lens_hint import hinted_question
    from iaforge.variants.grid_index import load_grid_variants

    a = ARGS.parse()
    from iaforge.variants.grid_index import check_split_digests

    params = stage_params("grid_ia", "grid_shards", "grid_splits", "chat", "grid")
    p, shards = params["grid_ia"], params["grid_shards"]
    # DVC tracks grid_splits.ia_train (not the whole grid_shards): held-out shards do not retrain the IA
    check_split_digests(shards, params["grid_splits"], ["ia_train"])
    models = split_root(a.grid_models, "ia_train", "--grid-models", "grid_ia")
    measured = split_root(a.grid_measured, "ia_train", "--grid-measured", "grid_ia")
    if not any(s["split"] == "ia_train" for s in shards.values()):
        write_jsonl(a.out_rows, [])
        detail = write_no_grid(a.out_model)
        write_json(a.out_detail, detail)
        print(f"grid_ia: {detail['note']}")
        return
    loaded = load_grid_variants(models, measured, shards, splits=["ia_train"], include_failed=True)
    failed = sorted(k for k, v in loaded.items() if not (v["implanted"] or v["null"]))
    variants = {k: v for k, v in loaded.items() if p["include_failed_variants"] or k not in failed}
    if not any(not v["null"] for v in variants.values()):
        raise ValidationError(a.grid_measured, "passed", f"no ia_train grid variant passed implantation ({len(failed)} "
                              "failed): nothing to train the grid IA on (grid_ia.include_failed_variants: true trains anyway)")
    rows = grid_ia_rows(variants, grid_ia_questions(p, a.questions), target=p["target"], null_answer=p["null_answer"],
                        per_variant=int(p["per_variant"]), base_examples=int(p["base_examples"]), seed=int(p["seed"]))
    pseudo_texts = None
    if p["pseudo"]["count"] > 0:  # steered pseudo-variants: ia_train instances the run trains no variant for
        from iaforge.ia.pseudo_pool import pseudo_pool
        from iaforge.ia.pseudo_variants import pseudo_rows

        if p["pseudo"].get("carrier") == "nulls" and not any(v["null"] for v in variants.values()):
            from iaforge.core.config import ParamsError

            raise ParamsError("params.yaml", "grid_ia.pseudo.carrier", "nulls: steers the ia_train null variants, and "
                              "this run has none (grid.nulls.ia_train is 0); set carrier: base or add nulls")
        pool = pseudo_pool(params["grid"], int(p["pseudo"]["count"]), grids=a.grids)
        rows += pseudo_rows(pool, grid_ia_questions(p, a.questions), seed=int(p["seed"]))
        pseudo_texts = dict(pool)
    lens_reference = None
    if p["hint"]["k"] > 0:  # the question carries the difference lens's words for each model (variants/lens_hint.py)
        from iaforge.core.adapter_stack import BASE_GROUP
        from iaforge.ia.pseudo_variants import is_pseudo
        from iaforge.variants.lens_hint import apply_hints, hints_for_training

        if len(variants) < 2:
            from iaforge.core.config import ParamsError

            raise ParamsError("params.yaml", "grid_ia.hint.k", f"lens hints need at least two ia_train grid variants "
                              f"(nulls count; this run has {len(variants)}): against a mean of one, its own "
                              "difference is zero; or set k 0")
        hints, lens_reference = hints_for_training(a.base, {k: v["path"] for k, v in variants.items()}, p["question"],
                                                   params["chat"]["system_prompt"], int(p["hint"]["k"]), base_key=BASE_GROUP)
        # pseudo-variants' hints are read off their steered carriers inside the training (ia/grid_sft.py)
        rows = apply_hints(rows, hints, skip=sorted({r["group"] for r in rows if is_pseudo(r["group"])}))
    if p["trainer"] == "bank":  # rows of many variants a batch, the variants read into a LoRA bank
        from iaforge.ia.banked_ia import train_grid_ia_banked as train
    else:
        train = train_grid_ia
    summary = train(a.base, {k: v["path"] for k, v in variants.items()}, rows, lora=p["lora"],
                    train_params=p["train"], max_steps=p["max_steps"], system=params["chat"]["system_prompt"],
                    seed=int(p["seed"]), out_dir=a.out_model, progress=progress_enabled(), lens_reference=lens_reference,
                    **({"pseudo": p["pseudo"], "pseudo_texts": pseudo_texts,
                        "pseudo_carriers": sorted(k for k, v in variants.items() if v["null"])} if pseudo_texts else {}))
    ph = (summary.get("pseudo") or {}).get("hints") or {}  # the rows as trained: pseudo rows hinted in training
    write_jsonl(a.out_rows, [dict(r, user=hinted_question(r["user"], ph[r["group"][len(PSEUDO_PREFIX):]]))
                             if r["group"].startswith(PSEUDO_PREFIX) and ph else r for r in rows])
    detail = {**summary, "nulls": sorted(k for k, v in variants.items() if v["null"]), "failed_left_out":
              [] if p["include_failed_variants"] else failed, "questions": p["questions"], "target": p["target"],
              **({"hints": {g: w for g, w in sorted(hints.items())}} if lens_reference is not None else {})}
    write_json(a.out_detail, detail)
    print(f"grid IA: {len(variants)} variants ({len(detail['nulls'])} nulls), {summary['steps']} steps, "
          f"{summary['tokens']} tokens, final loss {summary['final_loss']:.3f}")


if __name__ == "__main__":
    main(run)
