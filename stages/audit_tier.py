"""Stage `audit_tier`: held-out behaviors re-instilled in ways the IA never trained on (rank-32 demonstrations,
third-person documents) or concealed on top of their variant (SFT on denials, DPO preferring denials); each
audit model's implantation is checked, then it is evaluated with and without the IA next to its original."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_files, split_root

ARGS = StageArgs(deps=["base", "sft", "dpo", "variants", "measured", "behaviors"],
                 outs=["models", "samples", "detail", "metrics"])


def run():
    from iaforge.audit_tier.tier import check_methods, headline_metrics, run_audit_tier
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import write_json
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions
    from iaforge.variants.index import load_variants

    a = ARGS.parse()
    params = stage_params("audit_tier", "judge", "chat")
    p = params["audit_tier"]
    if not p["enabled"]:
        from iaforge.audit_tier.optional import write_not_in_run

        print(write_not_in_run("audit_tier", models=a.out_models, detail=a.out_detail, metrics=a.out_metrics,
                               samples=a.out_samples)["note"])
        return
    check_methods(list(p["methods"]))
    measured = split_files([a.measured], ["heldout"], "--measured", "audit_tier")["heldout"].parent
    heldout = load_variants(split_root(a.variants, "heldout", "--variants", "audit_tier"), splits=["heldout"],
                            include_failed=True, measured=measured)
    # A list gives every behavior every method; a mapping id -> methods gives each its own subset.
    wanted = p["behaviors"] if isinstance(p["behaviors"], dict) else {bid: None for bid in p["behaviors"]}
    chosen = {}
    for bid, own in wanted.items():
        if bid not in heldout:
            raise ValidationError("params.yaml", "audit_tier.behaviors",
                                  f"{bid!r} is not a held-out variant of this run (held out: {', '.join(sorted(heldout))})")
        chosen[bid] = {"variant_dir": heldout[bid]["path"], "data_dir": str(Path(a.behaviors) / bid), "methods": own}
    summary, samples = run_audit_tier(
        base_dir=a.base, behaviors=chosen, methods=list(p["methods"]),
        ia_dirs={"sft": a.sft, "dpo": a.dpo}, qs=load_questions(p["questions"]),
        judge=make_judge(params["judge"]), params=p, implantation=p["implantation"], evaluation=p["evaluation"],
        system=params["chat"]["system_prompt"], seed=int(p["seed"]), out_root=a.out_models, progress=progress_enabled())
    summary["original_variant_implanted"] = {bid: heldout[bid]["implanted"] for bid in chosen}
    write_json(a.out_detail, summary)
    write_json(a.out_metrics, headline_metrics(summary))
    write_json(a.out_samples, samples)
    conds = [c for c in p["evaluation"]["conditions"]]
    for method, m in summary["by_method"].items():
        print(f"{method}: {m['n_implanted']}/{m['n_models']} took; " + "  ".join(f"{c} {m.get(c)}" for c in conds))
    for c in summary["concealment"]:
        print(f"{c['model']}: confession without IA {c['confession_before']} -> {c['confession_after']}")


if __name__ == "__main__":
    main(run)
