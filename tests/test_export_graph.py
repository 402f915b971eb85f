"""The exported graph's molding and unmolding (mrcnn/export_graph.py) against the numpy
reference in mrcnn/imaging.py and mrcnn/anchors.py, without a model."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import export_graph, imaging
from mrcnn.anchors import get_anchors
from mrcnn.config import Config
from tiny_config import TinyConfig


def _config(**fields):
    values = {k: v for k, v in vars(TinyConfig).items() if k.isupper()}
    values.update(fields)
    return Config.from_dict(values)


def _image(height, width, seed=0):
    """Random pixels with flat blocks: interpolating between equal integers is where a
    different order of float operations truncates to a different uint8."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[height // 4:height // 2, width // 4:] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image


@pytest.mark.parametrize("mode, size, extra", [
    ("square", (128, 128), {}),   # identity resize
    ("square", (50, 70), {}),     # upscaled, then padded left/right
    ("square", (300, 97), {}),    # downscaled by IMAGE_MAX_DIM
    ("square", (40, 40), {"IMAGE_MIN_SCALE": 4}),  # MIN_SCALE beats MIN_DIM, then capped
    ("pad64", (100, 150), {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 256}),
    ("none", (77, 90), {}),
])
def test_resize_and_pad_equals_mold_inputs(mode, size, extra):
    config = _config(IMAGE_RESIZE_MODE=mode, **extra)
    image = _image(*size)
    molded, meta, window = export_graph.resize_and_pad(tf.constant(image), config)
    ref_molded, ref_meta, ref_window = imaging.mold_inputs([image], config)
    assert molded.shape == ref_molded.shape[1:]
    # Exactly equal: the graph repeats scipy's arithmetic, so truncation to uint8 agrees.
    np.testing.assert_array_equal(molded.numpy(), ref_molded[0])
    np.testing.assert_array_equal(window.numpy(), ref_window[0])
    np.testing.assert_allclose(meta.numpy(), ref_meta[0], rtol=1e-6)


@pytest.mark.parametrize("mode, shape", [("square", (128, 128, 3)), ("pad64", (192, 320, 3)),
                                         ("none", (77, 90, 3))])
def test_pyramid_anchors_equal_get_anchors(mode, shape):
    config = _config(IMAGE_RESIZE_MODE=mode, RPN_ANCHOR_STRIDE=2 if mode == "none" else 1)
    anchors = export_graph.pyramid_anchors(config, tf.constant(shape)).numpy()
    reference = get_anchors(config, shape)
    assert anchors.shape == reference.shape
    np.testing.assert_allclose(anchors, reference, atol=1e-6)


def _detections(molded_shape, window, rows):
    """Zero-padded [10, 6] normalized detections from pixel boxes in the molded image."""
    from mrcnn.boxes import norm_boxes

    detections = np.zeros((10, 6), np.float32)
    for i, (box, class_id, score) in enumerate(rows):
        detections[i, :4] = norm_boxes(np.array([box], np.float32), molded_shape[:2])[0]
        detections[i, 4:] = class_id, score
    return detections


@pytest.mark.parametrize("count", [0, 1, 4])
def test_unmold_and_paste_equal_unmold_detections(count):
    molded_shape, window, original = (128, 128, 3), (16, 0, 112, 128), (72, 96, 3)
    rows = [((20.3, 5.0, 60.7, 50.2), 2, 0.9),     # inside the window
            ((14.0, 100.0, 50.0, 127.9), 1, 0.8),  # pokes above the window: mask cropped
            ((40.0, 40.0, 40.2, 40.1), 3, 0.7),    # rounds to zero area: dropped
            ((60.0, 1.0, 111.0, 30.0), 3, 0.6)][:count]
    detections = _detections(molded_shape, window, rows)
    mrcnn_mask = np.random.default_rng(1).random((10, 28, 28, 4)).astype(np.float32)
    boxes, class_ids, scores, masks, kept = imaging.unmold_detections(
        detections, mrcnn_mask, original, molded_shape, window)

    got_boxes, got_ids, got_scores, got_rows = export_graph.unmold_boxes(
        tf.constant(detections), tf.constant(molded_shape), tf.constant(window),
        tf.constant(original))
    small = export_graph.class_masks(tf.constant(mrcnn_mask), got_rows, got_ids)
    got_masks = export_graph.paste_masks(small, got_boxes, tf.constant(original), (28, 28))
    np.testing.assert_array_equal(got_boxes.numpy(), boxes)
    np.testing.assert_array_equal(got_ids.numpy(), class_ids)
    np.testing.assert_array_equal(got_scores.numpy(), scores)
    np.testing.assert_array_equal(got_rows.numpy(), kept)
    assert got_masks.dtype == tf.bool and got_masks.shape == masks.shape
    if count:
        assert masks.any()
        assert (got_masks.numpy() == masks).mean() >= 0.999
    assert len(class_ids) == {0: 0, 1: 1, 4: 3}[count]


def test_crop_mode_is_refused():
    with pytest.raises(ValueError, match="IMAGE_RESIZE_MODE 'crop' cannot be exported"):
        export_graph.resize_and_pad(tf.constant(_image(64, 64)),
                                    _config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64))
