"""DetectionTargetLayer on hand-built proposals and GT, checked against numpy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.boxes import box_refinement, compute_overlaps
from mrcnn.layers.detection_targets import DetectionTargetLayer

STD = np.array([0.1, 0.1, 0.2, 0.2], dtype=np.float32)
ROIS, RATIO = 32, 0.33
MAX_POSITIVES = int(ROIS * RATIO)  # 10


def make_layer(use_mini_mask=True, rois=ROIS):
    return DetectionTargetLayer(rois, RATIO, STD, [28, 28], use_mini_mask)


def crop_and_resize_reference(image, box, size):
    """numpy tf.image.crop_and_resize of one [h, w] image by a normalized box (bilinear)."""
    h, w = image.shape
    y1, x1, y2, x2 = box
    ys = y1 * (h - 1) + np.arange(size[0]) * (y2 - y1) * (h - 1) / (size[0] - 1)
    xs = x1 * (w - 1) + np.arange(size[1]) * (x2 - x1) * (w - 1) / (size[1] - 1)
    out = np.zeros(size, dtype=np.float64)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                continue  # extrapolation value 0
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1_, x1_ = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1_] * fx
            bottom = image[y1_, x0] * (1 - fx) + image[y1_, x1_] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def jitter(rng, box, count, scale):
    """[count, 4] boxes: ``box`` with each corner moved by up to ``scale`` (normalized)."""
    boxes = box[None] + rng.uniform(-scale, scale, size=(count, 4))
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:] - 0.02), boxes[:, 2:]], 1)
    return np.clip(boxes, 0.0, 1.0).astype(np.float32)


def disk_mask(size, fill=0.8):
    """[size, size] float mask of a centred disk."""
    yy, xx = np.mgrid[:size, :size]
    radius = fill * size / 2
    return ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= radius ** 2).astype(np.float32)


def run(layer, proposals, class_ids, boxes, masks):
    return [o.numpy() for o in layer([proposals[None], class_ids[None], boxes[None], masks[None]])]


def test_proposal_equal_to_gt_box_gets_exact_targets():
    gt_box = np.array([0.2, 0.3, 0.6, 0.7], np.float32)
    mini = disk_mask(28)
    proposals = np.zeros([8, 4], np.float32)
    proposals[2] = gt_box
    class_ids = np.array([3, 0, 0], np.int32)
    boxes = np.zeros([3, 4], np.float32)
    boxes[0] = gt_box
    masks = np.zeros([28, 28, 3], np.float32)
    masks[..., 0] = mini
    rois, ids, deltas, mask_targets, source = run(make_layer(), proposals, class_ids, boxes, masks)
    np.testing.assert_allclose(rois[0, 0], gt_box)
    assert ids[0, 0] == 3 and source[0, 0] == 2
    np.testing.assert_allclose(deltas[0, 0], 0.0, atol=1e-6)
    # A 28x28 mini-mask cropped by its own box to 28x28 is itself.
    np.testing.assert_array_equal(mask_targets[0, 0], mini)
    # One positive allows int(1 / 0.33) - 1 = 2 negatives, but there are none: the rest is padding.
    np.testing.assert_array_equal(rois[0, 1:], 0.0)
    np.testing.assert_array_equal(source[0, 1:], -1)


def test_full_image_mask_target_is_the_resized_crop():
    gt_box = np.array([0.25, 0.125, 0.75, 0.625], np.float32)
    full = np.zeros([64, 64], np.float32)
    full[16:48, 8:40] = disk_mask(32)
    proposals = np.array([gt_box], np.float32)
    rois, ids, deltas, mask_targets, source = run(
        make_layer(use_mini_mask=False), proposals, np.array([1], np.int32), gt_box[None],
        full[..., None])
    expected = crop_and_resize_reference(full, gt_box, (28, 28))
    decided = np.abs(expected - 0.5) > 1e-3  # exact halves may round either way
    np.testing.assert_array_equal(mask_targets[0, 0][decided], np.round(expected)[decided])
    assert ids[0, 0] == 1 and source[0, 0] == 0
    np.testing.assert_allclose(deltas[0, 0], 0.0, atol=1e-6)


def check_against_reference(proposals, class_ids, boxes, masks, outputs, use_mini_mask=True):
    """Assert every output ROI of one image obeys matterport's rules, row by row."""
    rois, ids, deltas, mask_targets, source = outputs
    objects = class_ids > 0
    real = np.flatnonzero(source >= 0)
    assert np.array_equal(real, np.arange(len(real))), "real ROIs come before padding"
    np.testing.assert_allclose(rois[real], proposals[source[real]])
    np.testing.assert_array_equal(rois[len(real):], 0.0)
    overlaps = compute_overlaps(rois[real], boxes[objects]) if objects.any() else \
        np.zeros([len(real), 0])
    best_iou = overlaps.max(axis=1) if objects.any() else np.zeros(len(real))
    positive = ids[real] > 0
    assert np.all(best_iou[positive] >= 0.5 - 1e-6) and np.all(best_iou[~positive] < 0.5 + 1e-6)
    assert np.all(positive[:positive.sum()]), "positives come first"
    count = int(positive.sum())
    assert count <= MAX_POSITIVES
    assert len(real) - count <= int(count * (1 / RATIO)) - count
    if count:
        assigned = overlaps[:count].argmax(axis=1)
        np.testing.assert_array_equal(ids[:count], class_ids[objects][assigned])
        expected = box_refinement(rois[:count], boxes[objects][assigned]) / STD
        np.testing.assert_allclose(deltas[:count], expected, rtol=1e-4, atol=1e-4)
        if use_mini_mask:
            for k in range(count):
                gt = boxes[objects][assigned[k]]
                h, w = gt[2] - gt[0], gt[3] - gt[1]
                crop = (rois[k] - np.array([gt[0], gt[1], gt[0], gt[1]])) / np.array([h, w, h, w])
                ref = crop_and_resize_reference(masks[..., objects][..., assigned[k]], crop, (28, 28))
                decided = np.abs(ref - 0.5) > 1e-3
                np.testing.assert_array_equal(mask_targets[k][decided], np.round(ref)[decided])
    np.testing.assert_array_equal(ids[count:], 0)
    np.testing.assert_array_equal(deltas[count:], 0.0)
    np.testing.assert_array_equal(mask_targets[count:], 0.0)
    return count


def test_positive_share_and_counts_with_many_candidates():
    rng = np.random.default_rng(0)
    gt = np.array([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.95]], np.float32)
    proposals = np.concatenate([jitter(rng, gt[0], 40, 0.03), jitter(rng, gt[1], 40, 0.03),
                                jitter(rng, np.array([0.3, 0.3, 0.7, 0.7]), 60, 0.3)])
    masks = np.stack([disk_mask(28), disk_mask(28, 0.5)], axis=-1)
    ids = np.array([1, 2], np.int32)
    outputs = [o[0] for o in run(make_layer(), proposals, ids, gt, masks)]
    count = check_against_reference(proposals, ids, gt, masks, outputs)
    assert count == MAX_POSITIVES
    assert np.sum(outputs[4] >= 0) == int(count * (1 / RATIO))  # 10 positives, 20 negatives
    assert count / ROIS <= RATIO  # positives are at most 33% of the ROI rows


def test_zero_gt_gives_no_positives_and_finite_zeros():
    proposals = jitter(np.random.default_rng(1), np.array([0.3, 0.3, 0.6, 0.6]), 20, 0.2)
    outputs = run(make_layer(), proposals, np.zeros([4], np.int32), np.zeros([4, 4], np.float32),
                  np.zeros([28, 28, 4], np.float32))
    for o in outputs:
        assert np.all(np.isfinite(o))
    rois, ids, deltas, masks, source = outputs
    assert not np.any(ids > 0)
    # matterport: negatives are sampled in proportion to positives, so none here.
    np.testing.assert_array_equal(rois, 0.0)
    np.testing.assert_array_equal(source, -1)


def test_crowd_proposals_are_not_negatives():
    rng = np.random.default_rng(2)
    gt = np.array([[0.1, 0.1, 0.4, 0.4], [0.55, 0.55, 0.95, 0.95]], np.float32)
    ids = np.array([1, -1], np.int32)  # the second box is a crowd
    near_crowd = jitter(rng, gt[1], 30, 0.15)
    proposals = np.concatenate([jitter(rng, gt[0], 20, 0.02), near_crowd,
                                np.array([[0.0, 0.6, 0.2, 0.8], [0.6, 0.0, 0.8, 0.2]], np.float32)])
    masks = np.stack([disk_mask(28), disk_mask(28)], -1)
    rois, out_ids, _, _, source = [o[0] for o in run(make_layer(), proposals, ids, gt, masks)]
    crowd_iou = compute_overlaps(proposals, gt[1:])[:, 0]
    negatives = source[(source >= 0) & (out_ids == 0)]
    assert len(negatives) == 2  # only the two far proposals qualify
    assert np.all(crowd_iou[negatives] < 0.001)
    assert not np.any(out_ids < 0), "a crowd is never a positive's class"


def test_zero_padded_proposals_are_skipped():
    rng = np.random.default_rng(3)
    gt = np.array([[0.2, 0.2, 0.6, 0.6]], np.float32)
    proposals = np.zeros([30, 4], np.float32)
    proposals[::3] = np.concatenate([jitter(rng, gt[0], 5, 0.02),
                                     np.array([[0.7, 0.7, 0.9, 0.9]] * 5, np.float32)])
    outputs = [o[0] for o in run(make_layer(), proposals, np.array([2], np.int32), gt,
                                 disk_mask(28)[..., None])]
    source = outputs[4]
    assert np.all(source[source >= 0] % 3 == 0)
    check_against_reference(proposals, np.array([2], np.int32), gt, disk_mask(28)[..., None],
                            outputs)


def test_batch_with_one_hundred_gt():
    rng = np.random.default_rng(4)
    batch, gt_count, proposal_count = 2, 100, 300
    size = rng.uniform(0.05, 0.3, size=(batch, gt_count, 2))
    corner = rng.uniform(0, 1 - size)
    boxes = np.concatenate([corner, corner + size], -1).astype(np.float32)
    class_ids = rng.integers(1, 4, size=(batch, gt_count)).astype(np.int32)
    class_ids[1, 90:] = 0  # padding slots in the second image
    boxes[1, 90:] = 0.0
    class_ids[0, :5] = -1  # crowds in the first
    masks = (rng.uniform(size=(batch, 28, 28, gt_count)) > 0.5).astype(np.float32)
    proposals = np.stack([
        np.concatenate([boxes[b, rng.integers(0, 90, proposal_count // 2)]
                        + rng.uniform(-0.02, 0.02, (proposal_count // 2, 4)),
                        jitter(rng, np.array([0.3, 0.3, 0.7, 0.7]), proposal_count // 2, 0.3)])
        for b in range(batch)]).astype(np.float32)
    proposals = np.clip(proposals, 0, 1)
    outputs = [o.numpy() for o in make_layer()([proposals, class_ids, boxes, masks])]
    assert [o.shape for o in outputs] == [(2, ROIS, 4), (2, ROIS), (2, ROIS, 4), (2, ROIS, 28, 28),
                                          (2, ROIS)]
    for b in range(batch):
        count = check_against_reference(proposals[b], class_ids[b], boxes[b], masks[b],
                                        [o[b] for o in outputs])
        assert count == MAX_POSITIVES


def test_functional_model_shapes_and_config_round_trip():
    layer = make_layer(use_mini_mask=False)
    inputs = [keras.Input((20, 4)), keras.Input((5,), dtype="int32"), keras.Input((5, 4)),
              keras.Input((32, 32, 5))]
    outputs = layer(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, ROIS, 4), (None, ROIS), (None, ROIS, 4),
                                                 (None, ROIS, 28, 28), (None, ROIS)]
    assert layer.compute_output_shape([(3, 20, 4), (3, 5), (3, 5, 4), (3, 32, 32, 5)])[3] == \
        (3, ROIS, 28, 28)
    model = keras.Model(inputs, outputs)
    gt = np.array([[[0.2, 0.2, 0.6, 0.6]] + [[0, 0, 0, 0]] * 4], np.float32)
    proposals = np.zeros([1, 20, 4], np.float32)
    proposals[0, 0] = gt[0, 0]
    result = model.predict([proposals, np.array([[1, 0, 0, 0, 0]], np.int32), gt,
                            np.ones([1, 32, 32, 5], np.float32)], verbose=0)
    assert result[1][0, 0] == 1 and result[4][0, 0] == 0
    clone = DetectionTargetLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, DetectionTargetLayer) and restored.use_mini_mask is False


def test_bool_masks_and_graph_mode():
    gt = np.array([[0.2, 0.2, 0.6, 0.6]], np.float32)
    layer = make_layer()

    @tf.function
    def targets(*args):
        return layer(list(args))

    outputs = targets(gt[None], np.array([[1]], np.int32), gt[None],
                      np.ones([1, 28, 28, 1], bool))
    np.testing.assert_array_equal(outputs[3][0, 0].numpy(), 1.0)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="roi_positive_ratio"):
        DetectionTargetLayer(10, 0.0, STD, [28, 28], True)
    with pytest.raises(ValueError, match="bbox_std_dev"):
        DetectionTargetLayer(10, 0.33, [0.1, 0.1], [28, 28], True)
