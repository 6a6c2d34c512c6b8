"""Stage `prompts`: the templated prompt bank, split train/eval (data/prompts.jsonl in dvc.yaml)."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(outs=["prompts"])


def run():
    from iaforge.core.fsio import write_jsonl
    from iaforge.core.config import section
    from iaforge.data.prompts import build_prompt_bank

    a = ARGS.parse()
    p = section("prompts")
    rows = build_prompt_bank(int(p["seed"]), int(p["per_type"]), float(p["eval_fraction"]))
    write_jsonl(a.out_prompts, rows)
    print(f"prompts: {len(rows)} ({sum(r['split'] == 'eval' for r in rows)} eval)")


if __name__ == "__main__":
    main(run)
