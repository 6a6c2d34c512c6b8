"""Stage `report`: reports/eval.html, one offline page from the run's detail results (reports/detail/)."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(deps=["eval", "implantation", "ia-sft", "ia-dpo", "samples", "judge-calibration", "audit-tier",
                       "cipher-attack", "grid", "grid-ia", "grid-dpo", "scaling"], outs=["page"])


def run():
    from iaforge.core.fsio import atomic_write_text, read_json
    from iaforge.report.html import build_report

    a = ARGS.parse()

    def opt(path):
        return read_json(path) if Path(path).exists() else None

    # The full per-stage results; metrics/*.json hold only their headline numbers (see report/html.py).
    page = build_report(eval_metrics=read_json(a.eval), implantation=read_json(a.implantation),
                        ia_sft=opt(a.ia_sft), ia_dpo=opt(a.ia_dpo), samples=read_json(a.samples),
                        judge_calibration=opt(a.judge_calibration), audit_tier=opt(a.audit_tier),
                        cipher_attack=opt(a.cipher_attack), grid=opt(a.grid), grid_ia=opt(a.grid_ia),
                        scaling=opt(a.scaling), grid_dpo=opt(a.grid_dpo))
    atomic_write_text(a.out_page, page)
    print(f"{a.out_page}: {len(page) // 1024} KiB")


if __name__ == "__main__":
    main(run)
