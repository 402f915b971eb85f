"""Box math in numpy and TensorFlow: IoU, delta encode/decode, clipping, normalisation, NMS.

All boxes are ``[y1, x1, y2, x2]``. Pixel boxes follow matterport's convention: ``(y2, x2)`` lies
one past the last pixel (so a box covering pixel rows 3..5 is ``y1=3, y2=6``). Normalized boxes
divide by ``(h - 1, w - 1)`` after shifting ``(y2, x2)`` by -1, exactly as matterport's
``norm_boxes``, so that weights trained there decode to the same pixels here.

Numpy functions are the reference; the ``*_tf`` variants are graph versions tested equal to them.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# numpy
# ---------------------------------------------------------------------------------------------


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """[N] areas of [N, 4] boxes (any unit)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


def compute_iou(box, boxes, box_area=None, boxes_area=None) -> np.ndarray:
    """[N] IoU of one [4] box with [N, 4] boxes (matterport's utils.compute_iou)."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if box_area is None:
        box_area = box_areas(box[None])[0]
    if boxes_area is None:
        boxes_area = box_areas(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def compute_overlaps(boxes1, boxes2) -> np.ndarray:
    """[N1, N2] IoU matrix of [N1, 4] and [N2, 4] boxes."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.maximum(y2 - y1, 0) * np.maximum(x2 - x1, 0)
    union = box_areas(boxes1)[:, None] + box_areas(boxes2)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def compute_overlaps_masks(masks1, masks2) -> np.ndarray:
    """[N1, N2] IoU matrix of [H, W, N1] and [H, W, N2] boolean masks."""
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    flat1 = np.reshape(masks1 > 0.5, (-1, masks1.shape[-1])).astype(np.float32)
    flat2 = np.reshape(masks2 > 0.5, (-1, masks2.shape[-1])).astype(np.float32)
    area1 = flat1.sum(axis=0)
    area2 = flat2.sum(axis=0)
    intersections = flat1.T @ flat2
    union = area1[:, None] + area2[None, :] - intersections
    return np.where(union > 0, intersections / np.maximum(union, 1e-12), 0.0)


def box_refinement(boxes, gt_boxes) -> np.ndarray:
    """[N, 4] deltas (dy, dx, log dh, log dw) that turn [N, 4] ``boxes`` into ``gt_boxes``."""
    boxes = np.asarray(boxes, dtype=np.float32)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    gt_height = gt_boxes[:, 2] - gt_boxes[:, 0]
    gt_width = gt_boxes[:, 3] - gt_boxes[:, 1]
    gt_center_y = gt_boxes[:, 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1)


def apply_box_deltas(boxes, deltas) -> np.ndarray:
    """[N, 4] boxes moved by [N, 4] deltas (dy, dx, log dh, log dw); inverse of box_refinement."""
    boxes = np.asarray(boxes, dtype=np.float32)
    deltas = np.asarray(deltas, dtype=np.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def clip_boxes(boxes, window) -> np.ndarray:
    """[N, 4] boxes clipped to ``window`` = (y1, x1, y2, x2) in the same unit."""
    boxes = np.asarray(boxes, dtype=np.float32)
    wy1, wx1, wy2, wx2 = [np.float32(v) for v in window]
    y1 = np.clip(boxes[:, 0], wy1, wy2)
    x1 = np.clip(boxes[:, 1], wx1, wx2)
    y2 = np.clip(boxes[:, 2], wy1, wy2)
    x2 = np.clip(boxes[:, 3], wx1, wx2)
    return np.stack([y1, x1, y2, x2], axis=1)


def norm_boxes(boxes, shape) -> np.ndarray:
    """Pixel [N, 4] boxes -> normalized, for an image of ``shape`` (h, w)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return ((np.asarray(boxes, dtype=np.float32) - shift) / scale).astype(np.float32)


def denorm_boxes(boxes, shape) -> np.ndarray:
    """Normalized [N, 4] boxes -> int32 pixel boxes for an image of ``shape`` (h, w)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return np.around(np.asarray(boxes, dtype=np.float32) * scale + shift).astype(np.int32)


def non_max_suppression(boxes, scores, threshold, max_output=None) -> np.ndarray:
    """Indices of [N, 4] boxes kept by greedy NMS at IoU > ``threshold``, by descending score.

    Matches ``tf.image.non_max_suppression``: a box is dropped when its IoU with a kept,
    higher-scoring box is strictly greater than ``threshold``.
    """
    if max_output is not None and max_output <= 0:
        return np.zeros(0, dtype=np.int32)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    # tf treats (y1, x1, y2, x2) and (y2, x2, y1, x1) alike: order the corners first.
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                            np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)
    order = np.argsort(-scores, kind="stable")
    areas = box_areas(boxes)
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        if max_output is not None and len(keep) >= max_output:
            break
        iou = compute_iou(boxes[i], boxes, areas[i], areas)
        suppressed |= iou > threshold
    return np.array(keep, dtype=np.int32)


def extract_bboxes(mask) -> np.ndarray:
    """[N, 4] int32 pixel boxes enclosing each of the [H, W, N] masks; all zeros for an empty mask."""
    mask = np.asarray(mask)
    count = mask.shape[-1]
    boxes = np.zeros([count, 4], dtype=np.int32)
    for i in range(count):
        m = mask[:, :, i]
        rows = np.where(np.any(m, axis=1))[0]
        cols = np.where(np.any(m, axis=0))[0]
        if rows.size:
            # y2, x2 are one past the last pixel of the mask.
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


# ---------------------------------------------------------------------------------------------
# TensorFlow (graph) versions
# ---------------------------------------------------------------------------------------------


def _tf():
    import tensorflow as tf  # imported lazily so numpy users never pay for TF

    return tf


def apply_box_deltas_tf(boxes, deltas):
    """[N, 4] boxes moved by [N, 4] deltas; graph version of apply_box_deltas."""
    tf = _tf()
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * tf.exp(deltas[:, 2])
    width = width * tf.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=1)


def clip_boxes_tf(boxes, window):
    """[N, 4] boxes clipped to ``window`` [4]; graph version of clip_boxes."""
    tf = _tf()
    wy1, wx1, wy2, wx2 = tf.split(tf.cast(window, boxes.dtype), 4)
    y1, x1, y2, x2 = tf.split(boxes, 4, axis=1)
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    return tf.concat([y1, x1, y2, x2], axis=1)


def box_refinement_tf(boxes, gt_boxes):
    """[N, 4] deltas turning ``boxes`` into ``gt_boxes``; graph version of box_refinement."""
    tf = _tf()
    boxes = tf.cast(boxes, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    gt_height = gt_boxes[:, 2] - gt_boxes[:, 0]
    gt_width = gt_boxes[:, 3] - gt_boxes[:, 1]
    gt_center_y = gt_boxes[:, 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = tf.math.log(gt_height / height)
    dw = tf.math.log(gt_width / width)
    return tf.stack([dy, dx, dh, dw], axis=1)


def overlaps_tf(boxes1, boxes2):
    """[N1, N2] IoU matrix of [N1, 4] and [N2, 4] boxes; graph version of compute_overlaps."""
    tf = _tf()
    b1 = tf.expand_dims(boxes1, 1)  # (N1, 1, 4)
    b2 = tf.expand_dims(boxes2, 0)  # (1, N2, 4)
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def norm_boxes_tf(boxes, shape):
    """Pixel [..., 4] boxes -> normalized for image ``shape`` (h, w); graph version of norm_boxes."""
    tf = _tf()
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.divide(boxes - shift, scale)


def denorm_boxes_tf(boxes, shape):
    """Normalized [..., 4] boxes -> int32 pixels for image ``shape`` (h, w)."""
    tf = _tf()
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.cast(tf.round(tf.multiply(boxes, scale) + shift), tf.int32)
