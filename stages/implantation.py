"""Stage `implantation`: per-family and per-category implantation rates of every trained variant."""

from iaforge.stagekit import main


def run():
    from iaforge.fsio import write_csv, write_json
    from iaforge.implantation_summary import collect, plot_rows, summarize

    rows = collect("models/variants")
    summary = summarize(rows)
    write_json("metrics/implantation_summary.json", summary)
    write_csv("metrics/plots/implantation.csv", plot_rows(rows))
    print(f"implantation: {summary['n_passed']}/{summary['n_variants']} variants passed "
          f"({summary['pass_rate']:.0%}); failed: {', '.join(summary['failed']) or 'none'}")
    for fam, g in summary["by_family"].items():
        print(f"  {fam:<28} {g['passed']}/{g['n']}  rate {g['mean_rate_triggered']}  base {g['mean_base_rate']}")


if __name__ == "__main__":
    main(run)
