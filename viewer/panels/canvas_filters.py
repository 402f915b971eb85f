"""Which boxes the dense stages draw (Qt-free): top-N, pyramid level and score filters, the
default pyramid level, and the RPN heat map's cell grid.

The Refined anchors and Proposals stages hold PRE_NMS_LIMIT / POST_NMS_ROIS boxes (1,000 and
more): drawn at once they are a solid mesh, so the canvas shows the best ``top_n`` by score
(default ``DEFAULT_TOP_N``) of one level or all, at or above the score threshold.
"""

from __future__ import annotations

import numpy as np

from mrcnn.targets import POSITIVE

DEFAULT_TOP_N = 50        # boxes drawn by the dense stages until the user asks for more
TOP_N_CHOICES_MAX = 2000  # the Top spin box's maximum (0 means all)
MAX_GRID_LINES = 130      # beyond this the cell grid would be a solid mesh: not drawn


def filter_rows(scores, levels, threshold: float, top_n: int, level: int) -> tuple[np.ndarray, str]:
    """Rows (in row order) of the ``top_n`` best ``scores`` at or above ``threshold`` on pyramid
    ``level`` (0: any level; ``levels`` [N] gives each row's level, None when unknown);
    ``top_n`` 0 keeps them all. Also a note of what was kept, e.g. "top 50 of 812 at P3"."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    keep = scores >= threshold
    where = ""
    if level and levels is not None:
        keep &= np.asarray(levels).reshape(-1) == level
        where = f" at P{level}"
    rows = np.flatnonzero(keep)
    passing = len(rows)
    if top_n and passing > top_n:
        rows = np.sort(rows[np.argsort(-scores[rows], kind="stable")[:top_n]])
    above = f" with score ≥ {threshold:.2f}" if threshold > 0 else ""
    kept = f"top {len(rows)} of {passing}" if len(rows) < passing else f"all {passing}"
    return rows, f"{kept}{where}{above}"


def pre_nms_levels(trace) -> np.ndarray | None:
    """[K] pyramid level of each pre-NMS proposal (its anchor's level), or None if unknown."""
    if "anchors" not in trace or "levels" not in trace["anchors"]:
        return None
    return np.asarray(trace["anchors"]["levels"])[trace["proposals/pre_nms"]["anchor_indices"]]


def post_nms_levels(trace) -> np.ndarray | None:
    """[R] pyramid level of each proposal after NMS (through its pre-NMS row), or None."""
    pre = pre_nms_levels(trace)
    if pre is None or "indices" not in trace["proposals/post_nms"]:
        return None
    return pre[np.asarray(trace["proposals/post_nms"]["indices"])]


def default_level(trace) -> int:
    """The pyramid level worth showing first: the one with the most positive anchors when the
    trace has RPN targets with positives, else the level of the best RPN score, else P2."""
    anchors = trace.get("anchors") if trace is not None else None
    if anchors is None or "levels" not in anchors or not len(anchors["levels"]):
        return 2
    levels = np.asarray(anchors["levels"])
    if "targets/rpn" in trace:
        positive = levels[np.asarray(trace["targets/rpn"]["match"]) == POSITIVE]
        if len(positive):
            values, counts = np.unique(positive, return_counts=True)
            return int(values[np.argmax(counts)])  # ties: the lower level
    if "rpn/scores" in trace and len(trace["rpn/scores"]["scores"]):
        return int(levels[int(np.argmax(trace["rpn/scores"]["scores"]))])
    return 2


def cell_grid_lines(rect, cells) -> np.ndarray:
    """[cells_h + cells_w + 2, 4] boxes ``[y1, x1, y2, x2]`` of zero width or height: the lines
    between the heat map's cells, ``rect`` (x, y, width, height) split into ``cells`` (h, w).
    Empty when there would be more than MAX_GRID_LINES lines."""
    cells_h, cells_w = (int(v) for v in cells)
    if cells_h + cells_w + 2 > MAX_GRID_LINES:
        return np.zeros((0, 4), np.float32)
    x, y, width, height = (float(v) for v in rect)
    xs = x + np.arange(cells_w + 1) * (width / cells_w)
    ys = y + np.arange(cells_h + 1) * (height / cells_h)
    vertical = np.stack([np.full_like(xs, y), xs, np.full_like(xs, y + height), xs], axis=1)
    horizontal = np.stack([ys, np.full_like(ys, x), ys, np.full_like(ys, x + width)], axis=1)
    return np.concatenate([vertical, horizontal]).astype(np.float32)
