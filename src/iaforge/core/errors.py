"""Errors that a user can act on: each names the file, the field and the rule that failed."""

from __future__ import annotations


class IaforgeError(Exception):
    """Base class: an error with a message meant for the person running the pipeline."""


class ValidationError(IaforgeError):
    def __init__(self, file: str, field: str, rule: str, entry: str | None = None):
        self.file, self.field, self.rule, self.entry = str(file), field, rule, entry
        where = f"{self.file}" + (f" [entry {entry}]" if entry else "")
        super().__init__(f"{where}: field '{field}': {rule}")


class BaseModelError(IaforgeError):
    pass


class UnsafeArtifactError(IaforgeError):
    """An adapter or model that iaforge refuses to load (pickles, remote code, malformed config)."""
