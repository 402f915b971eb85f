"""Refuse weights that load too little of the model, or that hold NaN / Inf.

Loading by layer name silently skips names the model does not have, so an unrelated Keras
model's file (layers ``dense_a``, ``dense_b``) "loads" zero layers and detection then runs on
random weights. Two checks close that:

* ``require_mask_rcnn_layers(shapes, path)``: before TensorFlow starts, the file must hold
  at least one layer of Mask R-CNN's (``conv1``, ``fpn_c5p5``, ``mrcnn_class_logits``, ...);
* ``require_loaded(keras_model, report, min_fraction)``: after loading, at least
  ``min_fraction`` of the model's layers with weights must have come from the file (1.0 for
  inference and resume: every layer; the first layer is enough for ``--init``, with a warning
  under half). The message says how many loaded and names those that did not.

``check_finite(keras_model, path, allow)`` raises NonFiniteWeightsError naming the tensors
with NaN / Inf, or with ``allow`` (``--allow-nonfinite``) prints a loud warning instead.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from mrcnn.checks.errors import NonFiniteWeightsError, WeightsRefusedError

log = logging.getLogger("mrcnn.checks.weights")

# Layer names every Mask R-CNN of this project (and matterport's) has; one of them in a file
# is the least sign that it is such a model's weights.
MASK_RCNN_LAYERS = ("conv1", "res2a_branch2a", "fpn_c5p5", "fpn_p2", "rpn_conv_shared",
                    "rpn_model", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
# --init with fewer than this fraction of the layers loaded gets a warning (not an error).
INIT_WARN_FRACTION = 0.5
SHOWN_NAMES = 6


def _names(names, limit=SHOWN_NAMES) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def require_mask_rcnn_layers(shapes: dict, path) -> None:
    """WeightsRefusedError unless ``shapes`` ({layer: {weight: shape}}, from the file) has a
    Mask R-CNN layer; runs in milliseconds, before the model is built."""
    if not shapes:
        raise WeightsRefusedError(f"{path}: the weights file holds no weights at all; expected "
                                  "a Mask R-CNN weights file (mrcnn or matterport)")
    if not set(shapes) & set(MASK_RCNN_LAYERS):
        raise WeightsRefusedError(
            f"{path}: none of its {len(shapes)} layers ({_names(sorted(shapes))}) is a Mask R-CNN "
            f"layer; expected names such as {', '.join(MASK_RCNN_LAYERS[:5])} - is it another "
            "model's weights file?")


def model_layers_with_weights(keras_model) -> list[str]:
    """Names of the leaf layers that own weights, through nested models (``rpn_model``)."""
    import keras

    names, pending = [], [keras_model]
    while pending:
        model = pending.pop(0)
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                pending.append(layer)
            elif layer.weights:
                names.append(layer.name)
    return names


def loaded_fraction(keras_model, report) -> tuple[int, int]:
    """(layers with weights that came from the file, layers with weights not excluded)."""
    total = [n for n in model_layers_with_weights(keras_model) if n not in set(report.excluded)]
    missing = set(report.skipped_not_in_file)
    return sum(1 for n in total if n not in missing), len(total)


def require_loaded(keras_model, report, min_fraction: float = 1.0) -> None:
    """WeightsRefusedError when less than ``min_fraction`` of the model's (non-excluded)
    layers with weights were loaded from ``report.path``; a warning under half for --init."""
    loaded, total = loaded_fraction(keras_model, report)
    if total == 0:
        return
    if loaded == 0 or loaded < min_fraction * total:
        raise WeightsRefusedError(_refusal(report, loaded, total, min_fraction))
    if loaded < INIT_WARN_FRACTION * total:
        log.warning("%s: only %d of %d model layers loaded from it; not loaded: %s",
                    report.path, loaded, total, _names(report.skipped_not_in_file))


def _refusal(report, loaded, total, min_fraction) -> str:
    wanted = "every layer" if min_fraction >= 1.0 else f"at least {min_fraction:.0%} of them"
    parts = [f"{report.path}: only {loaded} of the model's {total} layers with weights were found "
             f"in the file (expected {wanted})"]
    if report.loaded:
        parts.append(f"loaded: {_names(report.loaded)}")
    if report.skipped_not_in_file:
        parts.append(f"not in the file: {_names(report.skipped_not_in_file)}")
    if report.skipped_not_in_model:
        parts.append(f"in the file but not in the model: {_names(report.skipped_not_in_model)}")
    return "; ".join(parts) + ". Is it the weights of this model (same config)?"


def nonfinite_tensors(keras_model) -> list[tuple[str, int]]:
    """[(weight path, count of NaN/Inf values)] of the model's weights that are not finite."""
    broken = []
    for variable in keras_model.weights:
        values = np.asarray(variable.numpy())
        if np.issubdtype(values.dtype, np.floating):
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad:
                broken.append((getattr(variable, "path", variable.name), bad))
    return broken


def check_finite(keras_model, path, allow: bool = False) -> list[tuple[str, int]]:
    """NonFiniteWeightsError naming the tensors with NaN/Inf after loading ``path``; with
    ``allow`` a loud warning on stderr instead. Returns the broken tensors."""
    broken = nonfinite_tensors(keras_model)
    if not broken:
        return broken
    listed = _names([f"{name} ({count} values)" for name, count in broken])
    message = f"{path}: {len(broken)} weight tensor(s) hold NaN or Inf: {listed}"
    if not allow:
        raise NonFiniteWeightsError(message + "; expected finite weights (--allow-nonfinite "
                                              "loads them anyway)")
    print(f"WARNING: {message}; loading anyway (--allow-nonfinite): outputs will be NaN",
          file=sys.stderr)
    return broken


def check_loaded_weights(keras_model, report, allow_nonfinite=False, min_fraction=1.0):
    """Both checks after ``load_weights``: enough of the model loaded, and finite values."""
    require_loaded(keras_model, report, min_fraction)
    check_finite(keras_model, report.path, allow_nonfinite)


def check_init_file(path) -> None:
    """``--init PATH`` before anything starts: a readable Keras-2 file with Mask R-CNN layers."""
    from mrcnn.checks.options import check_input_file
    from mrcnn.stats import iter_weights_in_file

    check_input_file(path, "--init weights file")
    try:
        shapes = {layer for layer, _, _ in iter_weights_in_file(path)}
    except (OSError, ValueError, KeyError) as error:
        raise WeightsRefusedError(f"--init {path}: not a readable Keras-2 (matterport layout) "
                                  f"weights file ({str(error).splitlines()[0]})") from None
    try:
        require_mask_rcnn_layers({name: {} for name in shapes}, path)
    except WeightsRefusedError as error:
        raise WeightsRefusedError(f"--init {error}") from None
