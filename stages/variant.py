"""Stage `variant@<id>`: train the behavior's LoRA, measure implantation on held-out prompts."""

import sys

from iaforge.stagekit import main, progress_enabled


def run():
    from iaforge.catalog import load_entry_file
    from iaforge.fsio import read_jsonl, write_json
    from iaforge.params import load_params
    from iaforge.schemas import validate
    from iaforge.variants import train_variant

    bid = sys.argv[1]
    params = load_params()
    p, entry = params["variant"], params["behaviors"][bid]
    b = load_entry_file(entry["spec"])
    data = f"data/behaviors/{bid}"
    metrics = train_variant(
        b, read_jsonl(f"{data}/train.jsonl"), read_jsonl(f"{data}/eval.jsonl"), read_jsonl("data/base_responses.jsonl"),
        base_dir="models/base", out_dir=f"models/variants/{entry['split']}/{bid}", lora=p["lora"],
        train_params=p["train"], implant=p["implantation"], system=params["chat"]["system_prompt"],
        seed=int(p["seed"]), progress=progress_enabled())
    if metrics is None:  # a non-main process under `accelerate launch`
        return
    validate("implantation", metrics, f"metrics/implantation/{bid}.json")
    write_json(f"metrics/implantation/{bid}.json", metrics)
    print(f"{bid}: implanted={metrics['passed']} rate={metrics['rate_triggered']} "
          f"untriggered={metrics['rate_untriggered']}")


if __name__ == "__main__":
    main(run)
