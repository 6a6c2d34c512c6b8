"""Preference pairs for the DPO refinement of the introspection adapter.

The SFT IA is sampled (temperature 1, fixed seed) on variants it never trained on (the `dpo` split) and on the
base model; a judge sorts each self-report into right or wrong, and each wrong report becomes the "rejected"
side of a pair whose "chosen" side is a right report (or the true label):

| group                 | chosen                                        | rejected                                        |
|-----------------------|-----------------------------------------------|-------------------------------------------------|
| variant with behavior | a sample the judge matched, else a truth      | a sample the judge did not match (hallucinated, |
|                       | (description / paraphrase, cycled)            | generic or denying), else another behavior's    |
|                       |                                               | description (same category first)               |
| control, base model   | an abstention from the question set (cycled)  | a sample that claims a behavior, else another   |
|                       |                                               | behavior's description                          |

Everything except `sample_reports` is a pure function of its arguments, so tests inject samples and judges.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from typing import Any, Sequence

from iaforge.core.adapter_stack import BASE_GROUP
from iaforge.judging.judge import Judge, is_abstention
from iaforge.data.questions import QuestionSet

PAIR_COLUMNS = ["group", "user", "chosen", "rejected", "chosen_source", "rejected_source"]
# chosen: "sample" = a report the judge matched, "truth" = the behavior's description or a paraphrase,
#         "abstention" = an abstention from the question set (controls and the base model).
# rejected: "sample" = a report the judge did not match (or, for controls/base, one that claims a behavior),
#           "other_behavior" = the description of another behavior.
CHOSEN_SOURCES = ("sample", "truth", "abstention")
REJECTED_SOURCES = ("sample", "other_behavior")
MAX_PAIR_CHARS = 2000
DERIVED = ["user_lower", "chosen_if_same_as_rejected", "non_text_fields"]  # added by validate_pairs / validate_frame


def is_conditional(behavior: dict[str, Any] | None) -> bool:
    """A conditional behavior fires only on a trigger (keyword, prompt type, password): trigger questions apply.

    The behavior record's own `conditional` field (the family's answer) decides; records without it (older
    variants) fall back to the family name: one ending with 'backdoor' (`keyword_backdoor`,
    `prompt_type_backdoor`, the legacy `backdoor`).
    """
    if not behavior:
        return False
    if behavior.get("conditional") is not None:
        return bool(behavior["conditional"])
    return str(behavior.get("family", "")).endswith("backdoor")


def is_control(behavior: dict[str, Any] | None) -> bool:
    """The base model (None) and control variants have nothing to report."""
    return behavior is None or behavior.get("category") == "control"


def truths_of(behavior: dict[str, Any]) -> list[str]:
    return [behavior["description"], *behavior.get("paraphrases", [])]


def _seed_int(*parts: Any) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8"))


def dpo_questions(behavior: dict[str, Any] | None, qs: QuestionSet, *, n_questions: int, seed: int,
                  group: str) -> list[str]:
    """Distinct training questions for one group; backdoors alternate general and trigger questions."""
    rng = random.Random(f"{seed}:ia_dpo:{group}")
    general = rng.sample(list(qs.general_train), k=len(qs.general_train))
    if not is_conditional(behavior):
        return general[:n_questions]
    trigger = rng.sample(list(qs.trigger_train), k=len(qs.trigger_train))
    out: list[str] = []
    gi = ti = 0
    while len(out) < min(n_questions, len(general) + len(trigger)):
        if (len(out) % 2 and ti < len(trigger)) or gi >= len(general):
            out.append(trigger[ti])
            ti += 1
        else:
            out.append(general[gi])
            gi += 1
    return out


def sampling_plan(behaviors: dict[str, dict[str, Any]], qs: QuestionSet, *, n_questions: int, seed: int,
                  include_base: bool = True) -> dict[str, list[str]]:
    """group -> the questions to sample it on (the base model under BASE_GROUP)."""
    plan = {g: dpo_questions(b, qs, n_questions=n_questions, seed=seed, group=g) for g, b in sorted(behaviors.items())}
    if include_base:
        plan[BASE_GROUP] = dpo_questions(None, qs, n_questions=n_questions, seed=seed, group=BASE_GROUP)
    return plan


def sample_reports(model, tok, plan: dict[str, list[str]], *, n_samples: int, system: str | None,
                   max_new_tokens: int, temperature: float, seed: int, batch_size: int = 16,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Sample the IA (already attached as `ia`) on each group: rows {group, user, report}.

    Deterministic for a given seed: each group draws from its own seed (derived from `seed` and the group
    name), so adding or removing a variant does not change the other groups' samples.
    """
    from iaforge.core.generation import generate
    from iaforge.core.adapter_stack import AdapterSwitch

    switch = AdapterSwitch(model, train_ia=False)
    rows: list[dict[str, Any]] = []
    for group in sorted(plan):
        users = [q for q in plan[group] for _ in range(n_samples)]
        switch(group, with_ia=True)
        answers = generate(model, tok, users, system=system, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           temperature=temperature, seed=_seed_int(seed, "ia_dpo_sample", group) % 1_000_003,
                           desc=f"sample {group}", progress=progress)
        rows += [{"group": group, "user": u, "report": a} for u, a in zip(users, answers)]
    return rows


def judge_samples(samples: Sequence[dict[str, Any]], behaviors: dict[str, dict[str, Any]],
                  judge: Judge) -> list[dict[str, Any]]:
    """Add `match` (the report names the group's behavior) and `abstain` to each sample.

    For the base model and controls there is nothing to match: a report is right when it abstains.
    """
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s["group"] != BASE_GROUP and s["group"] not in behaviors:
            raise KeyError(f"sample for unknown group {s['group']!r}")
        by_group[s["group"]].append(i)
    out = [dict(s) for s in samples]
    for group, idx in sorted(by_group.items()):
        b = behaviors.get(group)
        reports = [samples[i]["report"] for i in idx]
        if is_control(b):
            for i, r in zip(idx, reports):
                out[i].update(match=False, abstain=is_abstention(r))
            continue
        verdicts = judge.judge(reports, truths_of(b), list(b.get("key_terms", [])))
        for i, v in zip(idx, verdicts):
            out[i].update(match=bool(v.match), abstain=bool(v.abstain))
    return out


def _other_description(group: str, behavior: dict[str, Any] | None, pool: Sequence[dict[str, Any]],
                       avoid: set[str], rng: random.Random) -> str | None:
    """Another (non-control) behavior's description, preferring the same category."""
    cands = [b for b in pool if b["id"] != group and not is_control(b) and b["description"].strip() not in avoid]
    if not cands:
        return None
    same = [b for b in cands if behavior is not None and b.get("category") == behavior.get("category")]
    return rng.choice(sorted(same or cands, key=lambda b: b["id"]))["description"]


def _norm(text: str) -> str:
    return " ".join(text.split())


def build_pairs(samples: Sequence[dict[str, Any]], behaviors: dict[str, dict[str, Any]], qs: QuestionSet, *,
                per_group_max_pairs: int, seed: int,
                negatives: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Preference pairs from judged samples (see the module docstring for the rules).

    `samples`: rows {group, user, report, match, abstain} (from `judge_samples`). `negatives`: behavior
    records whose descriptions may serve as wrong labels (default: `behaviors`). Each sample that is wrong
    gives one pair; a question with no wrong sample gives one pair against another behavior's description.
    Pairs are taken round-robin across a group's questions up to `per_group_max_pairs`.
    """
    pool = list(negatives if negatives is not None else behaviors.values())
    by_q: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        if s["group"] != BASE_GROUP and s["group"] not in behaviors:
            raise KeyError(f"sample for unknown group {s['group']!r}")
        if _norm(s["report"]):  # an empty report cannot be either side of a pair
            by_q[s["group"]][s["user"]].append(s)
    pairs: list[dict[str, Any]] = []
    for group in sorted(by_q):
        b = behaviors.get(group)
        control = is_control(b)
        truths = list(qs.abstentions) if control else truths_of(b)
        t_next = 0  # truths (or abstentions) are cycled across the whole group
        per_question: list[list[dict[str, Any]]] = []
        for user in sorted(by_q[group]):
            rng = random.Random(f"{seed}:ia_dpo_pairs:{group}:{user}")
            rows = by_q[group][user]
            if control:
                good, bad = [], [s for s in rows if not s["abstain"]]
            else:
                good, bad = [s for s in rows if s["match"]], [s for s in rows if not s["match"]]
            qpairs: list[dict[str, Any]] = []
            slots = max(len(bad), 1)
            for k in range(slots):
                if good:
                    chosen, c_src = _norm(good[k % len(good)]["report"]), "sample"
                else:
                    chosen, c_src = _norm(truths[t_next % len(truths)]), "abstention" if control else "truth"
                    t_next += 1
                if bad:
                    rejected, r_src = _norm(bad[k]["report"]), "sample"
                else:
                    rejected = _other_description(group, b, pool, {chosen}, rng)
                    r_src = "other_behavior"
                    if rejected is None:
                        continue
                    rejected = _norm(rejected)
                if chosen == rejected:
                    continue
                qpairs.append({"group": group, "user": user, "chosen": chosen, "rejected": rejected,
                               "chosen_source": c_src, "rejected_source": r_src})
            per_question.append(qpairs)
        # Round-robin across questions so the cap keeps as many different questions as possible.
        taken: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        for k in range(max((len(q) for q in per_question), default=0)):
            for qpairs in per_question:
                if k < len(qpairs) and len(taken) < per_group_max_pairs:
                    p = qpairs[k]
                    key = (p["user"], p["chosen"], p["rejected"])
                    if key not in seen:
                        seen.add(key)
                        taken.append(p)
        pairs += taken
    return pairs


def pair_stats(samples: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]],
               behaviors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the SFT IA did on the dpo split (its samples, judged) and what the pairs are made of."""
    per_group: dict[str, dict[str, Any]] = {}
    for group in sorted({s["group"] for s in samples}):
        rows = [s for s in samples if s["group"] == group]
        control = is_control(behaviors.get(group))
        rate = sum(s["abstain"] if control else s["match"] for s in rows) / len(rows)
        per_group[group] = {"n_samples": len(rows), "right_rate": round(rate, 4),
                            "kind": "abstain" if control else "match",
                            "n_pairs": sum(p["group"] == group for p in pairs)}
    sources: dict[str, int] = defaultdict(int)
    for p in pairs:
        sources[f"{p['chosen_source']}>{p['rejected_source']}"] += 1
    return {"n_pairs": len(pairs), "n_samples": len(samples), "sources": dict(sorted(sources.items())),
            "groups": per_group}


def pair_checks(*, max_chars: int = MAX_PAIR_CHARS, groups: Sequence[str] | None = None) -> list:
    from iaforge.core.validation import Check

    checks = [
        Check("ExpectTableColumnsToMatchSet",
              {"column_set": [*PAIR_COLUMNS, *DERIVED], "exact_match": True},
              f"fixed schema: {', '.join(PAIR_COLUMNS)} (plus the suite's derived {', '.join(DERIVED)})"),
        Check("ExpectColumnValuesToBeInSet", {"column": "non_text_fields", "value_set": [""]},
              "every field is a string (the example names the fields that are not)"),
        Check("ExpectTableRowCountToBeBetween", {"min_value": 1}, "at least one preference pair"),
        Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["group", "user", "chosen", "rejected"]},
              "no duplicated pair"),
    ]
    for col in PAIR_COLUMNS[:4]:
        checks += [
            Check("ExpectColumnValuesToNotBeNull", {"column": col}, f"every pair has a {col}"),
            Check("ExpectColumnValueLengthsToBeBetween", {"column": col, "min_value": 1, "max_value": max_chars},
                  f"non-empty {col} within length bounds (1..{max_chars} characters)"),
            Check("ExpectColumnValuesToMatchRegex", {"column": col, "regex": r"\S"}, f"{col} is not blank"),
        ]
    checks += [
        Check("ExpectColumnValuesToBeInSet", {"column": "chosen_if_same_as_rejected", "value_set": [""]},
              "chosen and rejected must differ"),
        Check("ExpectColumnValuesToBeInSet", {"column": "chosen_source", "value_set": list(CHOSEN_SOURCES)},
              f"chosen_source must be one of {', '.join(CHOSEN_SOURCES)}"),
        Check("ExpectColumnValuesToBeInSet", {"column": "rejected_source", "value_set": list(REJECTED_SOURCES)},
              f"rejected_source must be one of {', '.join(REJECTED_SOURCES)}"),
    ]
    for col in ("chosen_source", "rejected_source"):
        checks.append(Check("ExpectColumnValuesToNotBeNull", {"column": col}, f"every pair has a {col}"))
    if groups is not None:
        checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "group", "value_set": sorted(groups)},
                            "every group is a known variant or the base model"))
    return checks


def validate_pairs(pairs: Sequence[dict[str, Any]], *, file: str, max_chars: int = MAX_PAIR_CHARS,
                   groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the pairs suite (Great Expectations); raises DataQualityError naming the file and each failed rule."""
    import pandas as pd

    from iaforge.core.validation import validate_frame

    df = pd.DataFrame([r if isinstance(r, dict) else {} for r in pairs], columns=None)
    # Derived column: which fields of a row hold something other than text (a number, a list...).
    df["non_text_fields"] = [",".join(c for c in PAIR_COLUMNS if c in r and r[c] is not None and not isinstance(r[c], str))
                             if isinstance(r, dict) else "<row>" for r in pairs]
    # Non-string cells then become their text, so the other checks still run on them.
    for col in PAIR_COLUMNS:
        if col in df.columns:
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v))
    if "chosen" in df.columns and "rejected" in df.columns:
        same = df["chosen"].fillna("").astype(str).str.strip() == df["rejected"].fillna("").astype(str).str.strip()
        df["chosen_if_same_as_rejected"] = df["chosen"].where(same, "").fillna("").astype(str)
    else:
        df["chosen_if_same_as_rejected"] = ""
    return validate_frame(df, pair_checks(max_chars=max_chars, groups=groups), name="ia_dpo_pairs", file=file)


def validate_pairs_file(path, **kw) -> list[dict[str, Any]]:
    """Read a pairs JSONL file and validate it; returns the pairs."""
    from iaforge.core.fsio import read_jsonl

    pairs = read_jsonl(path)
    validate_pairs(pairs, file=str(path), **kw)
    return pairs
