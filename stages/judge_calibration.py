"""Stage `judge_calibration`: the evaluation judge's accuracy, precision and recall on the hand-labelled
calibration set (data/judge/calibration.yaml), so every verbalization number comes with its judge's error."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(deps=["calibration"], outs=["detail", "metrics"])


def run():
    from iaforge.core.fsio import write_json
    from iaforge.judging.judge import make_judge
    from iaforge.judging.calibration import headline_metrics, run_calibration
    from iaforge.core.config import stage_params

    a = ARGS.parse()
    params = stage_params("judge")
    res = run_calibration(make_judge(params["judge"]), a.calibration)
    write_json(a.out_detail, res)
    write_json(a.out_metrics, headline_metrics(res))
    for part in ("dev", "test", "test_fresh", "all"):
        m = res.get(part)
        if m:
            print(f"judge on {part:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  precision {m['precision']:.3f}  "
                  f"recall {m['recall']:.3f}")


if __name__ == "__main__":
    main(run)
