"""Shared plumbing for the thin scripts in stages/: params, clean errors, quiet libraries."""

from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import IaforgeError


def quiet_env() -> None:
    # Offline and quiet unless the user asked otherwise: stages must never reach the network by default.
    for k, v in {"GX_ANALYTICS_ENABLED": "False", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false",
                 "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}.items():
        os.environ.setdefault(k, v)


def main(fn: Callable[[], None]) -> None:
    """Run a stage body; an IaforgeError becomes one readable line and exit status 1, not a traceback."""
    quiet_env()
    try:
        fn()
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def progress_enabled() -> bool:
    return os.environ.get("IAFORGE_PROGRESS", "1") != "0"
