"""One place that turns an exception into the one line a command prints (and its exit code).

Expected failures (bad input, missing files, a full disk) print ``<prog>: error: <message>``
and exit 2 (1 for failures after the work started, such as a full disk); anything else is
an unexpected error: the same one line, exit 1. The traceback goes to stderr only with
``--debug`` (or MRCNN_DEBUG=1).
"""

from __future__ import annotations

import sys

from mrcnn.checks import debug
from mrcnn.errors import InputError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def one_line(error: BaseException) -> str:
    """The first line of the error's message, or its type name when it has none."""
    text = str(error).strip()
    if isinstance(error, KeyError) and text.startswith("'"):
        text = f"missing key {text}"
    return text.splitlines()[0] if text else type(error).__name__


def exit_code(error: BaseException) -> int:
    """2 for bad input (named files, options, fields), 1 for everything else."""
    from mrcnn.atomic import DiskFullError

    if isinstance(error, DiskFullError):
        return EXIT_FAILED
    if isinstance(error, (InputError, FileNotFoundError, IsADirectoryError,
                          NotADirectoryError, PermissionError, FileExistsError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def report(prog: str, error: BaseException) -> int:
    """Print the one-line error (traceback first under --debug); return the exit code."""
    debug.print_traceback()
    code = exit_code(error)
    prefix = "" if code == EXIT_BAD_INPUT or isinstance(error, OSError) else \
        f"{type(error).__name__}: "
    print(f"{prog}: error: {prefix}{one_line(error)}", file=sys.stderr)
    return code


def run_reporting(prog: str, function) -> int:
    """``function()``'s exit code, or the reported error's; KeyboardInterrupt exits 130."""
    try:
        return int(function() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - every failure becomes one line
        return report(prog, error)
