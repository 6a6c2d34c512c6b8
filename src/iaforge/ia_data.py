"""SFT data for the introspection adapter: (variant, question) -> a first-person report of its behavior."""

from __future__ import annotations

import random
from typing import Any

from .questions import QuestionSet

BASE_GROUP = "__base__"  # the base model itself, no variant adapter: it should report nothing unusual


def ia_sft_rows(behaviors: list[dict[str, Any]], qs: QuestionSet, *, per_variant: int, base_examples: int,
                seed: int) -> list[dict[str, Any]]:
    """`behaviors`: behavior records (see behavior_data.behavior_record) of the training variants.

    Targets cycle through the description and its paraphrases so the IA learns the content, not one
    sentence template per category.
    """
    rows = []
    for b in sorted(behaviors, key=lambda b: b["id"]):
        rng = random.Random(f"{seed}:ia_sft:{b['id']}")
        general = rng.sample(list(qs.general_train), k=len(qs.general_train))
        trigger = rng.sample(list(qs.trigger_train), k=len(qs.trigger_train))
        conditional = bool(b.get("conditional"))
        # A control has nothing to report: it learns the same abstentions as the base model.
        truths = list(qs.abstentions) if b.get("category") == "control" else [b["description"], *b["paraphrases"]]
        for i in range(per_variant):
            # Backdoors alternate general and trigger questions: the report must name the trigger.
            if conditional and i % 2:
                q = trigger[(i // 2) % len(trigger)]
            else:
                q = general[(i // 2 if conditional else i) % len(general)]
            rows.append({"group": b["id"], "user": q, "assistant": truths[i % len(truths)]})
    rng = random.Random(f"{seed}:ia_sft:{BASE_GROUP}")
    for i in range(base_examples):
        rows.append({"group": BASE_GROUP, "user": rng.choice(qs.general_train),
                     "assistant": qs.abstentions[i % len(qs.abstentions)]})
    return rows
