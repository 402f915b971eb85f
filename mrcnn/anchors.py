"""Pyramid anchors, numpy only, with matterport's ordering and values.

Shape shorthand: Hi, Wi = feature-map size of level i (P2..P6); A = len(ratios) anchors per cell;
N = sum over levels of ceil(Hi / anchor_stride) * ceil(Wi / anchor_stride) * A.

Anchor order (the RPN's outputs are reshaped in the same order, so it must not change):
level P2 first, then P3 ... P6; inside a level row-major over feature cells (y, then x); inside a
cell one anchor per ratio. Anchor centres sit at ``cell_index * feature_stride`` (not at the cell
centre), exactly as matterport's ``utils.generate_anchors``, so pretrained RPN weights decode to
the same boxes.
"""

from __future__ import annotations

import numpy as np

from mrcnn.boxes import norm_boxes

# Level number of the first pyramid level (P2); level ids run FIRST_LEVEL .. FIRST_LEVEL + 4.
FIRST_LEVEL = 2

# (scales, ratios, strides, anchor stride, feature shapes, image h, w) -> _CacheEntry.
# Small: one entry per distinct input shape per anchor setting.
_CACHE: dict[tuple, dict] = {}


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride) -> np.ndarray:
    """[N, 4] pixel anchors ``[y1, x1, y2, x2]`` of one level with feature map ``shape`` (h, w).

    ``scales`` is a side length in pixels (scalar or list); anchors per cell are ordered as
    ``meshgrid(scales, ratios)`` flattened (ratio-major), heights ``scale / sqrt(ratio)``.
    """
    scales, ratios = np.meshgrid(np.asarray(scales, dtype=np.float64),
                                 np.asarray(ratios, dtype=np.float64))
    scales, ratios = scales.ravel(), ratios.ravel()  # (A,)
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)

    centers_y = np.arange(0, shape[0], anchor_stride) * feature_stride  # (Hs,)
    centers_x = np.arange(0, shape[1], anchor_stride) * feature_stride  # (Ws,)
    # (Hs, Ws, A) grids, then flattened row-major: y, x, anchor.
    cy = np.broadcast_to(centers_y[:, None, None], (len(centers_y), len(centers_x), len(heights)))
    cx = np.broadcast_to(centers_x[None, :, None], cy.shape)
    h = np.broadcast_to(heights[None, None, :], cy.shape)
    w = np.broadcast_to(widths[None, None, :], cy.shape)
    boxes = np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)
    return boxes.reshape(-1, 4)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides,
                             anchor_stride) -> np.ndarray:
    """[N, 4] pixel anchors of all levels (one scale per level), concatenated P2..P6."""
    if not (len(scales) == len(feature_shapes) == len(feature_strides)):
        raise ValueError(
            f"generate_pyramid_anchors: need one scale, feature shape and stride per level, got "
            f"{len(scales)} scales, {len(feature_shapes)} shapes, {len(feature_strides)} strides")
    levels = [generate_anchors(scale, ratios, shape, stride, anchor_stride)
              for scale, shape, stride in zip(scales, feature_shapes, feature_strides)]
    return np.concatenate(levels, axis=0)


def feature_shapes(config, image_shape) -> np.ndarray:
    """[levels, 2] feature-map (h, w) of P2..P6 for ``image_shape`` (as matterport's
    compute_backbone_shapes: the config's COMPUTE_BACKBONE_SHAPE for a callable backbone)."""
    if callable(config.BACKBONE) and config.COMPUTE_BACKBONE_SHAPE is not None:
        return np.asarray(config.COMPUTE_BACKBONE_SHAPE(image_shape), dtype=np.int64)
    return np.asarray(config.backbone_shapes(image_shape), dtype=np.int64)


def _entry(config, image_shape) -> dict:
    """The cached anchors of ``config`` at ``image_shape``, computed on first use."""
    shapes = feature_shapes(config, image_shape)
    height, width = int(image_shape[0]), int(image_shape[1])
    key = (tuple(float(s) for s in config.RPN_ANCHOR_SCALES),
           tuple(float(r) for r in config.RPN_ANCHOR_RATIOS),
           tuple(int(s) for s in config.BACKBONE_STRIDES),
           int(config.RPN_ANCHOR_STRIDE),
           tuple(map(tuple, shapes.tolist())),
           height, width)
    entry = _CACHE.get(key)
    if entry is None:
        pixels = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                          shapes, config.BACKBONE_STRIDES,
                                          config.RPN_ANCHOR_STRIDE)
        stride = int(config.RPN_ANCHOR_STRIDE)
        counts = [int(-(-h // stride) * -(-w // stride) * len(config.RPN_ANCHOR_RATIOS))
                  for h, w in shapes]
        level_ids = np.repeat(np.arange(FIRST_LEVEL, FIRST_LEVEL + len(counts), dtype=np.int32),
                              counts)
        entry = {"pixels": pixels, "normalized": norm_boxes(pixels, (height, width)),
                 "level_ids": level_ids, "counts": counts}
        # Shared between callers: make accidental in-place edits fail loudly instead of
        # corrupting every later model call.
        for name in ("pixels", "normalized", "level_ids"):
            entry[name].flags.writeable = False
        _CACHE[key] = entry
    return entry


def get_anchors(config, image_shape) -> np.ndarray:
    """[N, 4] float32 normalized anchors for a (molded) image of ``image_shape``; cached, read-only."""
    return _entry(config, image_shape)["normalized"]


def get_anchors_pixels(config, image_shape) -> np.ndarray:
    """[N, 4] float64 pixel anchors ``[y1, x1, y2, x2]`` for ``image_shape``; cached, read-only."""
    return _entry(config, image_shape)["pixels"]


def anchor_level_ids(config, image_shape) -> np.ndarray:
    """[N] int32 FPN level (2..6) of each anchor of get_anchors(config, image_shape)."""
    return _entry(config, image_shape)["level_ids"]


def anchors_per_level(config, image_shape) -> list[int]:
    """Number of anchors on each level P2..P6 (they sum to N)."""
    return list(_entry(config, image_shape)["counts"])


def clear_cache() -> None:
    """Forget all cached anchors (tests, or a long-lived process that saw many shapes)."""
    _CACHE.clear()
