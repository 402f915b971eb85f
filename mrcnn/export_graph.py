"""Molding and unmolding as TensorFlow ops, so an exported model needs no Python from mrcnn.

Each function is the graph twin of a numpy reference in mrcnn/imaging.py or mrcnn/anchors.py
(tests check them equal): ``resize_and_pad`` = ``imaging.resize_image`` + ``mold_image`` +
``compose_image_meta``, ``pyramid_anchors`` = ``anchors.get_anchors``, ``unmold`` =
``imaging.unmold_detections``. One image at a time (no batch axis), any size.

Boxes are ``[y1, x1, y2, x2]``; "pixels" means matterport's convention, (y2, x2) one past the
last pixel; "normalized" divides by (h - 1, w - 1) after shifting (y2, x2) by -1.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mrcnn.imaging import MASK_THRESHOLD

# Resize modes an exported model supports: "crop" takes a random crop, which is a training
# augmentation, not something a served model should do to a request.
EXPORT_RESIZE_MODES = ("square", "pad64", "none")


def _linear_taps(in_size, out_size):
    """(first source index into the zero-padded axis, weight of it, weight of the next) per
    output pixel, computed as scipy.ndimage.zoom(order=1, grid_mode=True) does: coordinate
    ``(i + 0.5) * (in / out) - 0.5``, weights ``1 - t`` and ``1 - (1 - t)``."""
    zoom = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    coordinate = (tf.range(out_size, dtype=tf.float64) + 0.5) * zoom - 0.5
    low = tf.floor(coordinate)
    first_weight = 1.0 - (coordinate - low)
    second_weight = 1.0 - first_weight
    # +1: index 0 of the padded axis is the zero border that stands for cval=0.
    index = tf.clip_by_value(tf.cast(low, tf.int32) + 1, 0, in_size)
    return index, first_weight, second_weight


def _bilinear_resize(image, out_h, out_w):
    """float64 [out_h, out_w, C] bilinear resize of a float64 [H, W, C] image with skimage's
    resize(order=1, mode="constant", cval=0, anti_aliasing=False) semantics.

    The arithmetic repeats scipy's (each corner's value times its row weight, times its column
    weight, summed corner by corner in C order) so that flat regions of integer pixels land on
    the same side of an integer as the reference: molding truncates back to uint8.
    """
    shape = tf.shape(image)
    padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]])
    rows, wy0, wy1 = _linear_taps(shape[0], out_h)
    cols, wx0, wx1 = _linear_taps(shape[1], out_w)
    top, bottom = tf.gather(padded, rows, axis=0), tf.gather(padded, rows + 1, axis=0)
    wy0, wy1 = wy0[:, None, None], wy1[:, None, None]
    wx0, wx1 = wx0[None, :, None], wx1[None, :, None]
    total = (tf.gather(top, cols, axis=1) * wy0) * wx0
    total = total + (tf.gather(top, cols + 1, axis=1) * wy0) * wx1
    total = total + (tf.gather(bottom, cols, axis=1) * wy1) * wx0
    return total + (tf.gather(bottom, cols + 1, axis=1) * wy1) * wx1


def resize_scale(height, width, config):
    """float64 scale factor of ``imaging.resize_image`` for an image of (height, width)."""
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if config.IMAGE_RESIZE_MODE == "none":
        return scale
    if config.IMAGE_MIN_DIM:
        scale = tf.maximum(scale, float(config.IMAGE_MIN_DIM) / tf.minimum(h, w))
    if config.IMAGE_MIN_SCALE:
        scale = tf.maximum(scale, float(config.IMAGE_MIN_SCALE))
    if config.IMAGE_MAX_DIM and config.IMAGE_RESIZE_MODE == "square":
        max_dim = float(config.IMAGE_MAX_DIM)
        too_big = tf.round(tf.maximum(h, w) * scale) > max_dim
        scale = tf.where(too_big, max_dim / tf.maximum(h, w), scale)
    return scale


def resize_and_pad(image, config):
    """uint8 [H, W, 3] image -> (molded float32 [h, w, 3], meta float32 [META], window int32 [4]).

    Same resize (skimage's bilinear, then truncation back to uint8), padding and mean
    subtraction as ``imaging.mold_inputs``; the window is the image's pixel box in the result.
    """
    mode = config.IMAGE_RESIZE_MODE
    if mode not in EXPORT_RESIZE_MODES:
        raise ValueError(f"IMAGE_RESIZE_MODE {mode!r} cannot be exported; expected one of "
                         f"{EXPORT_RESIZE_MODES}")
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    scale = resize_scale(height, width, config)
    new_h = tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32)
    new_w = tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32)
    resized = _bilinear_resize(tf.cast(image, tf.float64), new_h, new_w)
    # resize_image casts back to the input dtype: numpy's float -> uint8 truncates.
    resized = tf.cast(tf.cast(resized, tf.uint8), tf.float32)
    if mode == "square":
        pad_h = config.IMAGE_MAX_DIM - new_h
        pad_w = config.IMAGE_MAX_DIM - new_w
    elif mode == "pad64":
        pad_h, pad_w = tf.math.floormod(-new_h, 64), tf.math.floormod(-new_w, 64)
    else:
        pad_h, pad_w = tf.constant(0), tf.constant(0)
    top, left = pad_h // 2, pad_w // 2
    mean = tf.constant(np.asarray(config.MEAN_PIXEL, np.float32))
    molded = tf.pad(resized, [[top, pad_h - top], [left, pad_w - left], [0, 0]]) - mean
    window = tf.stack([top, left, new_h + top, new_w + left])
    molded_shape = tf.shape(molded)
    meta = tf.concat([
        tf.zeros([1]),
        tf.cast(tf.stack([height, width, shape[2]]), tf.float32),
        tf.cast(molded_shape, tf.float32),
        tf.cast(window, tf.float32),
        tf.reshape(tf.cast(scale, tf.float32), [1]),
        tf.ones([config.NUM_CLASSES]),
    ], axis=0)
    if mode == "square":
        molded = tf.ensure_shape(molded, [config.IMAGE_MAX_DIM, config.IMAGE_MAX_DIM, 3])
    return molded, meta, window


def pyramid_anchors(config, molded_shape):
    """[A, 4] float32 normalized anchors for a molded image of ``molded_shape`` (int32 [3]);
    the graph twin of ``anchors.get_anchors`` (same order: levels, then y, x, ratio)."""
    ratios = np.asarray(config.RPN_ANCHOR_RATIOS, np.float64)
    levels = []
    for scale, stride in zip(config.RPN_ANCHOR_SCALES, config.BACKBONE_STRIDES):
        heights = tf.constant(float(scale) / np.sqrt(ratios))
        widths = tf.constant(float(scale) * np.sqrt(ratios))
        rows = tf.cast(tf.math.ceil(tf.cast(molded_shape[0], tf.float64) / stride), tf.int32)
        cols = tf.cast(tf.math.ceil(tf.cast(molded_shape[1], tf.float64) / stride), tf.int32)
        step = int(config.RPN_ANCHOR_STRIDE)
        cy = tf.cast(tf.range(0, rows, step), tf.float64) * float(stride)
        cx = tf.cast(tf.range(0, cols, step), tf.float64) * float(stride)
        cy, cx, h = tf.meshgrid(cy, cx, heights, indexing="ij")
        _, _, w = tf.meshgrid(tf.zeros_like(cy[:, 0, 0]), tf.zeros_like(cx[0, :, 0]), widths,
                              indexing="ij")
        boxes = tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)
        levels.append(tf.reshape(boxes, [-1, 4]))
    pixels = tf.cast(tf.concat(levels, axis=0), tf.float32)
    return _norm_boxes(pixels, molded_shape)


def _norm_boxes(boxes, shape):
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    return (boxes - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale


def _denorm_boxes(boxes, shape):
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    return tf.cast(tf.round(boxes * scale + tf.constant([0.0, 0.0, 1.0, 1.0])), tf.int32)


def unmold_boxes(detections, molded_shape, window, original_shape):
    """(pixel boxes int32 [N, 4], class ids int32 [N], scores [N], kept detection rows [N]).

    ``detections`` [D, 6] normalized (y1, x1, y2, x2, class_id, score), zero rows pad the end;
    boxes of zero area after rounding are dropped, as ``imaging.unmold_detections`` does.
    """
    is_pad = tf.equal(detections[:, 4], 0.0)
    first_pad = tf.where(is_pad)
    count = tf.cond(tf.size(first_pad) > 0, lambda: tf.cast(first_pad[0, 0], tf.int32),
                    lambda: tf.shape(detections)[0])
    real = detections[:count]
    norm_window = _norm_boxes(tf.cast(window, tf.float32), molded_shape)
    wy1, wx1, wy2, wx2 = tf.unstack(norm_window)
    shift = tf.stack([wy1, wx1, wy1, wx1])
    size = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = _denorm_boxes((real[:, :4] - shift) / size, original_shape)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = tf.reshape(tf.cast(tf.where(area > 0), tf.int32), [-1])
    return (tf.gather(boxes, keep), tf.cast(tf.gather(real[:, 4], keep), tf.int32),
            tf.gather(real[:, 5], keep), keep)


def class_masks(mrcnn_mask, rows, class_ids):
    """[N, h, w] float32: each kept detection's mask for its own class."""
    masks = tf.gather(mrcnn_mask, rows)                      # (N, h, w, C)
    masks = tf.transpose(masks, [0, 3, 1, 2])                # (N, C, h, w)
    return tf.gather(masks, class_ids, axis=1, batch_dims=1)  # (N, h, w)


def _paste_weights(starts, ends, mask_size, out_size):
    """[N, out_size, mask_size] float32 linear weights placing a mask row (or column) into
    [start, end) of the output; rows outside the box weigh nothing (as _paste_mask crops)."""
    start = tf.cast(starts, tf.float64)[:, None]
    length = tf.cast(ends - starts, tf.float64)[:, None]
    position = tf.cast(tf.range(out_size), tf.float64)[None, :] - start  # (N, out)
    source = (position + 0.5) * (mask_size / tf.maximum(length, 1.0)) - 0.5
    low = tf.floor(source)
    frac = source - low
    low = tf.cast(low, tf.int32)
    # An index outside [0, mask_size) matches no column: skimage's cval=0 outside. (A
    # comparison rather than tf.one_hot, which tf2onnx converts only for rank-1 indices.)
    columns = tf.range(mask_size)[None, None, :]
    weights = (tf.cast(tf.equal(columns, low[..., None]), tf.float64) * (1.0 - frac)[..., None]
               + tf.cast(tf.equal(columns, low[..., None] + 1), tf.float64) * frac[..., None])
    inside = (position >= 0) & (position < length)
    return tf.cast(weights * tf.cast(inside, tf.float64)[..., None], tf.float32)


def paste_masks(masks, boxes, original_shape, mask_shape):
    """[H, W, N] bool full-size masks: each [h, w] = ``mask_shape`` mask resized bilinearly into
    its pixel box, thresholded at MASK_THRESHOLD and cropped at the image edges
    (``imaging._paste_mask``)."""
    mask_h, mask_w = int(mask_shape[0]), int(mask_shape[1])
    rows = _paste_weights(boxes[:, 0], boxes[:, 2], mask_h, original_shape[0])  # (N, H, h)
    cols = _paste_weights(boxes[:, 1], boxes[:, 3], mask_w, original_shape[1])  # (N, W, w)
    full = tf.einsum("nyk,nkl,nxl->nyx", rows, masks, cols)
    return tf.transpose(full >= MASK_THRESHOLD, [1, 2, 0])
