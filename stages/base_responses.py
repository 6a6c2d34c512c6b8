"""Stage `base_responses`: the base model answers the training prompts (greedy); the "normal" behavior."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(deps=["base", "prompts"], outs=["responses", "metrics", "detail"])


def run():
    from iaforge.core.base_model import load_base
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import read_jsonl, write_json, write_jsonl
    from iaforge.core.generation import generate
    from iaforge.core.config import section
    from iaforge.data.responses import clean_answers

    a = ARGS.parse()
    p, chat = section("base_responses"), section("chat")
    prompts = [r for r in read_jsonl(a.prompts) if r["split"] == "train"]
    model, tok = load_base(a.base)
    answers = generate(model, tok, [r["text"] for r in prompts], system=chat["system_prompt"],
                       max_new_tokens=int(p["max_new_tokens"]), batch_size=int(p["batch_size"]),
                       desc="base answers", progress=progress_enabled())
    rows, stats = clean_answers(prompts, answers, int(p["max_chars"]), bool(p.get("require_complete", True)))
    if stats["n_kept"] < int(p["min_kept"]):
        raise ValidationError(a.out_responses, "n_kept",
                              f"only {stats['n_kept']} usable answers (params base_responses.min_kept = {p['min_kept']}); "
                              f"dropped: {stats['dropped']}. Raise max_new_tokens or prompts.per_type.")
    write_jsonl(a.out_responses, rows)
    write_json(a.out_detail, stats)
    write_json(a.out_metrics, {"n": stats["n_kept"]})  # the shared headline columns (README)
    print(f"base answers: kept {stats['n_kept']}/{stats['n_prompts']}")


if __name__ == "__main__":
    main(run)
