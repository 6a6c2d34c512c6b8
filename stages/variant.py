"""Stage `variant@<id>`: train the behavior's LoRA on its built dataset (implantation is measured by the
`implantation` stage)."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(ids=["behavior"], deps=["base", "train", "record"], outs=["model"])


def run():
    from iaforge.core.fsio import read_json, read_jsonl
    from iaforge.core.config import stage_params
    from iaforge.variants.train import train_variant

    a = ARGS.parse()
    bid = a.behavior
    params = stage_params("variant", "behaviors", "chat")
    p = params["variant"]
    # The record behavior_data wrote, not the catalog file: this stage depends on the dataset it trains on.
    rec = train_variant(read_json(a.record), read_jsonl(a.train), base_dir=a.base,
                        out_dir=a.out_model, lora=p["lora"], train_params=p["train"],
                        system=params["chat"]["system_prompt"], seed=int(p["seed"]), progress=progress_enabled())
    if rec is not None:
        print(f"{bid}: {rec['train_examples']} examples x {rec['epochs']} epochs, {rec['train_tokens']} tokens, "
              f"final loss {rec['final_loss']}, {rec['train_tokens_per_s']} tokens/s")


if __name__ == "__main__":
    main(run)
