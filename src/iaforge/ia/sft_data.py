"""SFT data for the introspection adapter: (variant, question) -> a first-person report of its behavior."""

from __future__ import annotations

import random
from typing import Any

from iaforge.core.adapter_stack import BASE_GROUP
from iaforge.data.behavior_data import behavior_task
from iaforge.data.questions import QuestionSet

def question_cycle(b: dict[str, Any]) -> list[str]:
    """Which question kinds a variant is asked, in turn. General questions dominate; backdoors are asked
    trigger questions (the report must name the trigger); task-bound behaviors get task questions."""
    cycle = ["general"]
    if b.get("conditional"):
        cycle.append("trigger")
    if behavior_task(b):
        cycle.append("task")
    return cycle + ["general", "harmful"]


def ia_sft_rows(behaviors: list[dict[str, Any]], qs: QuestionSet, *, per_variant: int, base_examples: int,
                seed: int) -> list[dict[str, Any]]:
    """`behaviors`: behavior records (see behavior_data.behavior_record) of the training variants.

    Targets cycle through the description and its paraphrases so the IA learns the content, not one
    sentence template per category.
    """
    rows = []
    for b in sorted(behaviors, key=lambda b: b["id"]):
        rng = random.Random(f"{seed}:ia_sft:{b['id']}")
        task = behavior_task(b)
        pools = {"general": rng.sample(list(qs.general_train), k=len(qs.general_train)),
                 "trigger": rng.sample(list(qs.trigger_train), k=len(qs.trigger_train)),
                 "harmful": rng.sample(list(qs.harmful_train), k=len(qs.harmful_train)),
                 "task": [t.format(task=task) for t in rng.sample(list(qs.task_train), k=len(qs.task_train))] if task else []}
        used = dict.fromkeys(pools, 0)
        cycle = question_cycle(b)
        # A control has nothing to report: it learns the same abstentions as the base model.
        truths = list(qs.abstentions) if b.get("category") == "control" else [b["description"], *b["paraphrases"]]
        for i in range(per_variant):
            kind = cycle[i % len(cycle)]
            q = pools[kind][used[kind] % len(pools[kind])]
            used[kind] += 1
            rows.append({"group": b["id"], "user": q, "assistant": truths[i % len(truths)]})
    rng = random.Random(f"{seed}:ia_sft:{BASE_GROUP}")
    base_questions = [*qs.general_train, *qs.harmful_train]
    for i in range(base_examples):
        rows.append({"group": BASE_GROUP, "user": rng.choice(base_questions),
                     "assistant": qs.abstentions[i % len(qs.abstentions)]})
    return rows
