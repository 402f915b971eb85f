"""Box math: numpy functions vs hand-computed values, *_tf twins vs numpy."""

import numpy as np
import pytest

from mrcnn import boxes as B


def random_boxes(rng, count, size=100.0):
    """[count, 4] well-formed pixel boxes [y1, x1, y2, x2] inside a size x size image."""
    y1x1 = rng.uniform(0, size * 0.8, (count, 2))
    hw = rng.uniform(1, size * 0.4, (count, 2))
    return np.concatenate([y1x1, y1x1 + hw], axis=1).astype(np.float32)


# ---- numpy ---------------------------------------------------------------------------------


def test_box_areas_and_compute_iou_by_hand():
    np.testing.assert_allclose(B.box_areas(np.array([[0, 0, 10, 10], [5, 5, 3, 8]])), [100, 0])
    box = np.array([0, 0, 10, 10])
    others = np.array([[0, 0, 10, 10],    # same: 1
                       [5, 5, 15, 15],    # 25 / (100 + 100 - 25)
                       [0, 5, 10, 20],    # 50 / (100 + 150 - 50)
                       [20, 20, 30, 30],  # disjoint: 0
                       [10, 0, 20, 10]])  # touching edge: 0
    np.testing.assert_allclose(B.compute_iou(box, others), [1, 25 / 175, 50 / 200, 0, 0])
    # Zero-area boxes give 0, not NaN.
    np.testing.assert_allclose(B.compute_iou(np.array([3, 3, 3, 3]), np.array([[3, 3, 3, 3]])), [0])


def test_compute_overlaps_matrix():
    boxes1 = np.array([[0, 0, 10, 10], [5, 5, 15, 15]])
    boxes2 = np.array([[0, 0, 10, 10], [0, 5, 10, 20], [50, 50, 60, 60]])
    expected = np.array([[1, 50 / 200, 0], [25 / 175, 50 / 200, 0]])
    np.testing.assert_allclose(B.compute_overlaps(boxes1, boxes2), expected)
    assert B.compute_overlaps(np.zeros((0, 4)), boxes2).shape == (0, 3)


def test_compute_overlaps_masks():
    masks1 = np.zeros((4, 4, 2), bool)
    masks1[:2, :, 0] = True          # 8 px
    masks1[:, :2, 1] = True          # 8 px
    masks2 = np.zeros((4, 4, 1), bool)
    masks2[:2, :2, 0] = True         # 4 px, inside both
    np.testing.assert_allclose(B.compute_overlaps_masks(masks1, masks2), [[0.5], [0.5]])
    np.testing.assert_allclose(B.compute_overlaps_masks(masks1, masks1), [[1, 4 / 12], [4 / 12, 1]])
    assert B.compute_overlaps_masks(masks1, np.zeros((4, 4, 0))).shape == (2, 0)


def test_box_refinement_by_hand_and_round_trip():
    anchor = np.array([[0, 0, 10, 20]])  # centre (5, 10), h 10, w 20
    target = np.array([[2, 4, 22, 24]])  # centre (12, 14), h 20, w 20
    deltas = B.box_refinement(anchor, target)
    np.testing.assert_allclose(deltas, [[7 / 10, 4 / 20, np.log(2), 0]], rtol=1e-6)
    np.testing.assert_allclose(B.apply_box_deltas(anchor, deltas), target, atol=1e-5)

    rng = np.random.default_rng(0)
    start, goal = random_boxes(rng, 50), random_boxes(rng, 50)
    np.testing.assert_allclose(B.apply_box_deltas(start, B.box_refinement(start, goal)), goal,
                               atol=1e-3)


def test_clip_boxes():
    boxes = np.array([[-5, 2, 8, 30], [3, -1, 40, 9], [50, 50, 60, 60]], np.float32)
    clipped = B.clip_boxes(boxes, (0, 0, 20, 25))
    np.testing.assert_array_equal(clipped, [[0, 2, 8, 25], [3, 0, 20, 9], [20, 25, 20, 25]])


def test_norm_denorm_convention():
    # (h - 1, w - 1) = (100, 200) and y2, x2 shifted by -1.
    pixels = np.array([[10, 20, 51, 101], [0, 0, 101, 201]])
    normalized = B.norm_boxes(pixels, (101, 201, 3))
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], rtol=1e-6)
    back = B.denorm_boxes(normalized, (101, 201))
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, pixels)
    rng = np.random.default_rng(1)
    ints = np.round(random_boxes(rng, 100)).astype(np.int32)
    np.testing.assert_array_equal(B.denorm_boxes(B.norm_boxes(ints, (128, 96)), (128, 96)), ints)


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10],    # score 0.9, kept
                      [1, 1, 11, 11],    # IoU 81/119 = 0.68 with box 0 -> dropped at 0.5
                      [0, 20, 10, 30],   # separate, kept
                      [0, 0, 10, 10.5]]) # IoU 100/105 with box 0, dropped
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    np.testing.assert_array_equal(B.non_max_suppression(boxes, scores, 0.5), [3, 2])
    np.testing.assert_array_equal(B.non_max_suppression(boxes, scores, 0.96), [3, 0, 1, 2])
    # Threshold is strict (IoU > t drops): t = 81/119 keeps box 1 next to box 0.
    kept = B.non_max_suppression(boxes[:3], scores[:3], 81 / 119)
    np.testing.assert_array_equal(kept, [0, 1, 2])
    np.testing.assert_array_equal(B.non_max_suppression(boxes, scores, 0.5, max_output=1), [3])
    empty = B.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int32


def test_nms_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(2)
    boxes = random_boxes(rng, 200)
    scores = rng.random(200).astype(np.float32)
    for threshold in (0.3, 0.7):
        expected = tf.image.non_max_suppression(boxes, scores, 200, threshold).numpy()
        np.testing.assert_array_equal(B.non_max_suppression(boxes, scores, threshold), expected)
    expected = tf.image.non_max_suppression(boxes, scores, 17, 0.5).numpy()
    np.testing.assert_array_equal(B.non_max_suppression(boxes, scores, 0.5, 17), expected)


def test_extract_bboxes():
    mask = np.zeros((10, 12, 3), bool)
    mask[2:5, 3:7, 0] = True
    mask[9, 11, 1] = True
    boxes = B.extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 7], [9, 11, 10, 12], [0, 0, 0, 0]])
    assert B.extract_bboxes(np.zeros((4, 4, 0), bool)).shape == (0, 4)


# ---- TensorFlow twins ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_apply_box_deltas_and_refinement_tf(tf):
    rng = np.random.default_rng(3)
    start, goal = random_boxes(rng, 64), random_boxes(rng, 64)
    deltas = rng.normal(0, 0.3, (64, 4)).astype(np.float32)
    np.testing.assert_allclose(B.apply_box_deltas_tf(tf.constant(start), tf.constant(deltas)),
                               B.apply_box_deltas(start, deltas), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(B.box_refinement_tf(tf.constant(start), tf.constant(goal)),
                               B.box_refinement(start, goal), rtol=1e-5, atol=1e-5)


def test_clip_boxes_tf(tf):
    rng = np.random.default_rng(4)
    boxes = random_boxes(rng, 64, size=140) - 20
    window = np.array([0, 0, 100, 90], np.float32)
    np.testing.assert_array_equal(B.clip_boxes_tf(tf.constant(boxes), tf.constant(window)),
                                  B.clip_boxes(boxes, window))


def test_overlaps_tf(tf):
    rng = np.random.default_rng(5)
    boxes1, boxes2 = random_boxes(rng, 30), random_boxes(rng, 40)
    np.testing.assert_allclose(B.overlaps_tf(tf.constant(boxes1), tf.constant(boxes2)),
                               B.compute_overlaps(boxes1, boxes2), atol=1e-6)


def test_norm_denorm_tf(tf):
    rng = np.random.default_rng(6)
    pixels = np.round(random_boxes(rng, 64))
    shape = np.array([128, 96], np.int32)
    normalized = B.norm_boxes_tf(tf.constant(pixels), tf.constant(shape))
    np.testing.assert_allclose(normalized, B.norm_boxes(pixels, shape), rtol=1e-6, atol=1e-7)
    denorm = B.denorm_boxes_tf(normalized, tf.constant(shape))
    assert denorm.dtype == tf.int32
    np.testing.assert_array_equal(denorm, B.denorm_boxes(B.norm_boxes(pixels, shape), shape))
    np.testing.assert_array_equal(denorm, pixels.astype(np.int32))
    # Batched [B, N, 4] input works too (the detection layer normalizes per image batch).
    batched = B.norm_boxes_tf(tf.constant(pixels[None]), tf.constant(shape))
    np.testing.assert_allclose(batched[0], normalized, rtol=1e-6)


def test_nms_max_output_zero_is_empty():
    kept = B.non_max_suppression(np.array([[0, 0, 1, 1.0]]), np.array([0.5]), 0.5, max_output=0)
    assert kept.shape == (0,)
