"""Config field types: ``IMAGE_MAX_DIM: "big"`` is an error naming the field, not a TypeError
from deep inside the derived-field arithmetic.

Each value given for a field must be of the kind of the field's default: a number (bool is
not a number here), a string, a list/tuple/array of numbers, a dict, or None / a callable
where the default allows it. Fields whose default is None accept anything (matterport leaves
several optional).
"""

from __future__ import annotations

import numbers

import numpy as np


def _kind(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    if isinstance(value, dict):
        return "object"
    if callable(value):
        return "callable"
    return type(value).__name__


# Kinds a value may have for a default of each kind (a bool default takes 0 / 1 too).
_ACCEPTED = {"number": {"number"}, "boolean": {"boolean", "number"}, "string": {"string"},
             "list": {"list"}, "object": {"object"}}


def field_type_problem(name, value, default) -> str | None:
    """'IMAGE_MAX_DIM: expected a number, got the string "big"' or None when it fits."""
    want = _kind(default)
    if want in ("none", "callable") or want not in _ACCEPTED:
        return None
    got = _kind(value)
    if got in _ACCEPTED[want] or (want == "string" and got == "callable"):
        return None  # BACKBONE may be a callable instead of a name
    if want == "list" and got == "list":
        return None
    if value is None:
        return f"{name}: expected a {want}, got null"
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    return f"{name}: expected a {want}, got the {got} {shown}"


def list_problem(name, value, default) -> str | None:
    """A list field of numbers (MEAN_PIXEL, RPN_ANCHOR_SCALES) holding something else."""
    if _kind(default) != "list" or _kind(value) != "list":
        return None
    defaults = list(np.asarray(default, dtype=object).ravel()) if len(default) else []
    if not all(_kind(d) == "number" for d in defaults):
        return None
    bad = [v for v in np.asarray(value, dtype=object).ravel() if _kind(v) != "number"]
    if bad:
        return f"{name}: expected a list of numbers, got {list(value)!r}"
    return None


def check_field_types(config_class, values: dict, error_type=ValueError) -> None:
    """Raise ``error_type`` naming the first field of ``values`` whose type does not fit."""
    for name, value in values.items():
        if not hasattr(config_class, name):
            continue
        default = getattr(config_class, name)
        if isinstance(default, property):
            continue
        problem = field_type_problem(name, value, default) or list_problem(name, value, default)
        if problem:
            raise error_type(problem)
