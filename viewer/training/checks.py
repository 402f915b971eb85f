"""What the training dialog checks before a run, without TensorFlow; and its settings values.

Class counts come from the COCO JSON (json) and from the weights file (h5py); the newest
checkpoint from ``mrcnn.runs.find_last_checkpoint`` (TF-free at import). ``widget_value`` and
``set_widget_value`` turn the dialog's input widgets into QSettings values and back.
"""

from __future__ import annotations

import json
import os

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit

# Layers whose shapes depend on NUM_CLASSES (mrcnn.weights.CLASS_COUNT_LAYERS; that module
# imports Keras, so the names are repeated here and a test keeps the two equal).
CLASS_COUNT_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
# COCO files this big are read from the end first: their "categories" list comes last.
BIG_JSON_BYTES = 32 << 20
TAIL_BYTES = 4 << 20

_class_count_cache: dict = {}


def coco_class_count(path) -> int:
    """NUM_CLASSES of a COCO instances JSON: its categories + 1 (background).

    ValueError / FileNotFoundError name the file. Cached by (path, size, mtime).
    """
    path = os.fspath(path)
    if not path:
        raise FileNotFoundError("no file chosen")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _class_count_cache:
        categories = _categories_from_tail(path) if stat.st_size > BIG_JSON_BYTES else None
        if categories is None:
            try:
                with open(path, "rb") as f:
                    data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{path} is not valid JSON ({e})") from None
            categories = data.get("categories") if isinstance(data, dict) else None
        if not isinstance(categories, list) or not categories:
            raise ValueError(f"{path} has no 'categories' list (not a COCO instances file)")
        _class_count_cache[key] = len(categories) + 1
    return _class_count_cache[key]


def _categories_from_tail(path):
    """The top-level "categories" list found in the file's last TAIL_BYTES, or None."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - TAIL_BYTES))
        tail = f.read().decode("utf8", errors="replace")
    key = tail.rfind('"categories"')
    colon = tail.find(":", key) if key >= 0 else -1
    if colon < 0:
        return None
    start = colon + 1
    while start < len(tail) and tail[start].isspace():
        start += 1
    try:
        value, _ = json.JSONDecoder().raw_decode(tail, start)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(c, dict) and "id" in c for c in value):
        return value
    return None


def weights_class_count(path) -> int | None:
    """NUM_CLASSES of a Keras-2 HDF5 weights file (last dim of mrcnn_class_logits' kernel).

    None when the file has no such kernel (a backbone-only file). ValueError names the file when
    it is not HDF5 or not in matterport's layout; FileNotFoundError when it is missing.
    """
    from mrcnn.stats import iter_weights_in_file

    for layer, name, dataset in iter_weights_in_file(path):
        if layer == "mrcnn_class_logits" and name == "kernel":
            return int(dataset.shape[-1])
    return None


def newest_checkpoint(runs_root) -> str | None:
    """The newest checkpoint of any run under ``runs_root``; None when there is none."""
    from mrcnn.runs import find_last_checkpoint

    try:
        return find_last_checkpoint(runs_root)
    except (OSError, ValueError, KeyError):
        return None  # an unreadable run directory: offer no "last"


def folder_problem(path) -> str:
    """Why ``path`` is not a usable folder (the caller has seen that it is not a directory)."""
    return f"folder not found: {path}" if path else "no folder chosen"


def widget_value(widget):
    """A QSettings-friendly value of an input widget."""
    if isinstance(widget, QLineEdit):
        return widget.text()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    return widget.value()  # QSpinBox, QDoubleSpinBox


def set_widget_value(widget, value) -> None:
    """Set ``widget`` from a stored value (INI settings give strings); bad values are ignored."""
    try:
        if isinstance(widget, QLineEdit):
            widget.setText(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(str(value).lower() in ("true", "1"))
        elif isinstance(widget, QComboBox):
            index = widget.findText(str(value))
            if index >= 0 and widget.model().item(index).isEnabled():
                widget.setCurrentIndex(index)
        elif isinstance(widget, QDoubleSpinBox):
            widget.setValue(float(value))
        else:
            widget.setValue(int(value))
    except (TypeError, ValueError):
        pass  # a setting from an older version: keep the default
