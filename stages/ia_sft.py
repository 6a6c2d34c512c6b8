"""Stage `ia_sft`: train the introspection adapter jointly across the ia_train variants (frozen)."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main, progress_enabled, split_files, split_root

ARGS = StageArgs(deps=["base", "variants", "measured"], outs=["rows", "model", "detail", "metrics", "curve"])


def run():
    from iaforge.core.fsio import read_json, write_json, write_jsonl
    from iaforge.ia.sft import headline_metrics, train_ia
    from iaforge.ia.sft_data import ia_sft_rows
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions
    from iaforge.variants.index import load_variants, without_categories

    a = ARGS.parse()
    params = stage_params("ia_sft", "chat")
    p = params["ia_sft"]
    measured = split_files([a.measured], ["ia_train"], "--measured", "ia_sft")["ia_train"].parent
    variants = load_variants(split_root(a.variants, "ia_train", "--variants", "ia_sft"), splits=["ia_train"],
                             include_failed=bool(p.get("include_failed_variants", False)), measured=measured)
    # Leave-one-category-out (the third generalization distance): `dvc exp run -S 'ia_sft.exclude_categories=[quirk]'`
    excluded = p.get("exclude_categories") or []
    variants = without_categories(variants, excluded)
    rows = ia_sft_rows([v["behavior"] for v in variants.values()], load_questions(p["questions"]),
                       per_variant=int(p["per_variant"]), base_examples=int(p["base_examples"]), seed=int(p["seed"]))
    write_jsonl(a.out_rows, rows)
    summary = train_ia(a.base, {k: v["path"] for k, v in variants.items()}, rows, lora=p["lora"],
                       train_params=p["train"], system=params["chat"]["system_prompt"], seed=int(p["seed"]),
                       out_dir=a.out_model, progress=progress_enabled())
    if not summary.pop("is_main_process"):
        return
    write_json(a.out_curve, read_json(Path(a.out_model) / "training_curve.json"))
    detail = {**summary, "excluded_categories": excluded}
    write_json(a.out_detail, detail)
    write_json(a.out_metrics, headline_metrics(detail))
    print(f"IA trained on {len(variants)} variants, final loss {summary['final_loss']:.3f}")


if __name__ == "__main__":
    main(run)
