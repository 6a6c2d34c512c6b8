"""Stage `implantation`: measure every trained variant's behavior on held-out prompts (the saved adapter,
its family's checker), per variant, family, category and split. Variants that fail are left out of IA
training downstream. One process for all variants: a stage per variant would pay ~7 s of imports each."""

from iaforge.core.stagekit import main, progress_enabled


def run():
    from iaforge.data.catalog import SPLITS
    from iaforge.core.fsio import read_jsonl, write_csv, write_json
    from iaforge.variants.implantation import measure_all
    from iaforge.variants.implantation_summary import plot_rows, rows_from_records, summarize
    from iaforge.core.config import load_params
    from iaforge.core.schemas import validate

    params = load_params()
    records, samples = measure_all("models/variants", "data/behaviors", "models/base",
                                   read_jsonl("data/base_responses.jsonl"), system=params["chat"]["system_prompt"],
                                   params=params["implantation"], progress=progress_enabled())
    for r in records:
        validate("implantation", r, f"metrics/implantation/{r['split']}.json")
    rows = rows_from_records(records)
    summary = summarize(rows)
    # Written only after every variant was measured: a failure leaves the previous metrics whole.
    for split in SPLITS:  # one file per split, so a held-out change does not invalidate IA training
        write_json(f"metrics/implantation/{split}.json", {r["behavior"]: r for r in records if r["split"] == split})
    write_json("reports/implantation_samples.json", samples)
    write_json("metrics/implantation_summary.json", summary)
    write_csv("metrics/plots/implantation.csv", plot_rows(rows))
    print(f"implantation: {summary['n_passed']}/{summary['n_variants']} variants passed "
          f"({summary['pass_rate']:.0%}); failed: {', '.join(summary['failed']) or 'none'}")
    for fam, g in summary["by_family"].items():
        print(f"  {fam:<28} {g['passed']}/{g['n']}  rate {g['mean_rate_triggered']}  base {g['mean_base_rate']}")


if __name__ == "__main__":
    main(run)
