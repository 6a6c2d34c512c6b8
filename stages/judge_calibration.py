"""Stage `judge_calibration`: the evaluation judge's accuracy, precision and recall on the hand-labelled
calibration set (data/judge/calibration.yaml), so every verbalization number comes with its judge's error.

Optional, for a fresh labelled set written after the judge was frozen (docs/judge.md): `--fresh <file>` with
`--catalog <dir>` (its truths are catalog descriptions) and `--topics <file>` (grid truths), and `--learned
<folder>` (the judge_train output). Every judge then gets scored on it: the embedding judge (params `judge`
thresholds), the learned judge when given, and the configured judge if it is neither, into a top-level `fresh`
section of the metrics file ({judge: {n, accuracy, precision, recall}}) and the detail file."""

import argparse

from iaforge.core.stagekit import StageArgs, main


class _Args(StageArgs):
    OPTIONAL = ("fresh", "catalog", "topics", "learned")

    def parser(self, prog):
        ap = super().parser(prog)
        for name in self.OPTIONAL:  # absent ones stay out of the namespace (argparse.SUPPRESS)
            ap.add_argument(f"--{name}", default=argparse.SUPPRESS)
        return ap


ARGS = _Args(deps=["calibration"], outs=["detail", "metrics"])


def run():
    from pathlib import Path

    from iaforge.core.config import stage_params
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import write_json
    from iaforge.judging.calibration import headline_metrics, run_calibration, run_fresh
    from iaforge.judging.judge import make_judge

    a = ARGS.parse()
    params = stage_params("judge")
    cfg = params["judge"]
    learned = getattr(a, "learned", None)
    judge = make_judge(cfg)
    configured = getattr(judge, "dir", None)  # the learned judge's folder (judge.model, or its default)
    if learned and cfg["kind"] == "learned" and configured and Path(learned).resolve() != Path(configured).resolve():
        # the configured judge fills the learned slot: another folder under the same name would be silently
        # replaced by the configured one in the report
        raise ValidationError("params.yaml", "judge.model", f"is {configured}, but --learned is {learned}: with "
                              "judge.kind learned, --learned must be the configured model (or change judge.model)")
    res = run_calibration(judge, a.calibration)
    fresh = getattr(a, "fresh", None)
    judges = {cfg["kind"]: judge}
    if fresh or learned:
        if "embedding" not in judges:
            judges["embedding"] = make_judge({**cfg, "kind": "embedding"})
        if learned and "learned" not in judges:
            judges["learned"] = make_judge({**cfg, "kind": "learned", "model": learned})
        # every judge on the calibration set too, side by side (the configured one is `res` itself)
        res["judges"] = {name: {p: {k: m[k] for k in ("n", "accuracy", "precision", "recall")}
                                for p, m in (res if name == cfg["kind"] else run_calibration(j, a.calibration)).items()
                                if p in ("dev", "test", "test_fresh", "all")}
                         for name, j in judges.items()}
    if fresh:
        if not getattr(a, "catalog", None):
            raise ValidationError("dvc.yaml", "stages.judge_calibration.cmd", "--fresh needs --catalog")
        res["fresh"] = run_fresh(judges, fresh, a.catalog, getattr(a, "topics", None))[1]
    head = headline_metrics(res)
    write_json(a.out_detail, res)
    write_json(a.out_metrics, head)
    for part in ("dev", "test", "test_fresh", "all"):
        m = res.get(part)
        if m:
            print(f"judge on {part:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  precision {m['precision']:.3f}  "
                  f"recall {m['recall']:.3f}")
    for name, m in (head.get("fresh") or {}).items():
        print(f"fresh set, {name:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  precision {m['precision']:.3f}  "
              f"recall {m['recall']:.3f}")


if __name__ == "__main__":
    main(run)
