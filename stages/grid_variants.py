"""Stage `grid_variants@<shard>`: one grid shard's datasets (as behavior_data builds them), its variants trained
jointly in one process (variants/multi_lora.py) and exported as standard PEFT folders (variants/shards.py)."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(ids=["shard"], deps=["base", "base-responses", "prompts", "self-questions"], outs=["data", "models"])


def run():
    from iaforge.core.config import stage_params
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import read_json, read_jsonl
    from iaforge.data.families import load_plugins
    from iaforge.variants.shards import (build_shard_data, load_self_questions, self_question_answers,
                                         shard_behaviors, train_shard)

    a = ARGS.parse()
    params = stage_params("grid", "grid_shards", "behavior_data", "catalog", "chat")
    load_plugins(params["catalog"]["families"])
    grid, shard = params["grid"], params["grid_shards"].get(a.shard)
    if shard is None:
        raise ValidationError("params.yaml", f"grid_shards.{a.shard}", "no such shard; run `iaforge grid sync`")
    behaviors, template = shard_behaviors(grid, a.shard, shard)
    pool = read_jsonl(a.base_responses)
    evals = [r for r in read_jsonl(a.prompts) if r["split"] == "eval"]
    gd, system = grid["data"], params["chat"]["system_prompt"]
    selfq = None
    if gd.get("self_questions"):
        qs = load_self_questions(a.self_questions)["train"]
        selfq = self_question_answers(a.base, qs, system=system, max_chars=int(params["behavior_data"]["max_chars"]))
    rows = build_shard_data(behaviors, template, pool, evals, a.out_data, n_train=int(gd["n_train"]),
                            n_eval=int(gd["n_eval"]), seed=int(grid["seed"]),
                            max_chars=int(params["behavior_data"]["max_chars"]), answer_cap=gd.get("answer_cap"),
                            twins=bool(gd.get("twins")), selfq=selfq)
    # Training reads back what was just written (the records and rows a variant.json must describe).
    from pathlib import Path

    data = Path(a.out_data)
    records = [read_json(data / b.id / "behavior.json") for b in behaviors]
    train_rows = [read_jsonl(data / b.id / "train.jsonl") for b in behaviors]
    done = train_shard(records, train_rows, base_dir=a.base, out_root=a.out_models, lora=grid["lora"],
                       train_params=grid["train"], system=system, seed=int(grid["seed"]),
                       progress=progress_enabled(), anchor=gd.get("anchor") or "sft")
    print(f"{a.shard}: {len(done)} variants, {sum(rows.values())} rows; "
          + ", ".join(f"{bid} loss {s['final_loss']}" for bid, s in done.items()))


if __name__ == "__main__":
    main(run)
