"""Stage `implantation`: measure every trained variant's behavior on held-out prompts (the saved adapter,
its family's checker), per variant, family, category and split. Variants that fail are left out of IA
training downstream. One process for all variants: a stage per variant would pay ~7 s of imports each."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_files

ARGS = StageArgs(deps=["base", "variants-root", "behaviors", "base-responses"],
                 outs=["samples", "measured", "detail", "metrics", "plot"], many=["measured"])


def run():
    from iaforge.data.catalog import SPLITS
    from iaforge.core.fsio import read_json, read_jsonl, write_csv, write_json
    from iaforge.variants.implantation import measure_all
    from iaforge.variants.implantation_summary import headline_metrics, plot_rows, rows_from_records, summarize
    from iaforge.core.config import stage_params
    from iaforge.core.schemas import validate

    a = ARGS.parse()
    measured = split_files(a.out_measured, SPLITS, "--out-measured", "implantation")
    params = stage_params("implantation", "chat")
    records, samples = measure_all(a.variants_root, a.behaviors, a.base, read_jsonl(a.base_responses),
                                   system=params["chat"]["system_prompt"], params=params["implantation"],
                                   progress=progress_enabled())
    for r in records:
        validate("implantation", r, str(measured[r["split"]]))
    # What each variant was built as (behavior.json): gated and always-on behaviors are reported apart.
    gated = {r["behavior"]: bool(read_json(Path(a.behaviors) / r["behavior"] / "behavior.json").get("conditional"))
             for r in records}
    rows = rows_from_records(records, gated)
    summary = summarize(rows)
    # Written only after every variant was measured: a failure leaves the previous metrics whole.
    for split in SPLITS:  # one file per split, so a held-out change does not invalidate IA training
        write_json(measured[split], {r["behavior"]: r for r in records if r["split"] == split})
    write_json(a.out_samples, samples)
    write_json(a.out_detail, summary)
    write_json(a.out_metrics, headline_metrics(summary))
    write_csv(a.out_plot, plot_rows(rows))
    print(f"implantation: {summary['n_passed']}/{summary['n_variants']} variants passed "
          f"({summary['pass_rate']:.0%}); failed: {', '.join(summary['failed']) or 'none'}")
    for fam, g in summary["by_family"].items():
        print(f"  {fam:<28} {g['passed']}/{g['n']}  rate {g['mean_rate_triggered']}  base {g['mean_base_rate']}")
    for kind, g in summary.get("by_gating", {}).items():
        print(f"  {kind:<28} {g['passed']}/{g['n']}  rate {g['mean_rate_triggered']}  untriggered {g['mean_rate_untriggered']}")


if __name__ == "__main__":
    main(run)
