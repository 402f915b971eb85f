"""Numeric command-line options checked before any work starts.

``--steps-per-epoch 0`` used to train forever (Keras reads 0 steps as "until the data ends",
and the data repeats); ``--learning-rate nan`` trained on NaN. Each command lists its numeric
options here with their allowed range; ``check_options(args, RULES)`` raises OptionError
naming the option, its value and the range.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from mrcnn.checks.errors import OptionError

# (attribute, option, lowest allowed, highest allowed or None); None values are defaults.
TRAIN_RULES = (
    ("epochs", "--epochs", 1, None),
    ("steps_per_epoch", "--steps-per-epoch", 1, None),
    ("validation_steps", "--validation-steps", 0, None),
    ("shapes_train", "--shapes-train", 1, None),
    ("shapes_val", "--shapes-val", 0, None),
    ("shapes_size", "--shapes-size", 16, 4096),
    ("precise_bn", "--precise-bn", 0, None),
    ("seed", "--seed", 0, 2**32 - 1),
)
TRAIN_POSITIVE = (("learning_rate", "--learning-rate"),)
EVALUATE_RULES = (
    ("shapes_count", "--shapes-count", 1, None),
    ("shapes_size", "--shapes-size", 16, 4096),
    ("seed", "--seed", 0, 2**32 - 1),
    ("limit", "--limit", 1, None),
    ("min_confidence", "--min-confidence", 0.0, 1.0),
)
DETECT_RULES = (("dpi", "--dpi", 1, 1200),)


def _range_text(low, high) -> str:
    return f">= {low}" if high is None else f"in {low}..{high}"


def check_options(args, rules=(), positive=()) -> None:
    """OptionError for the first option of ``args`` outside its range (or not finite)."""
    for attribute, option, low, high in rules:
        value = getattr(args, attribute, None)
        if value is None:
            continue
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise OptionError(f"{option} must be {_range_text(low, high)}, got {value}")
    for attribute, option in positive:
        value = getattr(args, attribute, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise OptionError(f"{option} must be a finite number > 0, got {value}")


def check_train_options(args) -> None:
    check_options(args, TRAIN_RULES, TRAIN_POSITIVE)


def check_evaluate_options(args) -> None:
    check_options(args, EVALUATE_RULES)


# ---- paths -----------------------------------------------------------------------------------

def check_input_file(path, what: str, error=OptionError) -> None:
    """``error`` (OptionError unless the caller names its file's error type) for a path that is
    a directory or missing: '<what> X is a directory; expected a file'."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise error(f"{what} {path} is a directory; expected a file")
    if not os.path.exists(path):
        raise error(f"{what} {path} does not exist")


def check_output_dir(path, option: str = "--out") -> None:
    """OptionError unless ``path`` is (or can become) a directory this process can write to."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {path} is a file; expected a directory (or a new path)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"{option} {path}: {existing} is a file, so the directory cannot "
                          "be created there")
    if not _can_write_in(existing):
        raise OptionError(f"{option} {path}: directory {existing} is not writable "
                          "(read-only or no permission)")


def _can_write_in(folder) -> bool:
    """Try it: os.access says yes to root even on a read-only file system."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output_file(path, option: str = "--out") -> None:
    """OptionError unless ``path`` can be written as a file (not a directory, parent writable)."""
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"{option} {path} is a directory; expected a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise OptionError(f"{option} {path} is not writable")
    check_output_dir(path.parent if str(path.parent) else Path("."), f"{option} {path}: folder")
