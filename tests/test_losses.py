"""The five losses against literal numpy ports of matterport's, plus the no-positive edge cases."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import losses
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE, build_rpn_targets

B, A, R, T, C, M = 2, 60, 16, 12, 5, 8  # images, anchors, rpn rows, rois, classes, mask side


# --- numpy references: gather the rows that count, then average, as matterport does ---------

def np_smooth_l1(y_true, y_pred):
    diff = np.abs(y_true - y_pred)
    return np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)


def np_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_rpn_class_loss(rpn_match, logits):
    b, a = np.nonzero(rpn_match != NEUTRAL)
    labels = (rpn_match[b, a] == POSITIVE).astype(int)
    ce = -np_log_softmax(logits[b, a])[np.arange(len(b)), labels]
    return ce.mean() if len(ce) else 0.0


def np_rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    preds, targets = [], []
    for b in range(len(rpn_match)):
        positive = np.flatnonzero(rpn_match[b] == POSITIVE)
        preds.append(rpn_bbox[b, positive])
        targets.append(target_bbox[b, :len(positive)])
    loss = np_smooth_l1(np.concatenate(targets), np.concatenate(preds))
    return loss.mean() if loss.size else 0.0


def np_mrcnn_class_loss(target_ids, logits, active):
    ce = -np.take_along_axis(np_log_softmax(logits), target_ids[..., None], -1)[..., 0]
    pred_active = np.take_along_axis(active, logits.argmax(-1), axis=1).astype(np.float64)
    return (ce * pred_active).sum() / pred_active.sum() if pred_active.sum() else 0.0


def np_mrcnn_bbox_loss(target_bbox, target_ids, pred_bbox):
    b, t = np.nonzero(target_ids > 0)
    loss = np_smooth_l1(target_bbox[b, t], pred_bbox[b, t, target_ids[b, t]])
    return loss.mean() if loss.size else 0.0


def np_mrcnn_mask_loss(target_masks, target_ids, pred_masks):
    b, t = np.nonzero(target_ids > 0)
    y_true = target_masks[b, t]
    y_pred = np.clip(pred_masks[b, t, :, :, target_ids[b, t]], 1e-7, 1 - 1e-7)
    loss = -(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))
    return loss.mean() if loss.size else 0.0


# --- random inputs ----------------------------------------------------------------------------

def random_rpn(rng, positives_per_image=(5, 3)):
    rpn_match = np.full([B, A], NEUTRAL, np.int32)
    for b, count in enumerate(positives_per_image):
        ix = rng.permutation(A)
        rpn_match[b, ix[:count]] = POSITIVE
        rpn_match[b, ix[count:count + 20]] = NEGATIVE
    target_bbox = np.zeros([B, R, 4], np.float32)
    for b, count in enumerate(positives_per_image):
        target_bbox[b, :count] = rng.normal(size=(count, 4))
    return rpn_match, target_bbox


def random_heads(rng, positives=(4, 2)):
    target_ids = np.zeros([B, T], np.int32)
    for b, count in enumerate(positives):
        target_ids[b, :count] = rng.integers(1, C, size=count)
    target_bbox = np.where(target_ids[..., None] > 0, rng.normal(size=(B, T, 4)), 0.0)
    target_masks = np.where(target_ids[..., None, None] > 0,
                            rng.uniform(size=(B, T, M, M)) > 0.5, 0).astype(np.float32)
    return target_ids, target_bbox.astype(np.float32), target_masks


def value_and_grad(loss_fn, variable, *args):
    """Loss value and gradient w.r.t. ``variable`` (passed where the prediction goes)."""
    with tf.GradientTape() as tape:
        loss = loss_fn(variable, *args)
    return loss, tape.gradient(loss, variable)


# --- tests -------------------------------------------------------------------------------------

def test_smooth_l1_values():
    out = losses.smooth_l1(np.array([0.0, 0.0, 1.0, -3.0]), np.array([0.5, 2.0, 1.0, -1.0]))
    np.testing.assert_allclose(out.numpy(), [0.125, 1.5, 0.0, 1.5])
    assert out.dtype == tf.float32


@pytest.mark.parametrize("seed", [0, 1])
def test_rpn_losses_match_reference(seed):
    rng = np.random.default_rng(seed)
    rpn_match, target_bbox = random_rpn(rng)
    logits = rng.normal(size=(B, A, 2)).astype(np.float32)
    pred_bbox = (2 * rng.normal(size=(B, A, 4))).astype(np.float32)
    class_loss = losses.rpn_class_loss(rpn_match[..., None], logits)  # matterport's [B, A, 1]
    bbox_loss = losses.rpn_bbox_loss(target_bbox, rpn_match, pred_bbox, images_per_batch=B)
    assert class_loss.shape == () and class_loss.dtype == tf.float32
    np.testing.assert_allclose(class_loss.numpy(), np_rpn_class_loss(rpn_match, logits), rtol=1e-5)
    np.testing.assert_allclose(bbox_loss.numpy(), np_rpn_bbox_loss(target_bbox, rpn_match, pred_bbox),
                               rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_head_losses_match_reference(seed):
    rng = np.random.default_rng(seed)
    target_ids, target_bbox, target_masks = random_heads(rng)
    logits = rng.normal(size=(B, T, C)).astype(np.float32)
    active = np.ones([B, C], np.int32)
    active[:, 3] = 0  # a class the dataset does not have
    pred_bbox = rng.normal(size=(B, T, C, 4)).astype(np.float32)
    pred_masks = rng.uniform(size=(B, T, M, M, C)).astype(np.float32)
    pred_masks[0, 0, 0, 0, :] = 0.0  # clipped, not log(0)
    np.testing.assert_allclose(losses.mrcnn_class_loss(target_ids, logits, active).numpy(),
                               np_mrcnn_class_loss(target_ids, logits, active), rtol=1e-5)
    np.testing.assert_allclose(losses.mrcnn_bbox_loss(target_bbox, target_ids, pred_bbox).numpy(),
                               np_mrcnn_bbox_loss(target_bbox, target_ids, pred_bbox), rtol=1e-5)
    np.testing.assert_allclose(losses.mrcnn_mask_loss(target_masks, target_ids, pred_masks).numpy(),
                               np_mrcnn_mask_loss(target_masks, target_ids, pred_masks), rtol=1e-4)


def test_class_loss_uses_each_images_active_classes():
    rng = np.random.default_rng(2)
    target_ids, _, _ = random_heads(rng)
    logits = rng.normal(size=(B, T, C)).astype(np.float32)
    active = np.ones([B, C], np.int32)
    active[1, 1:3] = 0
    np.testing.assert_allclose(losses.mrcnn_class_loss(target_ids, logits, active).numpy(),
                               np_mrcnn_class_loss(target_ids, logits, active), rtol=1e-5)
    none_active = np.zeros([B, C], np.int32)
    assert losses.mrcnn_class_loss(target_ids, logits, none_active).numpy() == 0.0


def test_rpn_losses_with_no_sampled_or_positive_anchors_are_zero_with_finite_grads():
    rng = np.random.default_rng(3)
    neutral = np.full([B, A], NEUTRAL, np.int32)
    only_negative = np.where(rng.uniform(size=(B, A)) > 0.5, NEGATIVE, NEUTRAL).astype(np.int32)
    logits = tf.Variable(rng.normal(size=(B, A, 2)).astype(np.float32))
    pred_bbox = tf.Variable(rng.normal(size=(B, A, 4)).astype(np.float32))
    zeros = np.zeros([B, R, 4], np.float32)

    loss, grad = value_and_grad(lambda v: losses.rpn_class_loss(neutral, v), logits)
    assert loss.numpy() == 0.0 and np.all(np.isfinite(grad.numpy()))
    for match in (neutral, only_negative):
        loss, grad = value_and_grad(lambda v, m=match: losses.rpn_bbox_loss(zeros, m, v), pred_bbox)
        assert loss.numpy() == 0.0
        np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_head_losses_with_no_positive_roi_are_zero_with_finite_grads():
    rng = np.random.default_rng(4)
    target_ids = np.zeros([B, T], np.int32)
    pred_bbox = tf.Variable(rng.normal(size=(B, T, C, 4)).astype(np.float32))
    pred_masks = tf.Variable(rng.uniform(size=(B, T, M, M, C)).astype(np.float32))
    loss, grad = value_and_grad(
        lambda v: losses.mrcnn_bbox_loss(np.zeros([B, T, 4], np.float32), target_ids, v), pred_bbox)
    assert loss.numpy() == 0.0
    np.testing.assert_array_equal(grad.numpy(), 0.0)
    loss, grad = value_and_grad(
        lambda v: losses.mrcnn_mask_loss(np.zeros([B, T, M, M], np.float32), target_ids, v),
        pred_masks)
    assert loss.numpy() == 0.0
    np.testing.assert_array_equal(grad.numpy(), 0.0)
    logits = tf.Variable(rng.normal(size=(B, T, C)).astype(np.float32))
    loss, grad = value_and_grad(
        lambda v: losses.mrcnn_class_loss(target_ids, v, np.zeros([B, C], np.int32)), logits)
    assert loss.numpy() == 0.0 and np.all(np.isfinite(grad.numpy()))


def test_losses_run_in_a_compiled_function():
    rng = np.random.default_rng(5)
    rpn_match, target_bbox = random_rpn(rng)
    logits = rng.normal(size=(B, A, 2)).astype(np.float32)
    pred_bbox = rng.normal(size=(B, A, 4)).astype(np.float32)
    compiled = tf.function(lambda *a: (losses.rpn_class_loss(a[0], a[1]),
                                       losses.rpn_bbox_loss(a[2], a[0], a[3])))
    class_loss, bbox_loss = compiled(rpn_match, logits, target_bbox, pred_bbox)
    np.testing.assert_allclose(class_loss.numpy(), np_rpn_class_loss(rpn_match, logits), rtol=1e-5)
    np.testing.assert_allclose(bbox_loss.numpy(), np_rpn_bbox_loss(target_bbox, rpn_match, pred_bbox),
                               rtol=1e-5)


def test_rpn_bbox_loss_rejects_wrong_images_per_batch():
    rpn_match, target_bbox = random_rpn(np.random.default_rng(6))
    with pytest.raises(ValueError, match="images_per_batch is 3"):
        losses.rpn_bbox_loss(target_bbox, rpn_match, np.zeros([B, A, 4], np.float32), 3)


def test_whole_batch_rpn_targets_with_one_hundred_gt(tiny_config):
    rng = np.random.default_rng(7)
    centers = np.arange(4, 128, 8)
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    anchors = np.concatenate([np.stack([cy - s, cx - s, cy + s, cx + s], -1).reshape(-1, 4)
                              for s in (8, 16)]).astype(np.float32)
    matches, targets = [], []
    for _ in range(B):
        size = rng.uniform(8, 40, size=(100, 2))
        corner = rng.uniform(0, 128 - size)
        gt = np.concatenate([corner, corner + size], 1)
        match, bbox = build_rpn_targets(anchors, np.ones(100, np.int32), gt, tiny_config, rng=rng)
        matches.append(match)
        targets.append(bbox)
    rpn_match, target_bbox = np.stack(matches), np.stack(targets)
    logits = rng.normal(size=(B, len(anchors), 2)).astype(np.float32)
    pred_bbox = rng.normal(size=(B, len(anchors), 4)).astype(np.float32)
    np.testing.assert_allclose(losses.rpn_class_loss(rpn_match, logits).numpy(),
                               np_rpn_class_loss(rpn_match, logits), rtol=1e-5)
    np.testing.assert_allclose(losses.rpn_bbox_loss(target_bbox, rpn_match, pred_bbox).numpy(),
                               np_rpn_bbox_loss(target_bbox, rpn_match, pred_bbox), rtol=1e-5)
