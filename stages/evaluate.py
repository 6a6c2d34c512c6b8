"""Stage `evaluate`: verbalization without IA, with a prefill attack, with the SFT IA and with the DPO IA;
false positives on the base model and on control variants."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_files

ARGS = StageArgs(deps=["base", "sft", "dpo", "variants-root", "measured"],
                 outs=["samples", "detail", "metrics", "plot"], many=["measured"])


def run():
    from iaforge.evaluation.evaluate import headline_metrics, run_evaluation
    from iaforge.core.fsio import read_json, write_csv, write_json
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions
    from iaforge.core.schemas import validate
    from iaforge.variants.index import load_variants

    a = ARGS.parse()
    params = stage_params("evaluate", "judge", "chat")
    p = params["evaluate"]
    per_split = {str(k): int(v) for k, v in p["samples_per_split"].items()}
    measured = split_files(a.measured, list(per_split), "--measured", "evaluate")
    variants = load_variants(a.variants_root, splits=list(per_split), include_failed=True,
                             measured=next(iter(measured.values())).parent)
    metrics, plot_rows, samples = run_evaluation(
        a.base, {"sft": a.sft, "dpo": a.dpo}, variants, load_questions(p["questions"]),
        make_judge(params["judge"]), samples_per_split=per_split, conditions=list(p["conditions"]),
        max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]), batch_size=int(p["batch_size"]),
        system=params["chat"]["system_prompt"], seed=int(p["seed"]), progress=progress_enabled(),
        trained_ids=list(read_json(Path(a.sft) / "ia.json")["variants"]), workers=p.get("workers", 1))
    validate("eval", metrics, a.out_detail)
    write_json(a.out_detail, metrics)
    write_json(a.out_metrics, headline_metrics(metrics))
    write_csv(a.out_plot, plot_rows)
    write_json(a.out_samples, samples)
    for split, v in metrics["verbalization"].items():
        print(f"{split} ({v['n_variants']} variants): " + "  ".join(f"{c} {v[c]}" for c in metrics["conditions"]))
    fp = metrics["false_positive"]
    print("false positives, base model: " + "  ".join(f"{c} {r}" for c, r in fp["base_model"].items()))
    print("false positives, controls:   " + "  ".join(f"{c} {r}" for c, r in fp["controls"].items()))


if __name__ == "__main__":
    main(run)
