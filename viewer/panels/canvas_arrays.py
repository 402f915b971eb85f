"""Numpy helpers of the canvas: outlines, box picking, heat and mask images, the raw-mask grid.

Qt-free: rectangles are ``(x, y, width, height)`` tuples in original-image pixels, colours come
from a ``lut`` ([256, 3] uint8) the caller passes. Boxes are original-image pixels
``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

import math

import numpy as np

from mrcnn.trace_views import level_cell_shape

RAW_CELL = 28            # raw mask side, pixels of the grid image
GRID_CELL = RAW_CELL + 2  # one pixel of border on each side
MASK_ALPHA = 120
GT_MASK_COLOUR = (255, 255, 255, 60)


def outline_arrays(boxes) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the outlines of ``boxes`` [N, 4], one closed rectangle per box, NaN between."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    y1, x1, y2, x2 = boxes.T
    nan = np.full(len(boxes), np.nan)
    x = np.stack([x1, x2, x2, x1, x1, nan], axis=1).ravel()
    y = np.stack([y1, y1, y2, y2, y1, nan], axis=1).ravel()
    return x, y


def pick_box(boxes, x: float, y: float):
    """Row of the smallest box in ``boxes`` [N, 4] containing point (x, y), or None."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    inside = (boxes[:, 0] <= y) & (y <= boxes[:, 2]) & (boxes[:, 1] <= x) & (x <= boxes[:, 3])
    rows = np.flatnonzero(inside)
    if not len(rows):
        return None
    area = (boxes[rows, 2] - boxes[rows, 0]) * (boxes[rows, 3] - boxes[rows, 1])
    return int(rows[np.argmin(area)])


def molded_rect(trace, shape) -> tuple[float, float, float, float]:
    """(x, y, width, height): where a map of ``shape`` [h, w] covering the molded image lies,
    in original-image pixels (the padding lies outside the image, at negative coordinates)."""
    meta = trace.meta.get("image_meta") or {}
    scale = float(meta.get("scale", 1.0) or 1.0)
    top, left = (meta.get("window") or [0, 0])[:2]
    molded_h, molded_w = (meta.get("molded_shape") or shape)[:2]
    return (-left / scale, -top / scale, molded_w / scale, molded_h / scale)


def heat_rect(trace, level: int):
    """(x, y, width, height) of the level's per-cell heat map, or None if its shape is unknown.
    Cell (i, j) is centred on its anchors' centre, i * feature stride."""
    cells = level_cell_shape(trace, level)
    if cells is None:
        return None
    height, width = (int(v) for v in trace.meta["level_shapes"][level - 2][:2])
    stride = int(trace.meta.get("config", {}).get("RPN_ANCHOR_STRIDE", 1) or 1)
    x, y, molded_width, _ = molded_rect(trace, (height, width))
    feature_stride = molded_width / width * stride
    return (x - feature_stride / 2, y - feature_stride / 2,
            cells[1] * feature_stride, cells[0] * feature_stride)


def heat_rgba(values, lut) -> np.ndarray:
    """[h, w, 4] uint8 of ``values`` [h, w] in 0..1: colour from ``lut``, stronger = more opaque."""
    values = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    rgba = np.empty(values.shape + (4,), np.uint8)
    rgba[..., :3] = lut[(values * 255).astype(np.uint8)]
    rgba[..., 3] = (50 + 170 * values).astype(np.uint8)
    return rgba


def mask_image(trace, mode: str, rows, show_gt: bool, lut, colour_of) -> np.ndarray:
    """[H, W, 4] uint8 of the masks to draw over the original image.

    ``mode`` "raw": each detection's 28x28 probabilities stretched into its box; "full": its
    full-size mask in ``colour_of(class_id)``; "": none. ``rows``: detections drawn.
    ``show_gt``: ground-truth masks in translucent white underneath.
    """
    height, width = trace.image.shape[:2]
    rgba = np.zeros((height, width, 4), np.uint8)
    if show_gt:
        for box, mask in zip(trace["gt"]["boxes"], np.moveaxis(trace["gt"]["masks"], -1, 0)):
            paint_mask(rgba, box, mask, GT_MASK_COLOUR)
    det = trace.get("detections")
    for row in rows if mode and det is not None else ():
        box = det["boxes"][row]
        if mode == "raw":
            paint_raw_mask(rgba, box, trace["masks/raw"]["masks"][row], lut, MASK_ALPHA + 80)
        elif "masks" in trace:
            colour = tuple(colour_of(det["class_ids"][row]))
            mask = trace["masks"]["masks"][..., row]
            paint_mask(rgba, box, mask, colour + (MASK_ALPHA,))
            # An opaque outline keeps the class colour readable: a translucent fill alone
            # mixes with the image (red over cyan reads as grey).
            paint_mask(rgba, box, mask_outline(mask), colour + (255,))
    return rgba


def mask_outline(mask) -> np.ndarray:
    """[H, W] bool: the pixels of ``mask`` with a 4-neighbour outside it (or on the border)."""
    mask = np.asarray(mask).astype(bool)
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
                         & mask[1:-1, :-2] & mask[1:-1, 2:])
    return mask & ~inner


def clip_box(box, shape) -> tuple[int, int, int, int]:
    """Box rounded to whole pixels and clipped to an image of ``shape`` [H, W, ...]."""
    y1, x1, y2, x2 = (int(round(float(v))) for v in box)
    return max(y1, 0), max(x1, 0), min(y2, shape[0]), min(x2, shape[1])


def paint_mask(rgba, box, mask, colour) -> None:
    """Paint full-size ``mask`` [H, W] inside ``box`` onto ``rgba`` with ``colour`` (RGBA)."""
    y1, x1, y2, x2 = clip_box(box, rgba.shape)
    if y2 <= y1 or x2 <= x1:
        return
    rgba[y1:y2, x1:x2][mask[y1:y2, x1:x2].astype(bool)] = colour


def paint_raw_mask(rgba, box, raw, lut, alpha: int) -> None:
    """Paint a raw [28, 28] probability map stretched (nearest) into ``box``."""
    y1, x1, y2, x2 = clip_box(box, rgba.shape)
    if y2 <= y1 or x2 <= x1:
        return
    by1, bx1, by2, bx2 = (float(v) for v in box)
    rows = np.clip(((np.arange(y1, y2) + 0.5 - by1) / max(by2 - by1, 1) * raw.shape[0]).astype(int),
                   0, raw.shape[0] - 1)
    cols = np.clip(((np.arange(x1, x2) + 0.5 - bx1) / max(bx2 - bx1, 1) * raw.shape[1]).astype(int),
                   0, raw.shape[1] - 1)
    probs = np.clip(raw[rows][:, cols], 0, 1)
    rgba[y1:y2, x1:x2, :3] = lut[(probs * 255).astype(np.uint8)]
    rgba[y1:y2, x1:x2, 3] = (probs * alpha).astype(np.uint8)


def grid_columns(count: int) -> int:
    """Columns of the raw-mask grid of ``count`` masks: about square."""
    return max(1, math.ceil(math.sqrt(count)))


def raw_mask_grid(raw, rows, lut) -> np.ndarray:
    """[lines * 30, columns * 30, 4] uint8: masks ``raw[rows]`` ([28, 28] each) in a grid,
    row-major, a one-pixel transparent border around each."""
    columns = grid_columns(len(rows))
    lines = max(1, math.ceil(len(rows) / columns))
    grid = np.zeros((lines * GRID_CELL, columns * GRID_CELL, 4), np.uint8)
    for i, row in enumerate(rows):
        y, x = divmod(i, columns)
        cell = grid[y * GRID_CELL + 1:y * GRID_CELL + 1 + RAW_CELL,
                    x * GRID_CELL + 1:x * GRID_CELL + 1 + RAW_CELL]
        cell[..., :3] = lut[(np.clip(raw[row], 0, 1) * 255).astype(np.uint8)]
        cell[..., 3] = 255
    return grid


def grid_cell_box(index: int, columns: int) -> list:
    """[y1, x1, y2, x2] of cell ``index`` of the raw-mask grid, grid-image pixels."""
    y, x = divmod(int(index), columns)
    return [y * GRID_CELL, x * GRID_CELL, (y + 1) * GRID_CELL, (x + 1) * GRID_CELL]


def grid_index_at(x: float, y: float, columns: int, count: int):
    """Index of the grid cell under grid-image point (x, y), or None outside the cells."""
    column, line = int(x // GRID_CELL), int(y // GRID_CELL)
    index = line * columns + column
    return index if 0 <= column < columns and 0 <= index < count and y >= 0 else None


def box_of(trace, key: str, row):
    """Box [4] float32 of row ``row`` of trace stage ``key`` (None if absent or out of range)."""
    stage = trace.get(key)
    if stage is None or "boxes" not in stage or row is None or row < 0:
        return None
    boxes = np.asarray(stage["boxes"]).reshape(-1, 4)
    return boxes[row].astype(np.float32) if row < len(boxes) else None


def refined_box_of_roi(trace, roi):
    """Class-specific refined box [4] of ROI ``roi`` for its most likely class, or None."""
    if "heads/refined" not in trace or roi is None or roi < 0 \
            or roi >= len(trace["heads/refined"]["boxes"]):
        return None
    class_id = int(np.argmax(trace["heads/class_probs"]["probs"][roi]))
    return trace["heads/refined"]["boxes"][roi, class_id]
