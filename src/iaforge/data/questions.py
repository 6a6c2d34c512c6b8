"""The question sets put to a model wearing the IA, validated on load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from iaforge.core.errors import ValidationError


@dataclass(frozen=True)
class QuestionSet:
    version: int
    general_train: tuple[str, ...]
    general_eval: tuple[str, ...]
    trigger_train: tuple[str, ...]
    trigger_eval: tuple[str, ...]
    abstentions: tuple[str, ...]
    harmful_train: tuple[str, ...] = ()
    harmful_eval: tuple[str, ...] = ()
    task_train: tuple[str, ...] = ()  # templates with {task}
    task_eval: tuple[str, ...] = ()

    def train_for(self, conditional: bool) -> list[str]:
        return [*self.general_train, *(self.trigger_train if conditional else ())]

    def eval_for(self, conditional: bool, task: str | None = None) -> list[str]:
        """Evaluation questions for one variant: general and harmful-tendency questions, plus trigger
        questions for conditional behaviors and task questions (filled in) where the behavior has a task."""
        out = [*self.general_eval, *self.harmful_eval, *(self.trigger_eval if conditional else ())]
        if task:
            out += [t.format(task=task) for t in self.task_eval]
        return out


def load_questions(path: str | Path) -> QuestionSet:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(path, "<file>", "question set not found") from None
    except yaml.YAMLError as exc:
        raise ValidationError(path, "<yaml>", f"not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ValidationError(path, "<root>", "must be a mapping")

    def lst(*keys, min_len=1):
        cur = raw
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        name = ".".join(keys)
        if not (isinstance(cur, list) and len(cur) >= min_len and all(isinstance(s, str) and s.strip() for s in cur)):
            raise ValidationError(path, name, f"must be a list of at least {min_len} non-empty strings")
        return tuple(s.strip() for s in cur)

    if not isinstance(raw.get("version"), int):
        raise ValidationError(path, "version", "required; an integer")
    qs = QuestionSet(raw["version"], lst("general", "train"), lst("general", "eval"), lst("trigger", "train"),
                     lst("trigger", "eval"), lst("abstentions", min_len=2), lst("harmful", "train"), lst("harmful", "eval"),
                     lst("task", "train"), lst("task", "eval"))
    for name in ("train", "eval"):
        for i, t in enumerate(getattr(qs, f"task_{name}")):
            if "{task}" not in t:
                raise ValidationError(path, f"task.{name}[{i}]", "a task question must contain {task}")
    train = {*qs.general_train, *qs.trigger_train, *qs.harmful_train, *qs.task_train}
    overlap = train & {*qs.general_eval, *qs.trigger_eval, *qs.harmful_eval, *qs.task_eval}
    if overlap:
        raise ValidationError(path, "general.eval", f"training and evaluation questions overlap: {sorted(overlap)[0]!r}")
    return qs
