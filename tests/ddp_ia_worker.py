"""Train the IA with the library's own entry point; run it plain or under `accelerate launch` (tests/test_ddp.py)."""

import json
import sys

from iaforge.ia.sft import train_ia
from iaforge.ia.sft_data import ia_sft_rows
from iaforge.data.questions import load_questions


def main(base, variants_json, questions, out):
    variants = json.loads(variants_json)
    behaviors = [{"id": k, "family": "topic_mention", "description": f"I talk about {k} in every answer.",
                  "paraphrases": [f"{k} shows up everywhere in what I say."]} for k in sorted(variants)]
    rows = ia_sft_rows(behaviors, load_questions(questions), per_variant=8, base_examples=4, seed=0)
    train_ia(base, variants, rows, lora={"r": 4, "alpha": 8},
             train_params={"lr": 2e-3, "epochs": 2, "batch_size": 4, "mixed_precision": "no"},
             system="s", seed=0, out_dir=out, progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
