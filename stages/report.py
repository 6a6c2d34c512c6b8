"""Stage `report`: reports/eval.html, one offline page from the run's detail results (reports/detail/)."""

from pathlib import Path

from iaforge.core.stagekit import main

DETAIL = "reports/detail"


def run():
    from iaforge.core.fsio import atomic_write_text, read_json
    from iaforge.report.html import build_report

    def opt(path):
        return read_json(path) if Path(path).exists() else None

    # The full per-stage results; metrics/*.json hold only their headline numbers (see report/html.py).
    page = build_report(eval_metrics=read_json(f"{DETAIL}/eval.json"),
                        implantation=read_json(f"{DETAIL}/implantation.json"),
                        ia_sft=opt(f"{DETAIL}/ia_sft.json"), ia_dpo=opt(f"{DETAIL}/ia_dpo.json"),
                        samples=read_json("reports/self_reports.json"),
                        judge_calibration=opt(f"{DETAIL}/judge_calibration.json"),
                        audit_tier=opt(f"{DETAIL}/audit_tier.json"), cipher_attack=opt(f"{DETAIL}/cipher_attack.json"))
    atomic_write_text("reports/eval.html", page)
    print(f"reports/eval.html: {len(page) // 1024} KiB")


if __name__ == "__main__":
    main(run)
