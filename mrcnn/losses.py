"""The five Mask R-CNN training losses, with matterport's semantics.

Shape shorthand: B images, A anchors, R = RPN_TRAIN_ANCHORS_PER_IMAGE, T ROIs per image,
C classes (background included), (H, W) mask size.

Every loss is a float32 scalar that is exactly 0.0 when nothing contributes (no sampled anchor,
no positive ROI), never NaN, with finite gradients in that case too. Instead of gathering the
contributing rows (dynamic shapes, an empty mean is NaN), each loss computes every row, masks
the ones that do not count and divides with ``divide_no_nan``: same numbers, static shapes.
"""

from __future__ import annotations

import tensorflow as tf

from mrcnn.targets import NEUTRAL, POSITIVE

# Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log, as Keras' binary
# cross-entropy does.
EPSILON = 1e-7


def smooth_l1(y_true, y_pred):
    """Elementwise smooth L1 (Huber with delta 1) of two same-shape tensors; returns that shape."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def _masked_mean(values, weights):
    """sum(values * weights) / sum(weights), 0.0 when all weights are 0; NaN-free values only."""
    weights = tf.cast(weights, tf.float32)
    total = tf.reduce_sum(tf.where(weights > 0, values, 0.0) * weights)
    return tf.math.divide_no_nan(total, tf.reduce_sum(weights))


def _squeeze_match(rpn_match):
    """[B, A] int32 match states from [B, A] or [B, A, 1]."""
    rpn_match = tf.cast(rpn_match, tf.int32)
    if rpn_match.shape.rank == 3:
        rpn_match = tf.squeeze(rpn_match, -1)
    return rpn_match


def rpn_class_loss(rpn_match, rpn_class_logits):
    """RPN objectness cross-entropy over non-neutral anchors.

    rpn_match: [B, A] or [B, A, 1] int, POSITIVE / NEGATIVE / NEUTRAL.
    rpn_class_logits: [B, A, 2] (background, foreground) logits.
    Returns a float32 scalar: the mean over sampled anchors, 0.0 when none is sampled.
    """
    rpn_match = _squeeze_match(rpn_match)
    labels = tf.cast(tf.equal(rpn_match, POSITIVE), tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(rpn_class_logits, tf.float32))  # (B, A)
    return _masked_mean(loss, tf.not_equal(rpn_match, NEUTRAL))


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox, images_per_batch=None):
    """RPN box regression smooth L1 over positive anchors.

    target_bbox: [B, R, 4] deltas; row k belongs to the k-th positive anchor of that image
    (in anchor order), rows past the positives are zero padding (see build_rpn_targets).
    rpn_match: [B, A] or [B, A, 1] int. rpn_bbox: [B, A, 4] predicted deltas.
    images_per_batch: accepted for matterport compatibility; when given it must equal B.
    Returns a float32 scalar: the mean over the 4 deltas of every positive anchor, 0.0 if none.
    """
    rpn_match = _squeeze_match(rpn_match)
    if images_per_batch is not None and rpn_match.shape[0] is not None \
            and rpn_match.shape[0] != images_per_batch:
        raise ValueError(f"rpn_bbox_loss: rpn_match has batch {rpn_match.shape[0]} but "
                         f"images_per_batch is {images_per_batch}")
    target_bbox = tf.cast(target_bbox, tf.float32)
    is_positive = tf.equal(rpn_match, POSITIVE)
    # Row of target_bbox that belongs to each anchor: its rank among the image's positives.
    target_row = tf.cumsum(tf.cast(is_positive, tf.int32), axis=1) - 1  # (B, A)
    rows = tf.shape(target_bbox)[1]
    valid = is_positive & (target_row < rows)
    targets = tf.gather(target_bbox, tf.clip_by_value(target_row, 0, rows - 1), batch_dims=1)
    loss = smooth_l1(targets, rpn_bbox)  # (B, A, 4)
    weights = tf.broadcast_to(valid[..., None], tf.shape(loss))
    return _masked_mean(loss, weights)


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids):
    """Classifier head cross-entropy, counting only ROIs whose predicted class is active.

    target_class_ids: [B, T] int (0 for negatives and padding, as in matterport).
    pred_class_logits: [B, T, C]. active_class_ids: [B, C], 1 where the image's dataset has the
    class. A prediction of a class the image's dataset does not have is not penalised (matterport;
    here per image rather than image 0's row for the whole batch — the same when they agree).
    Returns a float32 scalar: the mean over counted ROIs, 0.0 when none counts.
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    labels = tf.cast(target_class_ids, tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)  # (B, T)
    pred_class_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_class_ids, batch_dims=1)
    return _masked_mean(loss, pred_active)


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Class-specific box smooth L1 over positive ROIs.

    target_bbox: [B, T, 4] deltas. target_class_ids: [B, T] int (> 0 positive).
    pred_bbox: [B, T, C, 4] deltas per class; only each ROI's target-class row is used.
    Returns a float32 scalar: the mean over the 4 deltas of every positive ROI, 0.0 if none.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    pred = tf.gather(tf.cast(pred_bbox, tf.float32), tf.maximum(class_ids, 0), batch_dims=2)
    loss = smooth_l1(target_bbox, pred)  # (B, T, 4)
    weights = tf.broadcast_to(tf.expand_dims(class_ids > 0, -1), tf.shape(loss))
    return _masked_mean(loss, weights)


def binary_crossentropy(y_true, y_pred):
    """Elementwise BCE of probabilities ``y_pred`` (clipped to [EPSILON, 1 - EPSILON])."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPSILON, 1.0 - EPSILON)
    return -(y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """Mask head binary cross-entropy on each positive ROI's target-class channel.

    target_masks: [B, T, H, W] in {0, 1}. target_class_ids: [B, T] int (> 0 positive).
    pred_masks: [B, T, H, W, C] sigmoid probabilities.
    Returns a float32 scalar: the mean over the pixels of every positive ROI, 0.0 if none.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    pred = tf.transpose(tf.cast(pred_masks, tf.float32), [0, 1, 4, 2, 3])  # (B, T, C, H, W)
    pred = tf.gather(pred, tf.maximum(class_ids, 0), batch_dims=2)  # (B, T, H, W)
    loss = binary_crossentropy(target_masks, pred)
    weights = tf.broadcast_to(class_ids[:, :, None, None] > 0, tf.shape(loss))
    return _masked_mean(loss, weights)
