"""Stage `report`: reports/eval.html, one offline page from the run's metrics."""

from pathlib import Path

from iaforge.core.stagekit import main


def run():
    from iaforge.core.fsio import atomic_write_text, read_json
    from iaforge.report.html import build_report

    def opt(path):
        return read_json(path) if Path(path).exists() else None

    page = build_report(eval_metrics=read_json("metrics/eval.json"),
                        implantation=read_json("metrics/implantation_summary.json"),
                        ia_sft=opt("metrics/ia_sft.json"), ia_dpo=opt("metrics/ia_dpo.json"),
                        samples=read_json("reports/self_reports.json"),
                        judge_calibration=opt("metrics/judge_calibration.json"),
                        audit_tier=opt("metrics/audit_tier.json"), cipher_attack=opt("metrics/cipher_attack.json"))
    atomic_write_text("reports/eval.html", page)
    print(f"reports/eval.html: {len(page) // 1024} KiB")


if __name__ == "__main__":
    main(run)
