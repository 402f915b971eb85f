"""Derived views of a Trace that more than one drawer needs (numpy only, no TensorFlow, no Qt).

``mrcnn.visualize`` (matplotlib figures) and the viewer's canvas both draw the RPN objectness
as one value per feature-map cell; this module computes it once, with one rule for the edges.
"""

from __future__ import annotations

import math

import numpy as np


def level_cell_shape(trace, level: int) -> tuple[int, int] | None:
    """(cells_h, cells_w) of pyramid level ``level`` (2..6): the feature map divided by
    RPN_ANCHOR_STRIDE, rounded up; None when the trace does not record the level's shape."""
    shapes = trace.meta.get("level_shapes") or []
    if not 0 <= level - 2 < len(shapes):  # level_shapes lists P2..P6 in order
        return None
    height, width = (int(v) for v in shapes[level - 2][:2])
    stride = int(trace.meta.get("config", {}).get("RPN_ANCHOR_STRIDE", 1) or 1)
    return math.ceil(height / stride), math.ceil(width / stride)


def max_score_per_cell(trace, level: int) -> np.ndarray | None:
    """[cells_h, cells_w] float: the best RPN foreground score among each cell's anchors.

    Anchors of a level are ordered y, x, ratio (``mrcnn.anchors``), so the level's scores
    reshape to (cells_h, cells_w, anchors per cell). None when the level has no anchors, its
    shape is unknown, or its anchor count is not a whole number of anchors per cell.
    """
    rows = np.flatnonzero(np.asarray(trace["anchors"]["levels"]) == level)
    cells = level_cell_shape(trace, level)
    if not len(rows) or cells is None:
        return None
    cells_h, cells_w = cells
    per_cell = len(rows) // max(cells_h * cells_w, 1)
    if not per_cell or per_cell * cells_h * cells_w != len(rows):
        return None
    # (H_l * W_l * A,) -> (H_l, W_l, A) -> max over A
    scores = np.asarray(trace["rpn/scores"]["scores"])[rows]
    return scores.reshape(cells_h, cells_w, per_cell).max(axis=2)
