"""Stage `grid_implantation@<shard>`: every variant of one grid shard measured on its held-out prompts (the
same record schema as metrics/implantation/<split>.json), one model load for the shard
(variants/grid_implantation.py)."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(ids=["shard"], deps=["base", "models", "data", "base-responses", "self-questions"], outs=["measured"])


def run():
    from iaforge.core.config import stage_params
    from iaforge.core.fsio import read_jsonl, write_json
    from iaforge.core.schemas import validate
    from iaforge.data.families import load_plugins
    from iaforge.variants.grid_implantation import measure_shard
    from iaforge.variants.shards import load_self_questions

    a = ARGS.parse()
    params = stage_params("grid", "implantation", "catalog", "chat")
    load_plugins(params["catalog"]["families"])
    gi = params["grid"]["implantation"]
    own = gi.get("thresholds")
    records, _ = measure_shard(a.models, a.data, a.base, read_jsonl(a.base_responses),
                               system=params["chat"]["system_prompt"], params=gi,
                               thresholds=own or params["implantation"]["thresholds"],
                               override_thresholds=own is not None,
                               probe=load_self_questions(a.self_questions)["probe"])
    for r in records.values():
        validate("implantation", r, a.out_measured)
    write_json(a.out_measured, records)
    passed = sum(r["passed"] for r in records.values())
    print(f"{a.shard}: {passed}/{len(records)} variants passed; "
          + ", ".join(f"{k} {r['rate_triggered']}/{r['rate_untriggered']}/leak {r.get('leak_rate')}" for k, r in records.items()))


if __name__ == "__main__":
    main(run)
