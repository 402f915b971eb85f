"""PyramidROIAlign: crop-and-resize each box from the FPN level matching its size (matterport).

Shape shorthand: B images, N boxes per image, (ph, pw) pool shape, C feature channels.
Boxes are normalized ``[y1, x1, y2, x2]``.

A box of ``sqrt(h * w)`` = 224 pixels (the ImageNet crop) goes to P4; each halving or doubling
moves one level down or up, clamped to P2..P5:
``level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(image_area)))), 2, 5)``
with h, w normalized, so ``224 / sqrt(image_area)`` is 224 pixels in normalized units.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.imaging import parse_image_meta_tf
from mrcnn.precision import float32_layer_kwargs

# Pyramid levels P2..P5 and the level of a 224-pixel box.
MIN_LEVEL, MAX_LEVEL = 2, 5
CANONICAL_LEVEL = 4
CANONICAL_SIZE = 224.0


def _image_shape_and_window(image_meta):
    """(B, 3) image_shape and (B, 4) pixel window of the molded images, from (B, META) meta."""
    meta = parse_image_meta_tf(image_meta)
    return meta["image_shape"], meta["window"]


def roi_levels(boxes, image_shape):
    """(B, N) int32 pyramid level 2..5 of normalized (B, N, 4) boxes in images of (B, 3) shape."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    image_area = tf.cast(image_shape[:, 0] * image_shape[:, 1], boxes.dtype)[:, None]  # (B, 1)
    # Zero-size (padding) boxes give log2(0) = -inf -> clamped to P2, like matterport; clamping
    # in float first keeps the int cast defined.
    size = tf.sqrt(tf.maximum(height * width, 0.0))
    # log(x) / log(2) rather than a log2 op: the same float32 rounding as matterport's graph.
    level = tf.math.log(size / (CANONICAL_SIZE / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = tf.clip_by_value(CANONICAL_LEVEL + tf.round(level), MIN_LEVEL, MAX_LEVEL)
    return tf.cast(level, tf.int32)


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """ROI Align over an FPN pyramid.

    Inputs ``[boxes (B, N, 4) normalized, image_meta (B, META), P2, P3, P4, P5]`` with each
    ``Pi`` of shape (B, Hi, Wi, C). Output ``(B, N, ph, pw, C)``: bilinear
    ``tf.image.crop_and_resize`` of each box from its level, in the order of ``boxes``.
    No gradient flows into the box coordinates (as matterport).
    """

    def __init__(self, pool_shape, **kwargs):
        # float32 under any policy: box levels and crop_and_resize coordinates need it, and
        # crop_and_resize takes no bfloat16 feature maps (Keras casts them to float32 here; the
        # next convolution casts the pooled crops back to its compute dtype).
        super().__init__(**float32_layer_kwargs(kwargs))
        self.pool_shape = tuple(int(v) for v in pool_shape)
        if len(self.pool_shape) != 2:
            raise ValueError(f"PyramidROIAlign {self.name}: pool_shape needs (height, width), "
                             f"got {pool_shape}")

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        feature_maps = inputs[2:]
        if len(feature_maps) != MAX_LEVEL - MIN_LEVEL + 1:
            raise ValueError(f"PyramidROIAlign {self.name}: expected 4 feature maps P2..P5, "
                             f"got {len(feature_maps)}")
        # Box math in float32 even under mixed precision (log2 of float16 sizes loses levels).
        boxes = tf.cast(boxes, tf.float32)
        image_shape, _ = _image_shape_and_window(image_meta)
        levels = roi_levels(boxes, image_shape)  # (B, N)
        boxes = tf.stop_gradient(boxes)

        pooled, positions = [], []
        for level, feature_map in zip(range(MIN_LEVEL, MAX_LEVEL + 1), feature_maps):
            where = tf.where(tf.equal(levels, level))  # (n_level, 2) = (image, box)
            level_boxes = tf.gather_nd(boxes, where)
            box_indices = tf.stop_gradient(tf.cast(where[:, 0], tf.int32))
            pooled.append(tf.image.crop_and_resize(feature_map, level_boxes, box_indices,
                                                   self.pool_shape, method="bilinear"))
            positions.append(tf.cast(where[:, 0] * tf.cast(tf.shape(boxes)[1], tf.int64)
                                     + where[:, 1], tf.int32))
        pooled = tf.concat(pooled, axis=0)  # (B*N, ph, pw, C), grouped by level
        # Every box lands on exactly one level, so the flat positions are a permutation:
        # gathering by its inverse restores the original box order.
        order = tf.math.invert_permutation(tf.concat(positions, axis=0))
        pooled = tf.gather(pooled, order)
        out_shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        # crop_and_resize returns float32; keep the feature maps' dtype (float32 unless the layer
        # was built with another dtype).
        return tf.cast(tf.reshape(pooled, out_shape), feature_maps[0].dtype)

    def compute_output_shape(self, input_shape):
        boxes_shape, feature_shape = input_shape[0], input_shape[2]
        return (boxes_shape[0], boxes_shape[1], *self.pool_shape, feature_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(pool_shape=list(self.pool_shape))
        return config
