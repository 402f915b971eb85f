"""``--debug``: tracebacks on stderr only when asked for (or MRCNN_DEBUG=1 is set).

Commands print one clear line per failure; the traceback beside it is for developers.
"""

from __future__ import annotations

import os
import sys
import traceback

ENV = "MRCNN_DEBUG"


def enable(on: bool = True) -> None:
    """Turn tracebacks on (``--debug``); also for child processes started from here."""
    if on:
        os.environ[ENV] = "1"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def print_traceback(force: bool = False, file=None) -> None:
    """The current exception's traceback on stderr when debugging (or ``force``)."""
    if force or enabled():
        traceback.print_exc(file=file or sys.stderr)


def pop_debug_flag(argv) -> tuple[list, bool]:
    """(argv without ``--debug``, whether it was there): for parsers that pass argv on."""
    argv = list(argv)
    return [a for a in argv if a != "--debug"], "--debug" in argv
