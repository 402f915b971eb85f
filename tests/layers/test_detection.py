"""DetectionLayer against refine_detections_np (matterport's per-class NMS loop) and edge cases."""

import keras
import numpy as np
import pytest
from layer_helper import check_layer

from mrcnn.boxes import compute_overlaps, norm_boxes
from mrcnn.imaging import compose_image_meta
from mrcnn.layers.detection import DetectionLayer, refine_detections_np

STD = [0.1, 0.1, 0.2, 0.2]
IMAGE_SHAPE = (256, 256, 3)
WINDOW_PX = (32, 0, 224, 256)  # letterboxed image: padding above and below
NUM_CLASSES = 5


def meta(batch):
    return np.stack([compose_image_meta(i, (192, 256, 3), IMAGE_SHAPE, WINDOW_PX, 1.0,
                                        np.ones(NUM_CLASSES)) for i in range(batch)]
                    ).astype(np.float32)


def normalized_window():
    return norm_boxes(np.array([WINDOW_PX]), IMAGE_SHAPE[:2])[0]


def random_inputs(batch, count, seed=0, temperature=2.0):
    """Clustered ROIs (so NMS has work), softmax probs (B, N, C), deltas (B, N, C, 4)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.1, 0.9, size=(batch, 4, 2))[:, rng.integers(0, 4, count)]
    centers = centers + rng.normal(scale=0.03, size=centers.shape)
    half = rng.uniform(0.05, 0.15, size=(batch, count, 2))
    rois = np.concatenate([centers - half, centers + half], axis=-1)
    logits = rng.normal(scale=temperature, size=(batch, count, NUM_CLASSES))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    deltas = rng.normal(scale=0.5, size=(batch, count, NUM_CLASSES, 4))
    return [a.astype(np.float32) for a in (rois, probs, deltas)]


def make_layer(max_instances=10, min_confidence=0.3, nms_threshold=0.3):
    return DetectionLayer(max_instances, min_confidence, nms_threshold, bbox_std_dev=STD)


def reference(layer, rois, probs, deltas):
    return refine_detections_np(
        rois, probs, deltas, normalized_window(), bbox_std_dev=STD,
        detection_min_confidence=layer.detection_min_confidence,
        detection_nms_threshold=layer.detection_nms_threshold,
        detection_max_instances=layer.detection_max_instances)


def assert_matches_reference(layer, detections, roi_indices, rois, probs, deltas):
    for b in range(len(rois)):
        expected = reference(layer, rois[b], probs[b], deltas[b])
        np.testing.assert_array_equal(roi_indices[b], expected.roi_indices)
        np.testing.assert_allclose(detections[b], expected.detections, atol=1e-6)


@pytest.mark.parametrize("max_instances, min_confidence, nms_threshold, seed",
                         [(10, 0.3, 0.3, 0), (40, 0.0, 0.5, 1), (5, 0.5, 0.7, 2)])
def test_matches_numpy_reference(max_instances, min_confidence, nms_threshold, seed):
    rois, probs, deltas = random_inputs(batch=2, count=80, seed=seed)
    layer = make_layer(max_instances, min_confidence, nms_threshold)
    detections, roi_indices = check_layer(layer, [rois, probs, deltas, meta(2)],
                                          [(2, max_instances, 6), (2, max_instances)])
    assert_matches_reference(layer, detections, roi_indices, rois, probs, deltas)
    for b in range(2):
        real = roi_indices[b] >= 0
        count = int(real.sum())
        assert np.all(real[:count]) and np.all(detections[b, count:] == 0)
        assert np.all(np.diff(detections[b, :count, 5]) <= 0), "sorted by score"
        assert np.all(detections[b, :count, 5] >= min_confidence)
        window = normalized_window()
        assert np.all(detections[b, :count, [0, 2]] >= window[0] - 1e-6)
        assert np.all(detections[b, :count, [0, 2]] <= window[2] + 1e-6)
        # Same-class detections overlap at most the NMS threshold.
        for class_id in np.unique(detections[b, :count, 4]):
            boxes = detections[b, :count][detections[b, :count, 4] == class_id, :4]
            overlaps = compute_overlaps(boxes, boxes)
            np.fill_diagonal(overlaps, 0)
            assert overlaps.max(initial=0) <= nms_threshold + 1e-6


def test_nms_and_cap_both_act():
    """The random case above must really exercise suppression and the max-instances cap."""
    rois, probs, deltas = random_inputs(batch=1, count=80, seed=0)
    expected = reference(make_layer(10, 0.3, 0.3), rois[0], probs[0], deltas[0])
    uncapped = reference(make_layer(80, 0.3, 0.3), rois[0], probs[0], deltas[0])
    assert expected.count == 10 < uncapped.count < len(expected.pre_nms_indices)


def test_no_detection_survives():
    rois, probs, deltas = random_inputs(batch=2, count=30, seed=3)
    probs[..., 0] += 10.0  # background wins everywhere (probabilities need not sum to 1 here)
    layer = make_layer()
    detections, roi_indices = layer([rois, probs, deltas, meta(2)])
    assert np.all(np.asarray(detections) == 0)
    assert np.all(np.asarray(roi_indices) == -1)
    assert reference(layer, rois[0], probs[0], deltas[0]).count == 0


def test_exactly_one_detection():
    rois, probs, deltas = random_inputs(batch=1, count=30, seed=4)
    probs[...] = 0.0
    probs[..., 0] = 1.0
    probs[0, 17] = [0.05, 0.05, 0.05, 0.8, 0.05]
    layer = make_layer()
    detections, roi_indices = layer([rois, probs, deltas, meta(1)])
    assert list(np.asarray(roi_indices[0])) == [17] + [-1] * 9
    np.testing.assert_allclose(detections[0, 0, 4:], [3, 0.8])
    assert_matches_reference(layer, np.asarray(detections), np.asarray(roi_indices),
                             rois, probs, deltas)


def test_equal_scores_keep_lower_roi_index_first():
    rois = np.float32([[[0.3, 0.3, 0.5, 0.5]] * 4])
    probs = np.tile(np.float32([0.1, 0.9, 0, 0, 0]), (1, 4, 1))
    probs[0, 2] = [0.1, 0, 0.9, 0, 0]  # another class: not suppressed by the class-1 boxes
    layer = make_layer()
    _, roi_indices = layer([rois, probs, np.zeros((1, 4, NUM_CLASSES, 4), np.float32), meta(1)])
    assert list(np.asarray(roi_indices[0, :3])) == [0, 2, -1]


def test_functional_model_with_unknown_batch():
    rois, probs, deltas = random_inputs(batch=3, count=40, seed=5)
    inputs = [keras.Input((40, 4)), keras.Input((40, NUM_CLASSES)),
              keras.Input((40, NUM_CLASSES, 4)), keras.Input((meta(1).shape[1],))]
    layer = make_layer()
    outputs = layer(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, 10, 6), (None, 10)]
    assert [o.dtype for o in outputs] == ["float32", "int32"]
    detections, roi_indices = keras.Model(inputs, outputs).predict(
        [rois, probs, deltas, meta(3)], verbose=0)
    assert_matches_reference(layer, detections, roi_indices, rois, probs, deltas)
