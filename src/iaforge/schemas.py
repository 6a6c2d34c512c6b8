"""JSON Schemas of the artifacts iaforge writes; stages validate before writing, tests after reading."""

from __future__ import annotations

from typing import Any

from .errors import ValidationError

_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

IMPLANTATION = {
    "type": "object",
    "required": ["behavior", "version", "category", "family", "n_eval", "rate_triggered", "rate_untriggered",
                 "passed", "base_rate", "train_examples", "train_steps", "train_tokens", "final_loss"],
    "properties": {
        "behavior": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
        "category": {"type": "string"}, "family": {"type": "string"},
        "n_eval": {"type": "integer", "minimum": 1},
        "rate_triggered": _RATE, "rate_untriggered": _RATE, "base_rate": _RATE,
        "passed": {"type": "boolean"},
        "train_examples": {"type": "integer", "minimum": 1}, "train_steps": {"type": "integer", "minimum": 1},
        "train_tokens": {"type": "integer", "minimum": 1}, "final_loss": {"type": "number"},
        "train_tokens_per_s": {"type": "number"},
    },
}

_PER_BEHAVIOR = {
    "type": "object",
    "required": ["behavior", "split", "category", "family", "implanted", "no_ia", "ia", "no_ia_abstain", "ia_abstain"],
    "properties": {"no_ia": _RATE, "ia": _RATE, "no_ia_abstain": _RATE, "ia_abstain": _RATE,
                   "implanted": {"type": "boolean"}, "split": {"enum": ["ia_train", "dpo", "heldout"]}},
}

EVAL = {
    "type": "object",
    "required": ["verbalization", "per_behavior", "base_model", "false_positive", "settings"],
    "properties": {
        "verbalization": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["no_ia", "ia", "n_variants"],
            "properties": {"no_ia": _RATE, "ia": _RATE, "n_variants": {"type": "integer", "minimum": 0}}}},
        "per_behavior": {"type": "array", "minItems": 1, "items": _PER_BEHAVIOR},
        "false_positive": {"type": "object", "required": ["base_model", "controls", "n_controls"]},
        "base_model": {"type": "object", "required": ["no_ia_abstain_rate", "ia_abstain_rate"],
                       "properties": {"no_ia_abstain_rate": _RATE, "ia_abstain_rate": _RATE}},
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
