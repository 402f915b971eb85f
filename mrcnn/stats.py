"""Weight statistics (per weight tensor, with dead / exploding flags) and RPN recall of a trace.

``weight_stats`` reads a built model; ``weight_stats_from_file`` reads a Keras-2 (matterport
layout) HDF5 file with h5py alone, so neither this module's import nor the file path needs
TensorFlow. ``WeightStat.to_dict`` / ``from_dict`` give plain JSON-friendly data for the viewer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from mrcnn.errors import WeightsFileError

HISTOGRAM_BINS = 50
# |w| below this everywhere, or a kernel whose spread is below it: the layer computes nothing.
DEAD_THRESHOLD = 1e-8
# |w| above this: diverged training (weights of a healthy conv net stay within a few units).
EXPLODING_THRESHOLD = 1e3
# Weights whose constant or large values are normal: BN running statistics can be large, and
# biases / BN gamma and beta start as constants.
_RUNNING_STATS = ("moving_mean", "moving_variance")
_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")


@dataclass
class WeightStat:
    """Summary of one weight tensor (``layer``/``name``, e.g. ``conv1``/``kernel``)."""

    layer: str
    name: str
    shape: tuple
    min: float
    max: float
    mean: float
    std: float
    zero_fraction: float
    nonfinite: int  # count of NaN / inf values (excluded from the other statistics)
    hist_counts: np.ndarray = field(repr=False)  # (bins,) int64
    bin_edges: np.ndarray = field(repr=False)  # (bins + 1,) float64
    dead: bool = False
    exploding: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def flags(self) -> list[str]:
        return [flag for flag, on in (("dead", self.dead), ("exploding", self.exploding)) if on]

    def to_dict(self) -> dict:
        """JSON-friendly dict (lists instead of arrays, NaN as None)."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "WeightStat":
        values = dict(values)
        values["shape"] = tuple(values["shape"])
        values["hist_counts"] = np.asarray(values["hist_counts"], np.int64)
        values["bin_edges"] = np.asarray(values["bin_edges"], np.float64)
        for key in ("min", "max", "mean", "std"):
            values[key] = float("nan") if values[key] is None else float(values[key])
        return cls(**values)


def compute_stat(layer: str, name: str, values, bins: int = HISTOGRAM_BINS) -> WeightStat:
    """WeightStat of one array ``values`` (any shape) belonging to ``layer``/``name``."""
    array = np.asarray(values)
    flat = array.astype(np.float64).ravel()
    finite = flat[np.isfinite(flat)]
    nonfinite = int(flat.size - finite.size)
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        mean, std = float(finite.mean()), float(finite.std())
        counts, edges = np.histogram(finite, bins=bins, range=(low, high) if high > low
                                     else (low - 0.5, high + 0.5))
        zero_fraction = float(np.mean(flat == 0.0))
    else:
        low = high = mean = std = float("nan")
        counts, edges = np.zeros(bins, np.int64), np.linspace(0.0, 1.0, bins + 1)
        zero_fraction = 0.0
    is_kernel = name in _KERNEL_NAMES
    max_abs = max(abs(low), abs(high)) if finite.size else float("nan")
    dead = is_kernel and finite.size > 0 and (max_abs < DEAD_THRESHOLD or std < DEAD_THRESHOLD)
    exploding = nonfinite > 0 or (name not in _RUNNING_STATS and finite.size > 0
                                  and max_abs > EXPLODING_THRESHOLD)
    return WeightStat(layer, name, tuple(int(d) for d in array.shape), low, high, mean, std,
                      zero_fraction, nonfinite, counts.astype(np.int64), edges.astype(np.float64),
                      bool(dead), bool(exploding))


def _short_name(name: str) -> str:
    """'res2a_branch2a/res2a_branch2a/kernel:0' -> 'kernel'."""
    return name.split("/")[-1].split(":")[0]


def weight_stats(model, bins: int = HISTOGRAM_BINS) -> list[WeightStat]:
    """One WeightStat per weight of a MaskRCNN or keras.Model, in layer order (nested models too)."""
    from mrcnn.weights import _leaf_layers_with_weights

    keras_model = getattr(model, "keras_model", model)
    stats = []
    for layer in _leaf_layers_with_weights(keras_model):
        for variable in layer.weights:
            name = _short_name(getattr(variable, "path", None) or variable.name)
            stats.append(compute_stat(layer.name, name, np.asarray(variable.numpy()), bins))
    return stats


# ---- HDF5 files, without TensorFlow ----------------------------------------------------------

def _decode(value) -> str:
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _name_list(group, name):
    """A Keras-2 list-of-names attribute (joined when chunked as name0, name1, ...)."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
        if not chunk:
            return None
    return [_decode(v) for v in values]


class NotKeras2WeightsError(WeightsFileError, ValueError):
    """An HDF5 file without ``layer_names``: not a Keras-2 (matterport layout) weights file."""


def iter_file_weights(handle):
    """Yield (layer, weight short name, h5py dataset) of an open Keras-2 HDF5 weights file.

    The layer of a weight is the first part of its stored name (``rpn_conv_shared/kernel:0``
    inside ``rpn_model`` -> ``rpn_conv_shared``); a ``model_weights`` wrapper group is entered.
    Raises NotKeras2WeightsError when the file has no ``layer_names`` (not matterport's layout).
    """
    root = handle
    if _name_list(root, "layer_names") is None and "model_weights" in root:
        root = root["model_weights"]
    layer_names = _name_list(root, "layer_names")
    if layer_names is None:
        raise NotKeras2WeightsError("HDF5 file has no 'layer_names' attribute; not a Keras-2 "
                         "(matterport layout) weights file")
    for group_name in layer_names:
        group = root[group_name]
        for weight_name in _name_list(group, "weight_names") or []:
            layer = weight_name.split("/")[0] if "/" in weight_name else group_name
            yield layer, _short_name(weight_name), group[weight_name]


def iter_weights_in_file(path):
    """``iter_file_weights`` of the file at ``path``, opened here and closed when done.

    Raises FileNotFoundError / ValueError (NotKeras2WeightsError) naming the file when it is
    missing, not HDF5, or not in the Keras-2 (matterport) layout.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path or '(none)'}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path}: not an HDF5 weights file")
    with h5py.File(path, "r") as handle:
        try:
            yield from iter_file_weights(handle)
        except NotKeras2WeightsError as e:
            raise NotKeras2WeightsError(f"{path}: {e}") from None


def weight_stats_from_file(path, bins: int = HISTOGRAM_BINS) -> list[WeightStat]:
    """WeightStats of every weight in a Keras-2 HDF5 weights file (matterport layout), h5py only.

    The layer of a weight is the first part of its stored name (``rpn_conv_shared/kernel:0``
    inside ``rpn_model`` -> ``rpn_conv_shared``). Errors as ``iter_weights_in_file``.
    """
    return [compute_stat(layer, name, np.asarray(dataset), bins)
            for layer, name, dataset in iter_weights_in_file(path)]


def stats_to_dicts(stats) -> list[dict]:
    return [s.to_dict() for s in stats]


def stats_from_dicts(values) -> list[WeightStat]:
    return [WeightStat.from_dict(v) for v in values]


def format_stats_table(stats, anomalies_only: bool = False) -> str:
    """Fixed-width text table: weight, shape, min, max, mean, std, % zeros, flags."""
    rows = [s for s in stats if s.flags] if anomalies_only else list(stats)
    header = ("WEIGHT", "SHAPE", "MIN", "MAX", "MEAN", "STD", "ZEROS", "FLAGS")
    lines = [[f"{s.layer}/{s.name}", "x".join(map(str, s.shape)) or "scalar",
              f"{s.min:+.4g}", f"{s.max:+.4g}", f"{s.mean:+.4g}", f"{s.std:.4g}",
              f"{100 * s.zero_fraction:.1f}%",
              ",".join(s.flags) + (f" ({s.nonfinite} non-finite)" if s.nonfinite else "")]
             for s in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    flagged = sum(1 for s in stats if s.flags)
    out.append(f"{len(stats)} weight tensors, {sum(s.size for s in stats):,} values, "
               f"{flagged} flagged")
    return "\n".join(out)


# ---- RPN recall ------------------------------------------------------------------------------

def _gt_recall(boxes, gt_boxes, iou) -> float:
    """Share of GT boxes whose best IoU with any of ``boxes`` reaches ``iou`` (1.0 without GT)."""
    from mrcnn.boxes import compute_overlaps

    if len(gt_boxes) == 0:
        return 1.0
    if len(boxes) == 0:
        return 0.0
    # (G, N) in chunks of boxes: 260k anchors x G would be a large matrix at once.
    best = np.zeros(len(gt_boxes))
    for start in range(0, len(boxes), 50000):
        overlaps = compute_overlaps(gt_boxes, boxes[start:start + 50000])
        best = np.maximum(best, overlaps.max(axis=1))
    return float(np.mean(best >= iou))


def rpn_recall(trace, gt_boxes, iou: float = 0.5) -> dict:
    """Share of [G, 4] original-pixel GT boxes matched at IoU >= ``iou`` at each RPN step.

    Keys: ``anchors`` (raw anchors), ``refined_anchors`` (pre-NMS refined boxes),
    ``proposals`` (post-NMS), plus ``iou`` and the box ``counts`` used, as matterport's
    inspect_model notebook reports.
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    sources = {"anchors": trace["anchors"]["boxes"],
               "refined_anchors": trace["proposals/pre_nms"]["boxes"],
               "proposals": trace["proposals/post_nms"]["boxes"]}
    out = {key: _gt_recall(np.asarray(boxes, np.float64), gt_boxes, iou)
           for key, boxes in sources.items()}
    out["iou"] = float(iou)
    out["counts"] = {key: int(len(boxes)) for key, boxes in sources.items()}
    out["gt_count"] = int(len(gt_boxes))
    return out
