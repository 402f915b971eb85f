"""TrimDetections / PadDetections: the mask head runs on real detections only."""

import numpy as np
from layer_helper import check_layer

from mrcnn.layers.detection_rows import PadDetections, TrimDetections


def detections_with_counts(counts, rows=6, seed=0):
    """(B, rows, 6) detections: image b has counts[b] real rows (class 1..3) then zero rows."""
    rng = np.random.default_rng(seed)
    detections = np.zeros((len(counts), rows, 6), np.float32)
    for b, count in enumerate(counts):
        corners = np.sort(rng.uniform(0, 1, (count, 2, 2)), axis=1).reshape(count, 4)
        detections[b, :count, :4] = corners[:, [0, 2, 1, 3]]
        detections[b, :count, 4] = rng.integers(1, 4, count)
        detections[b, :count, 5] = np.sort(rng.uniform(0.5, 1, count))[::-1]
    return detections


def test_trim_keeps_the_rows_of_the_image_with_most_detections():
    detections = detections_with_counts([3, 1])
    (boxes,) = check_layer(TrimDetections(name="trim"), detections, [(2, 3, 4)])
    np.testing.assert_array_equal(boxes, detections[:, :3, :4])
    # Image 1's rows 1-2 are its padding: zero boxes, as the untrimmed graph saw them.
    assert not boxes[1, 1:].any()


def test_trim_of_no_detections_keeps_one_zero_row_and_of_a_full_batch_everything():
    # One row, not none: TF's CPU convolution mis-shapes an empty batch.
    (one,) = check_layer(TrimDetections(name="trim"), detections_with_counts([0, 0]), [(2, 1, 4)])
    assert not one.any()
    full = detections_with_counts([6])
    (boxes,) = check_layer(TrimDetections(name="trim"), full, [(1, 6, 4)])
    np.testing.assert_array_equal(boxes, full[..., :4])


def test_pad_keeps_real_rows_and_zeroes_every_padding_row():
    detections = detections_with_counts([2, 1], rows=5)
    values = np.random.default_rng(1).uniform(0.1, 1, (2, 2, 3, 3, 4)).astype(np.float32)
    (padded,) = check_layer(PadDetections(name="pad"), [values, detections], [(2, 5, 3, 3, 4)])
    np.testing.assert_array_equal(padded[0, :2], values[0])
    np.testing.assert_array_equal(padded[1, :1], values[1, :1])
    # Image 1's second kept row is its padding (a zero box's output): zeroed too.
    assert not padded[1, 1:].any() and not padded[0, 2:].any()


def test_pad_of_the_one_row_kept_for_no_detections_is_all_zero():
    detections = detections_with_counts([0], rows=4)
    values = np.full((1, 1, 2, 2, 3), 0.5, np.float32)
    (padded,) = check_layer(PadDetections(name="pad"), [values, detections], [(1, 4, 2, 2, 3)])
    assert not padded.any()


def test_pad_works_on_rank_three_values():
    detections = detections_with_counts([1], rows=3)
    values = np.ones((1, 1, 7), np.float32)
    (padded,) = check_layer(PadDetections(name="pad"), [values, detections], [(1, 3, 7)])
    np.testing.assert_array_equal(padded[0], [[1] * 7, [0] * 7, [0] * 7])
