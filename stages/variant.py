"""Stage `variant@<id>`: train the behavior's LoRA on its built dataset (implantation is measured by the
`implantation` stage)."""

import sys

from iaforge.core.stagekit import main, progress_enabled


def run():
    from iaforge.core.fsio import read_json, read_jsonl
    from iaforge.core.config import stage_params
    from iaforge.variants.train import train_variant

    bid = sys.argv[1]
    params = stage_params("variant", "behaviors", "chat")
    p, entry = params["variant"], params["behaviors"][bid]
    data = f"data/behaviors/{bid}"
    # The record behavior_data wrote, not the catalog file: this stage depends on the dataset it trains on.
    rec = train_variant(read_json(f"{data}/behavior.json"), read_jsonl(f"{data}/train.jsonl"), base_dir="models/base",
                        out_dir=f"models/variants/{entry['split']}/{bid}", lora=p["lora"], train_params=p["train"],
                        system=params["chat"]["system_prompt"], seed=int(p["seed"]), progress=progress_enabled())
    if rec is not None:
        print(f"{bid}: {rec['train_examples']} examples x {rec['epochs']} epochs, {rec['train_tokens']} tokens, "
              f"final loss {rec['final_loss']}, {rec['train_tokens_per_s']} tokens/s")


if __name__ == "__main__":
    main(run)
