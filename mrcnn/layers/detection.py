"""DetectionLayer: per-ROI class scores and deltas -> final detections (matterport semantics).

Shape shorthand: B images, N ROIs per image, C classes (background = 0), D = max detections.
Boxes are normalized ``[y1, x1, y2, x2]``.

Per image: each ROI takes its best class and that class's score and box deltas; the refined
box is clipped to the image window (the unpadded part of the molded image); background ROIs and
ROIs below the confidence threshold drop out; NMS runs per class; the D best survivors by score
remain. ``refine_detections_np`` is the numpy reference, written as matterport's algorithm
(a loop of per-class NMS); the layer computes the same result in one NMS call (below).
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from mrcnn import boxes as box_math
from mrcnn.layers.roi_align import _image_shape_and_window
from mrcnn.precision import float32_layer_kwargs

# detection_roi_indices value of a padding row.
PADDING_INDEX = -1
# Fields of one detection row.
DETECTION_FIELDS = ("y1", "x1", "y2", "x2", "class_id", "score")


class RefinedDetections(NamedTuple):
    """Result of ``refine_detections_np`` for one image (D = max detections, N ROIs)."""

    detections: np.ndarray  # (D, 6) float32 (y1, x1, y2, x2, class_id, score), zero rows last
    roi_indices: np.ndarray  # (D,) int32 ROI of each detection, -1 for padding
    count: int  # number of real detections
    class_ids: np.ndarray  # (N,) int32 best class of every ROI
    class_scores: np.ndarray  # (N,) float32 probability of that class
    refined_boxes: np.ndarray  # (N, 4) float32 class-specific refined boxes, clipped to window
    pre_nms_indices: np.ndarray  # (M,) int32 ROIs that are foreground and confident enough


def refine_detections_np(rois, probs, deltas, window, *, bbox_std_dev,
                         detection_min_confidence, detection_nms_threshold,
                         detection_max_instances) -> RefinedDetections:
    """Numpy reference of one image's detections (matterport's refine_detections_graph).

    ``rois (N, 4)`` normalized, ``probs (N, C)``, ``deltas (N, C, 4)`` (not yet multiplied by
    ``bbox_std_dev``), ``window (4,)`` normalized. Ties in score go to the lower ROI index.
    """
    rois = np.asarray(rois, np.float32)
    probs = np.asarray(probs, np.float32)
    deltas = np.asarray(deltas, np.float32)
    rows = np.arange(len(rois))
    class_ids = np.argmax(probs, axis=1).astype(np.int32)
    class_scores = probs[rows, class_ids]
    class_deltas = deltas[rows, class_ids] * np.asarray(bbox_std_dev, np.float32)
    refined = box_math.clip_boxes(box_math.apply_box_deltas(rois, class_deltas), window)

    candidates = np.flatnonzero((class_ids > 0) & (class_scores >= detection_min_confidence))
    kept = []
    for class_id in np.unique(class_ids[candidates]):
        members = candidates[class_ids[candidates] == class_id]
        survivors = box_math.non_max_suppression(refined[members], class_scores[members],
                                                 detection_nms_threshold,
                                                 max_output=detection_max_instances)
        kept.extend(members[survivors])
    kept = np.sort(np.asarray(kept, dtype=np.int64))
    kept = kept[np.argsort(-class_scores[kept], kind="stable")][:detection_max_instances]

    count = len(kept)
    detections = np.zeros((detection_max_instances, 6), np.float32)
    detections[:count, :4] = refined[kept]
    detections[:count, 4] = class_ids[kept]
    detections[:count, 5] = class_scores[kept]
    roi_indices = np.full(detection_max_instances, PADDING_INDEX, np.int32)
    roi_indices[:count] = kept
    return RefinedDetections(detections, roi_indices, count, class_ids, class_scores,
                             refined.astype(np.float32), candidates.astype(np.int32))


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Final detections from the classifier head.

    Inputs ``[rois (B, N, 4) normalized, mrcnn_class (B, N, C), mrcnn_bbox (B, N, C, 4),
    image_meta (B, META)]``. Outputs, a list:

    * ``detections (B, D, 6)`` float32 rows (y1, x1, y2, x2, class_id, score), normalized,
      sorted by descending score, zero rows after the real ones;
    * ``detection_roi_indices (B, D)`` int32 ROI each detection came from, -1 for padding.
    """

    def __init__(self, detection_max_instances, detection_min_confidence,
                 detection_nms_threshold, bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        # Box refinement, clipping and NMS in float32 under any policy.
        super().__init__(**float32_layer_kwargs(kwargs))
        self.detection_max_instances = int(detection_max_instances)
        self.detection_min_confidence = float(detection_min_confidence)
        self.detection_nms_threshold = float(detection_nms_threshold)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        if len(self.bbox_std_dev) != 4:
            raise ValueError(f"DetectionLayer {self.name}: bbox_std_dev needs 4 values, "
                             f"got {self.bbox_std_dev}")

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        image_shape, window = _image_shape_and_window(image_meta)
        class_ids = tf.argmax(probs, axis=2, output_type=tf.int32)  # (B, N)
        class_scores = tf.gather(probs, class_ids, batch_dims=2)  # (B, N)
        class_deltas = tf.gather(deltas, class_ids, batch_dims=2)  # (B, N, 4)
        class_deltas = class_deltas * tf.constant(self.bbox_std_dev, class_deltas.dtype)
        # (B, N, 4) -> (B*N, 4) for the row-wise box math, and back.
        refined = box_math.apply_box_deltas_tf(tf.reshape(rois, [-1, 4]),
                                               tf.reshape(class_deltas, [-1, 4]))
        refined = tf.reshape(refined, tf.shape(rois))
        max_count = self.detection_max_instances
        return list(tf.map_fn(
            self._detect_one_image, (refined, class_ids, class_scores, image_shape, window),
            fn_output_signature=(tf.TensorSpec([max_count, 6], tf.float32),
                                 tf.TensorSpec([max_count], tf.int32))))

    def _detect_one_image(self, per_image):
        """Clip, filter, per-class NMS and pad for one image; see the class docstring."""
        refined, class_ids, class_scores, image_shape, window = per_image
        window = box_math.norm_boxes_tf(window, image_shape[:2])
        refined = box_math.clip_boxes_tf(refined, window)
        candidates = tf.where((class_ids > 0)
                              & (class_scores >= self.detection_min_confidence))[:, 0]
        candidate_boxes = tf.gather(refined, candidates)
        candidate_ids = tf.gather(class_ids, candidates)
        # Per-class NMS as one NMS: boxes of different classes get overlap 0 and so never
        # suppress each other. Greedy NMS in global score order keeps exactly the union of the
        # per-class results, and stopping after D keeps the D best of them, as matterport.
        same_class = tf.equal(candidate_ids[:, None], candidate_ids[None, :])
        overlaps = tf.where(same_class, box_math.overlaps_tf(candidate_boxes, candidate_boxes),
                            0.0)
        keep = tf.image.non_max_suppression_overlaps(
            overlaps, tf.gather(class_scores, candidates), self.detection_max_instances,
            overlap_threshold=self.detection_nms_threshold)
        keep = tf.cast(tf.gather(candidates, keep), tf.int32)  # ROI indices, by score

        detections = tf.concat([tf.gather(refined, keep),
                                tf.cast(tf.gather(class_ids, keep), tf.float32)[:, None],
                                tf.gather(class_scores, keep)[:, None]], axis=1)
        padding = self.detection_max_instances - tf.shape(keep)[0]
        detections = tf.pad(detections, [[0, padding], [0, 0]])
        keep = tf.pad(keep, [[0, padding]], constant_values=PADDING_INDEX)
        return detections, keep

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        return [(batch, self.detection_max_instances, 6), (batch, self.detection_max_instances)]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([tuple(x.shape) for x in inputs])
        return [keras.KerasTensor(shapes[0], dtype="float32"),
                keras.KerasTensor(shapes[1], dtype="int32")]

    def get_config(self):
        config = super().get_config()
        config.update(detection_max_instances=self.detection_max_instances,
                      detection_min_confidence=self.detection_min_confidence,
                      detection_nms_threshold=self.detection_nms_threshold,
                      bbox_std_dev=self.bbox_std_dev)
        return config
