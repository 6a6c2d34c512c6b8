"""JSON Schemas of the artifacts iaforge writes; stages validate before writing, tests after reading."""

from __future__ import annotations

from typing import Any

from iaforge.core.errors import ValidationError

_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

IMPLANTATION = {
    "type": "object",
    "required": ["behavior", "split", "version", "category", "family", "n_eval", "rate_triggered", "rate_untriggered",
                 "passed", "base_rate", "decoding", "train_examples", "train_steps", "train_tokens", "final_loss"],
    "properties": {
        "behavior": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
        "split": {"enum": ["ia_train", "dpo", "heldout"]},
        "category": {"type": "string"}, "family": {"type": "string"}, "family_label": {"type": "string"},
        "n_eval": {"type": "integer", "minimum": 1},
        "rate_triggered": _RATE, "rate_untriggered": _RATE, "base_rate": _RATE, "leak_rate": _RATE,
        "passed": {"type": "boolean"}, "decoding": {"type": "string"},
        "train_examples": {"type": "integer", "minimum": 1}, "train_steps": {"type": "integer", "minimum": 1},
        "train_tokens": {"type": "integer", "minimum": 1}, "final_loss": {"type": "number"},
        "epochs": {"type": "integer", "minimum": 1}, "lr": {"type": "number", "exclusiveMinimum": 0},
    },
}

_CONDITION_RATES = {c: _RATE for c in ("no_ia", "prefill", "sft", "dpo")}

_PER_BEHAVIOR = {
    "type": "object",
    "required": ["behavior", "split", "category", "family"],
    "properties": {**_CONDITION_RATES, "split": {"enum": ["ia_train", "dpo", "heldout"]},
                   "behavior": {"type": "string"}, "category": {"type": "string"}, "family": {"type": "string"}},
}

_AGGREGATE = {"type": "object", "additionalProperties": {
    "type": "object", "required": ["n_variants"],
    "properties": {**_CONDITION_RATES, "n_variants": {"type": "integer", "minimum": 0}}}}

EVAL = {
    "type": "object",
    "required": ["conditions", "verbalization", "verbalization_by_category", "verbalization_by_family", "verbalization_by_distance", "per_behavior",
                 "base_model", "false_positive", "not_evaluated", "settings"],
    "properties": {
        "conditions": {"type": "array", "minItems": 1, "items": {"enum": ["no_ia", "prefill", "sft", "dpo"]}},
        "verbalization": _AGGREGATE,
        "verbalization_by_category": {"type": "object", "additionalProperties": _AGGREGATE},
        "verbalization_by_family": {"type": "object", "additionalProperties": _AGGREGATE},
        "verbalization_by_distance": _AGGREGATE,
        "per_behavior": {"type": "array", "minItems": 1, "items": _PER_BEHAVIOR},
        "false_positive": {"type": "object", "required": ["base_model", "controls", "n_controls"],
                           "properties": {"base_model": {"type": "object", "additionalProperties": _RATE},
                                          "controls": {"type": "object", "additionalProperties": _RATE}}},
        "base_model": {"type": "object", "additionalProperties": _RATE},
        "not_evaluated": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

SCHEMAS = {"implantation": IMPLANTATION, "eval": EVAL}


def validate(kind: str, data: Any, file: str) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        field = ".".join(str(p) for p in e.path) or "<root>"
        raise ValidationError(file, field, e.message)
