"""Shared plumbing for the thin scripts in stages/: params, clean errors, quiet libraries."""

from __future__ import annotations

import os
import sys
from typing import Callable

from iaforge.core.errors import IaforgeError


def quiet_env() -> None:
    # Offline and quiet unless the user asked otherwise: stages must never reach the network by default.
    for k, v in {"GX_ANALYTICS_ENABLED": "False", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false",
                 "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}.items():
        os.environ.setdefault(k, v)


def main(fn: Callable[[], None]) -> None:
    """Run a stage body; an IaforgeError becomes one readable line and exit status 1, not a traceback."""
    import time

    quiet_env()
    t0 = time.perf_counter()
    try:
        fn()
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    name = " ".join([os.path.splitext(os.path.basename(sys.argv[0]))[0], *sys.argv[1:]])
    # Wall time goes to the log, never into a DVC-tracked output (it would change hashes every run).
    print(f"[iaforge] stage {name}: {time.perf_counter() - t0:.1f} s wall", file=sys.stderr)


def progress_enabled() -> bool:
    return os.environ.get("IAFORGE_PROGRESS", "1") != "0"
