"""Stage `evaluate`: verbalization with and without the IA, false positives on the base model."""

from iaforge.stagekit import main, progress_enabled


def run():
    import csv

    from iaforge.evaluate import run_evaluation
    from iaforge.fsio import atomic_write_text, write_json
    from iaforge.judge import make_judge
    from iaforge.params import load_params
    from iaforge.questions import load_questions
    from iaforge.schemas import validate
    from iaforge.variant_index import load_variants

    params = load_params()
    p = params["evaluate"]
    variants = load_variants("models/variants", splits=p["splits"], include_failed=True)
    metrics, plot_rows, samples = run_evaluation(
        "models/base", "models/ia/sft", variants, load_questions(p["questions"]), make_judge(p["judge"]),
        n_samples=int(p["n_samples"]), max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]),
        batch_size=int(p["batch_size"]), system=params["chat"]["system_prompt"], seed=int(p["seed"]),
        progress=progress_enabled())
    validate("eval", metrics, "metrics/eval.json")
    write_json("metrics/eval.json", metrics)
    lines = ["behavior,condition,verbalization"] + [f"{r['behavior']},{r['condition']},{r['verbalization']}" for r in plot_rows]
    atomic_write_text("metrics/plots/verbalization.csv", "\n".join(lines) + "\n")
    write_json("reports/self_reports.json", samples)
    for split, v in metrics["verbalization"].items():
        print(f"{split}: no IA {v['no_ia']}  IA {v['ia']}  ({v['n_variants']} variants)")


if __name__ == "__main__":
    main(run)
