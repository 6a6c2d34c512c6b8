"""Stage `evaluate`: verbalization without IA, with a prefill attack, with the SFT IA and with the DPO IA;
false positives on the base model and on control variants."""

from iaforge.core.stagekit import main, progress_enabled


def run():
    from iaforge.evaluation.evaluate import headline_metrics, run_evaluation
    from iaforge.core.fsio import read_json, write_csv, write_json
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions
    from iaforge.core.schemas import validate
    from iaforge.variants.index import load_variants

    params = stage_params("evaluate", "judge", "chat")
    p = params["evaluate"]
    per_split = {str(k): int(v) for k, v in p["samples_per_split"].items()}
    variants = load_variants("models/variants", splits=list(per_split), include_failed=True)
    metrics, plot_rows, samples = run_evaluation(
        "models/base", {"sft": "models/ia/sft", "dpo": "models/ia/dpo"}, variants, load_questions(p["questions"]),
        make_judge(params["judge"]), samples_per_split=per_split, conditions=list(p["conditions"]),
        max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]), batch_size=int(p["batch_size"]),
        system=params["chat"]["system_prompt"], seed=int(p["seed"]), progress=progress_enabled(),
        trained_ids=list(read_json("models/ia/sft/ia.json")["variants"]), workers=p.get("workers", 1))
    validate("eval", metrics, "reports/detail/eval.json")
    write_json("reports/detail/eval.json", metrics)
    write_json("metrics/eval.json", headline_metrics(metrics))
    write_csv("metrics/plots/verbalization.csv", plot_rows)
    write_json("reports/self_reports.json", samples)
    for split, v in metrics["verbalization"].items():
        print(f"{split} ({v['n_variants']} variants): " + "  ".join(f"{c} {v[c]}" for c in metrics["conditions"]))
    fp = metrics["false_positive"]
    print("false positives, base model: " + "  ".join(f"{c} {r}" for c, r in fp["base_model"].items()))
    print("false positives, controls:   " + "  ".join(f"{c} {r}" for c, r in fp["controls"].items()))


if __name__ == "__main__":
    main(run)
