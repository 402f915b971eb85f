"""Run the mask head on real detections only, then pad its output back to DETECTION_MAX_INSTANCES.

DetectionLayer returns D = DETECTION_MAX_INSTANCES rows per image, the real detections first
(sorted by score) and zero rows after them. matterport runs the mask head on all D rows, padding
included; with D = 100 and a handful of real detections that is most of the mask head's time
(four 3x3 convolutions per ROI) spent on empty boxes. ``TrimDetections`` keeps the first
n = (most real detections in any image of the batch) rows, the mask head runs on those, and
``PadDetections`` restores the D rows with zeros, so the graph's outputs keep their shapes.
At least one row is kept: TensorFlow's CPU convolution mis-shapes an empty batch (its output
takes the input's channel count), so an image without detections runs the head on one zero box
whose output is then zeroed like any padding row.

Shape shorthand: B images, D detection rows, n <= D rows kept (dynamic).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.precision import float32_layer_kwargs

# Column of the class id in a detection row (y1, x1, y2, x2, class_id, score); 0 = padding.
CLASS_ID_COLUMN = 4


def is_real(detections):
    """(B, D) bool: which rows of ``detections (B, D, 6)`` are detections, not padding."""
    return detections[..., CLASS_ID_COLUMN] > 0


def rows_to_keep(detections):
    """() int32: the most real rows in any image of ``detections (B, D, 6)``, at least 1."""
    counts = tf.reduce_sum(tf.cast(is_real(detections), tf.int32), axis=1)
    return tf.maximum(tf.reduce_max(counts), 1)


@keras.saving.register_keras_serializable(package="mrcnn")
class TrimDetections(keras.layers.Layer):
    """``detections (B, D, 6)`` -> boxes ``(B, n, 4)`` normalized ``[y1, x1, y2, x2]`` of the
    first n rows, n = max(1, the most real detections in any image); rows of an image with fewer
    are its zero padding. Relies on DetectionLayer putting real rows before padding."""

    def __init__(self, **kwargs):
        super().__init__(**float32_layer_kwargs(kwargs))  # boxes stay float32

    def call(self, detections):
        return detections[:, :rows_to_keep(detections), :CLASS_ID_COLUMN]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, CLASS_ID_COLUMN)


@keras.saving.register_keras_serializable(package="mrcnn")
class PadDetections(keras.layers.Layer):
    """``[values (B, n, ...), detections (B, D, 6)]`` -> ``(B, D, ...)``: ``values`` on the real
    detection rows, zeros on every padding row (those within n included)."""

    def __init__(self, **kwargs):
        # float32 under any policy: the graph's outputs (the masks) are float32 in every precision.
        super().__init__(**float32_layer_kwargs(kwargs))

    def call(self, inputs):
        values, detections = inputs
        kept = tf.shape(values)[1]
        row_rank = tf.rank(values) - 2  # dimensions of one row's values
        # (B, n) -> (B, n, 1, ...) so it broadcasts over each row's values.
        real = is_real(detections[:, :kept])
        real = tf.reshape(real, tf.concat([tf.shape(real), tf.ones([row_rank], tf.int32)], 0))
        values = tf.where(real, values, tf.zeros([], values.dtype))
        padding = tf.shape(detections)[1] - kept
        paddings = tf.concat([[[0, 0], [0, padding]], tf.zeros([row_rank, 2], tf.int32)], axis=0)
        return tf.pad(values, paddings)

    def compute_output_shape(self, input_shape):
        values_shape, detections_shape = input_shape
        return (values_shape[0], detections_shape[1], *values_shape[2:])

    def compute_output_spec(self, inputs):
        values, detections = inputs
        shape = self.compute_output_shape([tuple(values.shape), tuple(detections.shape)])
        return keras.KerasTensor(shape, dtype=values.dtype)
