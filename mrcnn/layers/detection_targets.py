"""DetectionTargetLayer: sample training ROIs from the proposals and build their head targets.

Shape shorthand: B images, P proposals, G ground-truth slots (zero padded), T =
``train_rois_per_image``, (mh, mw) GT mask size (mini-mask or image), (Mh, Mw) = ``mask_shape``.
All boxes are normalized ``[y1, x1, y2, x2]``. Semantics follow matterport's
``detection_targets_graph``: positives have IoU >= 0.5 with a (non-crowd) GT box, negatives have
IoU < 0.5 and do not touch a crowd box, at most ``int(T * ratio)`` positives are kept and then
``int(positives / ratio) - positives`` negatives. With no positive ROI there are no negatives
either (as in matterport), so an image without GT yields all-zero (padding) rows.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.boxes import box_refinement_tf, overlaps_tf
from mrcnn.precision import float32_layer_kwargs

POSITIVE_IOU = 0.5
CROWD_IOU = 0.001


def _non_zero_rows(boxes):
    """[N] bool: rows of an [N, 4] box tensor that are not zero padding."""
    return tf.reduce_any(tf.not_equal(boxes, 0.0), axis=1)


def _max_or(values, default):
    """Row-wise max of an [N, K] tensor, ``default`` where K == 0 (no GT / no crowd box)."""
    return tf.cond(tf.shape(values)[1] > 0,
                   lambda: tf.reduce_max(values, axis=1),
                   lambda: tf.fill([tf.shape(values)[0]], tf.constant(default, values.dtype)))


def _mask_crop_boxes(rois, roi_gt_boxes, use_mini_mask):
    """[N, 4] boxes to crop each ROI's GT mask with: the ROI itself, or in mini-mask coordinates."""
    if not use_mini_mask:
        return rois
    # A mini-mask covers exactly its GT box, so express the ROI relative to that box.
    y1, x1, y2, x2 = tf.split(rois, 4, axis=1)
    gt_y1, gt_x1, gt_y2, gt_x2 = tf.split(roi_gt_boxes, 4, axis=1)
    gt_h = gt_y2 - gt_y1
    gt_w = gt_x2 - gt_x1
    return tf.concat([(y1 - gt_y1) / gt_h, (x1 - gt_x1) / gt_w,
                      (y2 - gt_y1) / gt_h, (x2 - gt_x1) / gt_w], axis=1)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Subsample proposals into T training ROIs with class, box-delta and mask targets.

    Inputs ``[proposals (B, P, 4), gt_class_ids (B, G) int, gt_boxes (B, G, 4), gt_masks
    (B, mh, mw, G)]``: boxes normalized and zero padded; class ids > 0 objects, < 0 crowds,
    0 padding; masks float or bool (mini-masks when ``use_mini_mask``).
    Outputs ``[rois (B, T, 4), target_class_ids (B, T) int32, target_deltas (B, T, 4),
    target_masks (B, T, Mh, Mw) float32 in {0, 1}, roi_source_indices (B, T) int32]``: positive
    ROIs first, then negatives, then zero rows; ``roi_source_indices`` gives each ROI's row in
    ``proposals`` (-1 for padding). Deltas are divided by ``bbox_std_dev``.
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, **kwargs):
        # Overlaps, sampling and box targets in float32 under any policy.
        super().__init__(**float32_layer_kwargs(kwargs))
        if not 0.0 < float(roi_positive_ratio) <= 1.0:
            raise ValueError(f"DetectionTargetLayer: roi_positive_ratio must be in (0, 1], "
                             f"got {roi_positive_ratio}")
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]
        if len(self.bbox_std_dev) != 4:
            raise ValueError(f"DetectionTargetLayer: bbox_std_dev needs 4 values, got {bbox_std_dev}")
        self.mask_shape = [int(v) for v in mask_shape]
        self.use_mini_mask = bool(use_mini_mask)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        proposals = tf.cast(proposals, tf.float32)
        gt_class_ids = tf.cast(gt_class_ids, tf.int32)
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        gt_masks = tf.cast(gt_masks, tf.float32)
        t, (mh, mw) = self.train_rois_per_image, self.mask_shape
        signature = (tf.TensorSpec([t, 4], tf.float32), tf.TensorSpec([t], tf.int32),
                     tf.TensorSpec([t, 4], tf.float32), tf.TensorSpec([t, mh, mw], tf.float32),
                     tf.TensorSpec([t], tf.int32))
        outputs = tf.map_fn(lambda args: self._targets_one_image(*args),
                            (proposals, gt_class_ids, gt_boxes, gt_masks),
                            fn_output_signature=signature)
        return list(outputs)

    def _targets_one_image(self, proposals, gt_class_ids, gt_boxes, gt_masks):
        """Targets of one image: proposals [P, 4], ids [G], boxes [G, 4], masks [mh, mw, G]."""
        proposal_ix = tf.where(_non_zero_rows(proposals))[:, 0]  # rows of the real proposals
        proposals = tf.gather(proposals, proposal_ix)
        real_gt = _non_zero_rows(gt_boxes) & tf.not_equal(gt_class_ids, 0)
        crowd_boxes = tf.boolean_mask(gt_boxes, real_gt & (gt_class_ids < 0))
        object_ix = tf.where(real_gt & (gt_class_ids > 0))[:, 0]
        gt_class_ids = tf.gather(gt_class_ids, object_ix)
        gt_boxes = tf.gather(gt_boxes, object_ix)
        gt_masks = tf.gather(gt_masks, object_ix, axis=2)

        overlaps = overlaps_tf(proposals, gt_boxes)  # (P', G')
        best_iou = _max_or(overlaps, -1.0)
        near_crowd = _max_or(overlaps_tf(proposals, crowd_boxes), 0.0) >= CROWD_IOU
        positive_ix = tf.where(best_iou >= POSITIVE_IOU)[:, 0]
        negative_ix = tf.where((best_iou < POSITIVE_IOU) & ~near_crowd)[:, 0]

        max_positives = int(self.train_rois_per_image * self.roi_positive_ratio)
        positive_ix = tf.random.shuffle(positive_ix)[:max_positives]
        positive_count = tf.shape(positive_ix)[0]
        # Negatives fill the ROIs so that positives make up roi_positive_ratio of them; computed
        # as matterport does (float32 product with 1 / ratio) so the counts agree exactly.
        rois_for_ratio = (1.0 / self.roi_positive_ratio) * tf.cast(positive_count, tf.float32)
        negative_count = tf.cast(rois_for_ratio, tf.int32) - positive_count
        negative_ix = tf.random.shuffle(negative_ix)[:negative_count]

        positive_rois = tf.gather(proposals, positive_ix)
        # argmax rejects an empty axis even with no rows (no GT): add a column it never picks.
        positive_overlaps = tf.gather(overlaps, positive_ix)
        positive_overlaps = tf.pad(positive_overlaps, [(0, 0), (0, 1)], constant_values=-1.0)
        assignment = tf.argmax(positive_overlaps, axis=1, output_type=tf.int32)
        roi_gt_boxes = tf.gather(gt_boxes, assignment)
        roi_class_ids = tf.gather(gt_class_ids, assignment)
        deltas = box_refinement_tf(positive_rois, roi_gt_boxes)
        deltas = deltas / tf.constant(self.bbox_std_dev, tf.float32)
        masks = self._mask_targets(positive_rois, roi_gt_boxes, gt_masks, assignment)

        rois = tf.concat([positive_rois, tf.gather(proposals, negative_ix)], axis=0)
        source = tf.cast(tf.gather(proposal_ix, tf.concat([positive_ix, negative_ix], 0)), tf.int32)
        return self._pad(rois, roi_class_ids, deltas, masks, source)

    def _mask_targets(self, positive_rois, roi_gt_boxes, gt_masks, assignment):
        """[N, Mh, Mw] {0, 1} masks: each positive ROI's GT mask cropped to the ROI and resized."""
        masks = tf.expand_dims(tf.transpose(gt_masks, [2, 0, 1]), -1)  # (G', mh, mw, 1)
        masks = tf.gather(masks, assignment)
        boxes = _mask_crop_boxes(positive_rois, roi_gt_boxes, self.use_mini_mask)
        crops = tf.image.crop_and_resize(masks, boxes, tf.range(tf.shape(masks)[0]),
                                         self.mask_shape)
        # Bilinear resizing blurs the edge; round back to a binary target.
        return tf.round(tf.squeeze(crops, axis=3))

    def _pad(self, rois, class_ids, deltas, masks, source):
        """Zero-pad the per-ROI tensors to T rows (source indices pad with -1)."""
        t = self.train_rois_per_image
        rois, source = rois[:t], source[:t]
        pad = t - tf.shape(rois)[0]
        positive_pad = t - tf.shape(class_ids)[0]
        rois = tf.pad(rois, [(0, pad), (0, 0)])
        source = tf.pad(source, [(0, pad)], constant_values=-1)
        class_ids = tf.pad(class_ids, [(0, positive_pad)])
        deltas = tf.pad(deltas, [(0, positive_pad), (0, 0)])
        masks = tf.pad(masks, [(0, positive_pad), (0, 0), (0, 0)])
        t_shape = [t]
        return (tf.ensure_shape(rois, t_shape + [4]), tf.ensure_shape(class_ids, t_shape),
                tf.ensure_shape(deltas, t_shape + [4]),
                tf.ensure_shape(masks, t_shape + self.mask_shape),
                tf.ensure_shape(source, t_shape))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        t, (mh, mw) = self.train_rois_per_image, self.mask_shape
        return [(batch, t, 4), (batch, t), (batch, t, 4), (batch, t, mh, mw), (batch, t)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "train_rois_per_image": self.train_rois_per_image,
            "roi_positive_ratio": self.roi_positive_ratio,
            "bbox_std_dev": list(self.bbox_std_dev),
            "mask_shape": list(self.mask_shape),
            "use_mini_mask": self.use_mini_mask,
        })
        return config
