"""build_rpn_targets against a numpy reimplementation of matterport's, where ties decide."""

import numpy as np
import pytest
from matterport_reference import (compute_overlaps, generate_pyramid_anchors,
                                  rpn_bbox_rows, rpn_match_before_sampling)

from mrcnn.anchors import get_anchors_pixels
from mrcnn.targets import NEGATIVE, POSITIVE, build_rpn_targets


def reference_anchors(config):
    """matterport's pixel anchors of a 128x128 molded image (float64)."""
    return generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    config.backbone_shapes((128, 128)), config.BACKBONE_STRIDES,
                                    config.RPN_ANCHOR_STRIDE)


def no_sampling(config, anchors):
    """A config whose sample size is large enough that build_rpn_targets drops nothing."""
    config.RPN_TRAIN_ANCHORS_PER_IMAGE = 2 * len(anchors)
    return config


def test_project_anchors_equal_the_reference(tiny_config):
    np.testing.assert_array_equal(get_anchors_pixels(tiny_config, (128, 128)),
                                  reference_anchors(tiny_config))


def test_three_way_tie_makes_all_three_positive(tiny_config):
    anchors = reference_anchors(tiny_config)
    gt_boxes = np.array([[3, 30, 13, 90]], np.int32)
    overlaps = compute_overlaps(anchors, gt_boxes)[:, 0]
    tied = np.flatnonzero(overlaps == overlaps.max())
    # Three 0.5-ratio anchors, shifted along x inside the box: exactly tied in float64 ...
    np.testing.assert_array_equal(tied, [3143, 3146, 3149])
    assert overlaps.max() < 0.7  # ... so only the "best anchor of a GT box" rule makes them positive
    # ... while float32 anchors rank a fourth anchor first: the tie decides the match.
    overlaps32 = compute_overlaps(anchors.astype(np.float32).astype(np.float64), gt_boxes)[:, 0]
    assert np.flatnonzero(overlaps32 == overlaps32.max()).tolist() == [3140]

    rpn_match, _ = build_rpn_targets(anchors, np.array([1]), gt_boxes,
                                     no_sampling(tiny_config, anchors))
    assert rpn_match[tied].tolist() == [POSITIVE] * 3
    assert rpn_match[3140] != POSITIVE
    expected, _, _ = rpn_match_before_sampling(anchors, np.array([1]), gt_boxes)
    np.testing.assert_array_equal(rpn_match, expected)


def random_case(seed):
    """1..6 integer GT boxes (as extract_bboxes gives) inside a 128 px image, some crowds."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 7))
    size = rng.integers(6, 70, size=(count, 2))
    corner = rng.integers(0, 128 - size)
    boxes = np.concatenate([corner, corner + size], axis=1).astype(np.int32)
    class_ids = rng.integers(1, 4, size=count).astype(np.int32)
    if count > 2 and seed % 3 == 0:
        class_ids[-1] = -1  # a crowd region
    return class_ids, boxes


@pytest.mark.parametrize("seed", range(60))
def test_random_images_match_matterport_exactly(tiny_config, seed):
    anchors = reference_anchors(tiny_config)
    class_ids, gt_boxes = random_case(seed)
    config = no_sampling(tiny_config, anchors)
    rpn_match, rpn_bbox = build_rpn_targets(anchors, class_ids, gt_boxes, config,
                                            rng=np.random.default_rng(seed))
    expected, argmax, objects = rpn_match_before_sampling(anchors, class_ids, gt_boxes)
    np.testing.assert_array_equal(rpn_match, expected)
    expected_bbox = rpn_bbox_rows(anchors, objects, expected, argmax,
                                  np.asarray(config.RPN_BBOX_STD_DEV), len(rpn_bbox))
    np.testing.assert_allclose(rpn_bbox, expected_bbox, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("seed", range(20))
def test_counts_after_sampling_match_matterport(tiny_config, seed):
    anchors = reference_anchors(tiny_config)
    class_ids, gt_boxes = random_case(seed)
    samples = tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE
    rpn_match, _ = build_rpn_targets(anchors, class_ids, gt_boxes, tiny_config,
                                     rng=np.random.default_rng(seed))
    expected, _, _ = rpn_match_before_sampling(anchors, class_ids, gt_boxes)
    positives = min(int(np.sum(expected == 1)), samples // 2)
    negatives = min(int(np.sum(expected == -1)), samples - positives)
    assert int(np.sum(rpn_match == POSITIVE)) == positives
    assert int(np.sum(rpn_match == NEGATIVE)) == negatives
    # Sampling only turns matches neutral; it never changes positive into negative or back.
    assert np.all(expected[rpn_match == POSITIVE] == 1)
    assert np.all(expected[rpn_match == NEGATIVE] == -1)
