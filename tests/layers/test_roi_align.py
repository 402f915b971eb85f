"""PyramidROIAlign against an independent numpy crop-and-resize-by-level."""

import keras
import numpy as np
import tensorflow as tf
from layer_helper import check_layer

from mrcnn.imaging import compose_image_meta
from mrcnn.layers.roi_align import PyramidROIAlign, roi_levels

IMAGE_SIDE = 1024  # image_shape in the meta; feature maps stay tiny (only the level rule uses it)
FEATURE_SIDES = (16, 8, 4, 2)  # P2..P5
CHANNELS = 3


def crop_and_resize_np(image, box, size):
    """numpy tf.image.crop_and_resize (bilinear, extrapolation 0) of an (H, W, C) image."""
    height, width, channels = image.shape
    y1, x1, y2, x2 = (float(v) for v in box)

    def sample_points(start, stop, extent, count):
        if count == 1:
            return np.array([0.5 * (start + stop) * (extent - 1)])
        return start * (extent - 1) + np.arange(count) * (stop - start) * (extent - 1) / (count - 1)

    out = np.zeros((*size, channels), np.float64)
    for i, y in enumerate(sample_points(y1, y2, height, size[0])):
        for j, x in enumerate(sample_points(x1, x2, width, size[1])):
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue
            top, left = int(np.floor(y)), int(np.floor(x))
            bottom, right = int(np.ceil(y)), int(np.ceil(x))
            dy, dx = y - top, x - left
            upper = image[top, left] + (image[top, right] - image[top, left]) * dx
            lower = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * dx
            out[i, j] = upper + (lower - upper) * dy
    return out


def level_np(box, image_area):
    with np.errstate(divide="ignore"):
        size = np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 0.0))
        level = np.log2(size / (224.0 / np.sqrt(image_area)))
    return int(np.clip(4 + np.round(level), 2, 5))


def pyramid_roi_align_np(boxes, feature_maps, image_shape, pool):
    """(B, N, ph, pw, C) reference: each box cropped from the level of matterport's rule."""
    area = image_shape[0] * image_shape[1]
    out = np.zeros((*boxes.shape[:2], *pool, feature_maps[0].shape[-1]))
    for b in range(boxes.shape[0]):
        for n, box in enumerate(boxes[b]):
            level = level_np(box, area)
            out[b, n] = crop_and_resize_np(feature_maps[level - 2][b], box, pool)
    return out


def make_inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    # Box sides spread over all four levels (224 px = 0.22 normalized -> P4), plus a zero
    # padding box and one reaching past the image edge (sampled as 0 there).
    sides = np.array([0.03, 0.06, 0.1, 0.15, 0.22, 0.3, 0.45, 0.6, 0.9])
    boxes = []
    for _ in range(batch):
        side = rng.permutation(np.repeat(sides, 2))[:, None] * rng.uniform(0.9, 1.1, (18, 2))
        corner = rng.uniform(0, 1 - side)
        image_boxes = np.concatenate([corner, corner + side], axis=1)
        image_boxes = np.vstack([image_boxes, [0, 0, 0, 0], [0.8, 0.7, 1.23, 1.13]])
        boxes.append(image_boxes)
    boxes = np.asarray(boxes, np.float32)
    meta = np.stack([compose_image_meta(i, (900, 1024, 3), (IMAGE_SIDE, IMAGE_SIDE, 3),
                                        (62, 0, 962, 1024), 1.0, np.ones(4))
                     for i in range(batch)]).astype(np.float32)
    feature_maps = [rng.normal(size=(batch, s, s, CHANNELS)).astype(np.float32)
                    for s in FEATURE_SIDES]
    return boxes, meta, feature_maps


def test_matches_numpy_crop_and_resize_by_level():
    boxes, meta, feature_maps = make_inputs()
    levels = np.array([[level_np(box, IMAGE_SIDE ** 2) for box in image] for image in boxes])
    assert set(levels.ravel()) == {2, 3, 4, 5}, "the test boxes must cover every level"
    (pooled,) = check_layer(PyramidROIAlign((3, 5), name="roi_align_test"),
                            [boxes, meta, *feature_maps], [(2, 20, 3, 5, CHANNELS)])
    expected = pyramid_roi_align_np(boxes, feature_maps, (IMAGE_SIDE, IMAGE_SIDE), (3, 5))
    np.testing.assert_allclose(pooled, expected, atol=1e-5)


def test_levels_use_each_images_own_area():
    boxes = np.float32([[[0.1, 0.1, 0.32, 0.32]], [[0.1, 0.1, 0.32, 0.32]]])
    image_shape = tf.constant([[1024, 1024, 3], [256, 256, 3]], tf.float32)
    # 0.22 * 1024 = 225 px -> P4; 0.22 * 256 = 56 px -> two halvings -> P2.
    np.testing.assert_array_equal(roi_levels(tf.constant(boxes), image_shape), [[4], [2]])


def test_single_pixel_pool_and_unknown_batch_in_a_model():
    boxes, meta, feature_maps = make_inputs(batch=1, seed=1)
    inputs = [keras.Input((None, 4)), keras.Input((meta.shape[1],))]
    inputs += [keras.Input((s, s, CHANNELS)) for s in FEATURE_SIDES]
    pooled = PyramidROIAlign((1, 1))(inputs)
    assert tuple(pooled.shape) == (None, None, 1, 1, CHANNELS)
    result = keras.Model(inputs, pooled).predict([boxes, meta, *feature_maps], verbose=0)
    expected = pyramid_roi_align_np(boxes, feature_maps, (IMAGE_SIDE, IMAGE_SIDE), (1, 1))
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_gradient_reaches_features_not_boxes():
    boxes, meta, feature_maps = make_inputs(batch=1, seed=2)
    boxes, features = tf.Variable(boxes), [tf.Variable(f) for f in feature_maps]
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(PyramidROIAlign((2, 2))([boxes, meta, *features]))
    grads = tape.gradient(total, [boxes, *features])
    assert grads[0] is None
    assert all(g is not None and np.abs(np.asarray(g)).sum() > 0 for g in grads[1:])
