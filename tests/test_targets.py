"""build_rpn_targets against hand-computed matches and deltas, crowds, empty and crowded images."""

import numpy as np
import pytest

from mrcnn.boxes import box_refinement, compute_overlaps
from mrcnn.targets import (NEGATIVE, NEUTRAL, POSITIVE, build_rpn_targets,
                           rpn_match_summary)

STD = np.array([0.1, 0.1, 0.2, 0.2], dtype=np.float32)


def grid_anchors(image_size=128, stride=8, sizes=(16, 32)):
    """[A, 4] square pixel anchors centred on a stride grid, one per size per cell."""
    centers = np.arange(stride / 2, image_size, stride)
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    boxes = [np.stack([cy - s / 2, cx - s / 2, cy + s / 2, cx + s / 2], -1).reshape(-1, 4)
             for s in sizes]
    return np.concatenate(boxes).astype(np.float32)


def random_gt(rng, count, image_size=128):
    """[count, 4] random pixel boxes 8..48 px on a side inside the image."""
    size = rng.uniform(8, 48, size=(count, 2))
    corner = rng.uniform(0, image_size - size)
    return np.concatenate([corner, corner + size], axis=1).astype(np.float32)


def test_hand_computed_matches_and_deltas(tiny_config):
    anchors = np.array([[0, 0, 10, 10],     # equal to the GT box: IoU 1
                        [0, 0, 10, 12],     # IoU 100/120 = 0.83: positive
                        [0, 5, 10, 15],     # IoU 50/150 = 0.33: neutral
                        [20, 20, 30, 30]],  # IoU 0: negative
                       dtype=np.float32)
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.array([1]), np.array([[0, 0, 10, 10]]),
                                            tiny_config, rng=np.random.default_rng(0))
    assert rpn_match.dtype == np.int32 and rpn_bbox.dtype == np.float32
    np.testing.assert_array_equal(rpn_match, [POSITIVE, POSITIVE, NEUTRAL, NEGATIVE])
    assert rpn_bbox.shape == (tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    np.testing.assert_allclose(rpn_bbox[0], 0.0, atol=1e-7)  # anchor == GT: zero delta
    # Anchor 1: centre x 6 -> 5 over width 12, width 12 -> 10.
    expected = np.array([0.0, -1 / 12, 0.0, np.log(10 / 12)]) / STD
    np.testing.assert_allclose(rpn_bbox[1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rpn_bbox[2:], 0.0)


def test_gt_equal_to_grid_anchor_is_positive_with_zero_delta(tiny_config):
    anchors = grid_anchors()
    k = 300
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.array([3]), anchors[k:k + 1],
                                            tiny_config, rng=np.random.default_rng(1))
    assert rpn_match[k] == POSITIVE
    positives = np.flatnonzero(rpn_match == POSITIVE)
    row = int(np.searchsorted(positives, k))  # rows follow anchor order
    np.testing.assert_allclose(rpn_bbox[row], 0.0, atol=1e-7)


def test_best_anchor_is_positive_below_threshold(tiny_config):
    anchors = np.array([[0, 0, 10, 10], [40, 40, 50, 50]], dtype=np.float32)
    gt = np.array([[0, 0, 10, 30]], dtype=np.float32)  # IoU 1/3 with anchor 0, below 0.7
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.array([1]), gt, tiny_config)
    np.testing.assert_array_equal(rpn_match, [POSITIVE, NEGATIVE])
    np.testing.assert_allclose(rpn_bbox[0], box_refinement(anchors[:1], gt)[0] / STD, rtol=1e-5)


def test_gt_overlapping_no_anchor_marks_nothing_positive(tiny_config):
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    rpn_match, _ = build_rpn_targets(anchors, np.array([1]), np.array([[50, 50, 60, 60]]),
                                     tiny_config)
    np.testing.assert_array_equal(rpn_match, [NEGATIVE, NEGATIVE])


def test_crowd_box_blocks_negatives_and_is_never_a_target(tiny_config):
    anchors = np.array([[0, 0, 10, 10],      # equal to the object box
                        [50, 50, 60, 60],    # equal to the crowd box
                        [58, 58, 70, 70],    # touches the crowd (IoU 4/240) only
                        [100, 100, 110, 110]], dtype=np.float32)
    gt_boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.array([2, -1]), gt_boxes, tiny_config)
    np.testing.assert_array_equal(rpn_match, [POSITIVE, NEUTRAL, NEUTRAL, NEGATIVE])
    np.testing.assert_allclose(rpn_bbox[0], 0.0, atol=1e-7)


def test_padding_class_ids_are_ignored(tiny_config):
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    gt_boxes = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float32)
    rpn_match, _ = build_rpn_targets(anchors, np.array([1, 0]), gt_boxes, tiny_config)
    np.testing.assert_array_equal(rpn_match, [POSITIVE, NEGATIVE])


def test_zero_gt_samples_only_negatives(tiny_config):
    anchors = grid_anchors()
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.zeros([0], np.int32), np.zeros([0, 4]),
                                            tiny_config, rng=np.random.default_rng(2))
    summary = rpn_match_summary(rpn_match)
    assert summary == {"positive": 0, "negative": tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE,
                       "neutral": len(anchors) - tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE,
                       "total": len(anchors)}
    np.testing.assert_array_equal(rpn_bbox, 0.0)


def test_only_crowds_gives_no_negatives_near_them(tiny_config):
    anchors = grid_anchors()
    crowd = np.array([[0, 0, 64, 64]], dtype=np.float32)
    rpn_match, _ = build_rpn_targets(anchors, np.array([-3]), crowd, tiny_config)
    near_crowd = compute_overlaps(anchors, crowd)[:, 0] >= 0.001
    assert not np.any(rpn_match == POSITIVE)
    assert not np.any(rpn_match[near_crowd] == NEGATIVE)
    assert np.sum(rpn_match == NEGATIVE) == tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE


def test_sampled_counts_are_exact_when_positives_abound(tiny_config):
    # Many GT boxes equal to anchors: far more positives than half the sample.
    anchors = grid_anchors()
    gt = anchors[::7][:100]
    rpn_match, rpn_bbox = build_rpn_targets(anchors, np.ones(len(gt), np.int32), gt, tiny_config,
                                            rng=np.random.default_rng(3))
    samples = tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE
    assert np.sum(rpn_match == POSITIVE) == samples // 2
    assert np.sum(rpn_match == NEGATIVE) == samples - samples // 2
    assert np.count_nonzero(np.any(rpn_bbox != 0, axis=1)) <= samples // 2


def test_one_hundred_gt_against_reference(tiny_config):
    rng = np.random.default_rng(4)
    anchors = grid_anchors()
    gt = random_gt(rng, 100)
    class_ids = rng.integers(1, 4, size=100)
    rpn_match, rpn_bbox = build_rpn_targets(anchors, class_ids, gt, tiny_config, rng=rng)
    samples = tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE
    positives = np.flatnonzero(rpn_match == POSITIVE)
    negatives = np.flatnonzero(rpn_match == NEGATIVE)
    assert 0 < len(positives) <= samples // 2
    assert len(positives) + len(negatives) == samples
    overlaps = compute_overlaps(anchors, gt)
    best_iou = overlaps.max(axis=1)
    is_gt_best = np.any((overlaps == overlaps.max(axis=0)) & (overlaps.max(axis=0) > 0), axis=1)
    assert np.all((best_iou[positives] >= 0.7) | is_gt_best[positives])
    assert np.all(best_iou[negatives] < 0.3)
    expected = box_refinement(anchors[positives], gt[overlaps[positives].argmax(axis=1)]) / STD
    np.testing.assert_allclose(rpn_bbox[:len(positives)], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rpn_bbox[len(positives):], 0.0)


def test_seeded_rng_is_deterministic(tiny_config):
    anchors = grid_anchors()
    gt = random_gt(np.random.default_rng(5), 40)
    ids = np.ones(40, np.int32)
    first = build_rpn_targets(anchors, ids, gt, tiny_config, rng=np.random.default_rng(7))
    second = build_rpn_targets(anchors, ids, gt, tiny_config, rng=np.random.default_rng(7))
    other = build_rpn_targets(anchors, ids, gt, tiny_config, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_mismatched_gt_lengths_raise(tiny_config):
    with pytest.raises(ValueError, match="gt_class_ids has 2 entries"):
        build_rpn_targets(grid_anchors(), np.array([1, 2]), np.zeros([3, 4]), tiny_config)


def test_rpn_match_summary_counts_batches():
    summary = rpn_match_summary(np.array([[POSITIVE, NEGATIVE, NEUTRAL], [NEGATIVE, NEGATIVE,
                                                                         NEUTRAL]]))
    assert summary == {"positive": 1, "negative": 3, "neutral": 2, "total": 6}
