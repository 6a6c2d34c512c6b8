"""Stage `grid_eval`: ask every grid variant (ia_train and held-out shards, nulls) and the base model the grid
IA's question without the trigger, under no_ia, prefill, sft, dpo (with a grid DPO IA) and the contrastive conditions; topic rates, top-1 accuracy vs chance, false
positives. With an empty grid: an explicit "no grid in this run" result in seconds."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(deps=["base", "grid-models", "grid-measured", "grid-ia", "grid-dpo", "questions", "grid-entry", "grids"],
                 outs=["samples", "detail", "metrics"])


def run():
    from pathlib import Path

    from iaforge.core.config import stage_params
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import read_json, write_json
    from iaforge.evaluation.grid import (eval_questions, grid_topic_pool, headline_metrics, no_grid_detail,
                                         run_grid_eval, topic_pool_of)
    from iaforge.variants.grid_index import load_grid_variants

    a = ARGS.parse()
    params = stage_params("grid_eval", "grid_ia", "grid", "grid_shards", "chat")
    p, shards = params["grid_eval"], params["grid_shards"]
    ia = read_json(Path(a.grid_ia) / "ia.json")
    if not ia.get("grid"):
        detail = no_grid_detail()
        write_json(a.out_detail, detail)
        write_json(a.out_metrics, headline_metrics(detail))
        write_json(a.out_samples, [])
        print(f"grid_eval: {detail['note']}")
        return
    loaded = load_grid_variants(a.grid_models, a.grid_measured, shards, splits=["ia_train", "heldout"],
                                include_failed=True)
    failed = sorted(k for k, v in loaded.items() if not (v["implanted"] or v["null"]))
    variants = {k: v for k, v in loaded.items() if p["include_failed_variants"] or k not in failed}
    if p["topic_pool"] == "grid" and Path(a.grid_entry) != Path(params["grid"]["entry"]):
        raise ValidationError("dvc.yaml", "stages.grid_eval.cmd", f"--grid-entry {a.grid_entry} is not params "
                              f"grid.entry ({params['grid']['entry']}): make them the same")
    pool = (grid_topic_pool(a.grid_entry, a.grids) if p["topic_pool"] == "grid"
            else topic_pool_of([v["behavior"] for v in variants.values() if not v["null"]]))
    detail, samples = run_grid_eval(
        a.base, a.grid_ia, variants, pool, eval_questions(params["grid_ia"], a.questions), conditions=list(p["conditions"]),
        samples=int(p["samples"]), base_samples=int(p["base_samples"]), max_new_tokens=int(p["max_new_tokens"]),
        temperature=float(p["temperature"]), batch_size=int(p["batch_size"]), system=params["chat"]["system_prompt"],
        seed=int(p["seed"]), workers=p["workers"], progress=progress_enabled(), contrast=dict(p["contrast"]),
        train_samples=p["train_samples"], dpo_dir=a.grid_dpo if read_json(Path(a.grid_dpo) / "ia.json").get("steps") else None)  # steps 0: no grid DPO
    detail["topic_pool"] = p["topic_pool"]
    detail["not_evaluated"] = {k: "failed implantation" for k in failed if k not in variants}
    detail["ia_trained_on"] = ia.get("variants", [])
    write_json(a.out_detail, detail)
    write_json(a.out_metrics, headline_metrics(detail))
    write_json(a.out_samples, samples)
    for split, s in detail["splits"].items():
        print(f"{split} ({s['n_variants']} variants): " + "  ".join(
            f"{c} {s[c]} (top-1 {s[f'{c}_accuracy']})" for c in detail["conditions"]) + f"  chance {detail['chance']}")
    fp = detail["false_positive"]
    print("false positives (names a topic), base: " + "  ".join(f"{c} {v['fp']}" for c, v in fp["base_model"].items())
          + f"; nulls (n={fp['n_nulls']}): " + "  ".join(f"{c} {v['fp']}" for c, v in fp["nulls"].items()))


if __name__ == "__main__":
    main(run)
