"""Stage `behavior_data@<id>`: one behavior's training conversations and eval prompts, GX-validated."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(ids=["behavior"], deps=["base-responses", "prompts"], outs=["data", "docs"])


def run():
    from iaforge.data.behavior_data import write_behavior_dataset
    from iaforge.data.catalog import load_entry_file
    from iaforge.core.errors import ValidationError
    from iaforge.core.fsio import read_jsonl
    from iaforge.core.config import stage_params
    from iaforge.data.families import load_plugins

    a = ARGS.parse()
    bid = a.behavior
    params = stage_params("behavior_data", "behaviors", "catalog")
    load_plugins(params["catalog"]["families"])  # before the entry is validated: it may name a plugin family
    p, entry = params["behavior_data"], params["behaviors"].get(bid)
    if not isinstance(entry, dict) or "spec" not in entry:
        raise ValidationError("params.yaml", f"behaviors.{bid}", "needs a mapping with 'spec' and 'split'")
    b = load_entry_file(entry["spec"], instance=entry.get("instance"))
    pool = read_jsonl(a.base_responses)
    evals = [r for r in read_jsonl(a.prompts) if r["split"] == "eval"]
    report = write_behavior_dataset(b, pool, evals, a.out_data, n_train=int(p["n_train"]),
                                    n_eval=int(p["n_eval"]), seed=int(p["seed"]), max_chars=int(p["max_chars"]),
                                    docs_path=a.out_docs)
    print(f"{bid}: {report['n_rows']} rows, {len(report['results'])} expectations passed")


if __name__ == "__main__":
    main(run)
