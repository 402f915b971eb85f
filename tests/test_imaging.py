"""Image/mask preparation vs hand-computed values (matterport semantics)."""

import numpy as np
import pytest

from mrcnn import imaging
from mrcnn.config import Config


# ---- to_model_channels --------------------------------------------------------------------


def test_grayscale_and_single_channel_become_rgb():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for image in (gray, gray[:, :, None]):
        out = imaging.to_model_channels(image)
        assert out.shape == (3, 4, 3) and out.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_drops_alpha_and_rgb_passes_through():
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(imaging.to_model_channels(rgba), rgba[:, :, :3])
    np.testing.assert_array_equal(imaging.to_model_channels(rgba[:, :, :3]), rgba[:, :, :3])


def test_uint16_and_float_ranges():
    deep = np.array([[0, 257, 65535]], dtype=np.uint16)
    out = imaging.to_model_channels(deep)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    np.testing.assert_allclose(out[0, :, 0], [0, 1, 255])
    unit = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(imaging.to_model_channels(unit)[0, :, 1], [0, 127.5, 255])
    already = np.array([[0.0, 100.0, 255.0]], dtype=np.float64)
    np.testing.assert_allclose(imaging.to_model_channels(already)[0, :, 2], [0, 100, 255])
    small_ints = np.array([[0, 7, 255]], dtype=np.int64)
    assert imaging.to_model_channels(small_ints).dtype == np.uint8


def test_single_channel_model():
    out = imaging.to_model_channels(np.zeros((4, 5), np.uint8), channels=1)
    assert out.shape == (4, 5, 1)


@pytest.mark.parametrize("image, fragment", [
    (np.zeros(10, np.uint8), "(10,)"),
    (np.zeros((2, 3, 4, 3), np.uint8), "(2, 3, 4, 3)"),
    (np.zeros((4, 4, 6), np.uint8), "6-channel"),
    (np.zeros((4, 4, 5), np.uint8), "5-channel"),
    (np.zeros((0, 4, 3), np.uint8), "(0, 4, 3)"),
    (np.array([["a", "b"]]), "non-numeric"),
    (np.array([[1, 2]], dtype=object), "non-numeric"),
    (np.array([[0, 300]], dtype=np.int32), "0..300"),
    (np.array([[np.nan, 0.5]]), "NaN"),
])
def test_bad_images_raise_with_source_and_shape(image, fragment):
    with pytest.raises(ValueError) as info:
        imaging.to_model_channels(image, source="photo.png")
    message = str(info.value)
    assert "photo.png" in message and fragment in message
    assert str(image.dtype) in message


# ---- resize_image / resize_mask -----------------------------------------------------------


def test_square_mode_numbers():
    image = np.full((100, 200, 3), 77, np.uint8)
    out, window, scale, padding, crop = imaging.resize_image(image, min_dim=128, max_dim=256)
    # min_dim asks 128/100 = 1.28; the long side 200*1.28 = 256 fits max_dim exactly.
    assert scale == pytest.approx(1.28)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert window == (64, 0, 192, 256)
    assert padding == [(64, 64), (0, 0), (0, 0)] and crop is None
    assert np.all(out[64:192] == 77) and np.all(out[:64] == 0) and np.all(out[192:] == 0)


def test_square_mode_limited_by_max_dim():
    image = np.zeros((100, 200, 3), np.float32)
    out, window, scale, padding, _ = imaging.resize_image(image, min_dim=200, max_dim=256)
    assert scale == pytest.approx(256 / 200) and out.dtype == np.float32
    assert window == (64, 0, 192, 256) and padding == [(64, 64), (0, 0), (0, 0)]
    # Odd padding puts the extra pixel at the bottom/right.
    out, window, _, padding, _ = imaging.resize_image(np.zeros((101, 256, 3)), max_dim=256)
    assert window == (77, 0, 178, 256) and padding == [(77, 78), (0, 0), (0, 0)]


def test_min_scale_and_none_mode():
    image = np.zeros((50, 60, 3), np.uint8)
    out, window, scale, _, _ = imaging.resize_image(image, min_scale=2, max_dim=128)
    assert scale == 2 and window == (14, 4, 114, 124) and out.shape == (128, 128, 3)
    out, window, scale, padding, crop = imaging.resize_image(image, 800, 1024, mode="none")
    assert out is image and window == (0, 0, 50, 60) and scale == 1 and crop is None


def test_pad64_mode():
    image = np.ones((100, 130, 3), np.uint8)
    out, window, scale, padding, _ = imaging.resize_image(image, min_dim=64, mode="pad64")
    assert out.shape == (128, 192, 3) and scale == 1
    assert padding == [(14, 14), (31, 31), (0, 0)] and window == (14, 31, 114, 161)
    assert out[14:114, 31:161].all() and out.sum() == 100 * 130 * 3
    with pytest.raises(ValueError, match="divisible by 64"):
        imaging.resize_image(image, min_dim=100, mode="pad64")


def test_crop_mode_deterministic_with_rng():
    image = np.arange(100 * 130 * 3, dtype=np.int64).reshape(100, 130, 3) % 251
    image = image.astype(np.uint8)
    results = [imaging.resize_image(image, min_dim=64, mode="crop", rng=np.random.default_rng(5))
               for _ in range(2)]
    out, window, scale, padding, crop = results[0]
    assert out.shape == (64, 64, 3) and window == (0, 0, 64, 64) and scale == 1
    assert crop == results[1][4]
    y, x, h, w = crop
    assert (h, w) == (64, 64) and 0 <= y <= 36 and 0 <= x <= 66
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode 'fit'"):
        imaging.resize_image(np.zeros((4, 4, 3)), mode="fit")


def test_resize_mask_pad_and_crop():
    mask = np.zeros((10, 20, 2), bool)
    mask[2:5, 3:9, 0] = True
    padded = imaging.resize_mask(mask, 1, [(1, 2), (3, 4), (0, 0)])
    assert padded.shape == (13, 27, 2) and padded.dtype == bool
    np.testing.assert_array_equal(padded[1:11, 3:23], mask)
    cropped = imaging.resize_mask(mask, 1, None, crop=(1, 2, 5, 6))
    np.testing.assert_array_equal(cropped, mask[1:6, 2:8])
    # scale 2, corner-aligned nearest (scipy zoom): output row i samples input round(i*9/19).
    doubled = imaging.resize_mask(mask, 2, [(0, 0), (0, 0), (0, 0)])
    assert doubled.shape == (20, 40, 2)
    rows = np.where(doubled[:, :, 0].any(axis=1))[0]
    np.testing.assert_array_equal(rows, [i for i in range(20) if 2 <= round(i * 9 / 19) <= 4])


# ---- mini masks / unmold_mask -------------------------------------------------------------


def test_minimize_expand_round_trip():
    mask = np.zeros((32, 40, 2), bool)
    mask[4:12, 6:30, 0] = True   # rectangle fills its box
    mask[20:30, 10:20, 1] = True
    bbox = np.array([[4, 6, 12, 30], [20, 10, 30, 20]])
    mini = imaging.minimize_mask(bbox, mask, (8, 8))
    assert mini.shape == (8, 8, 2) and mini.dtype == bool and mini.all()
    np.testing.assert_array_equal(imaging.expand_mask(bbox, mini, (32, 40, 3)), mask)
    with pytest.raises(ValueError, match="instance 0"):
        imaging.minimize_mask(np.array([[4, 6, 4, 30]]), mask[:, :, :1], (8, 8))


def test_unmold_mask_paste_location():
    mask = np.zeros((28, 28), np.float32)
    mask[:, 14:] = 0.9  # right half on
    full = imaging.unmold_mask(mask, (10, 20, 24, 48), (64, 64, 3))
    assert full.shape == (64, 64) and full.dtype == bool
    expected = np.zeros((64, 64), bool)
    expected[10:24, 34:48] = True  # box is 28 wide: the right 14 columns
    np.testing.assert_array_equal(full, expected)
    assert not imaging.unmold_mask(np.ones((28, 28)), (5, 5, 5, 20), (32, 32)).any()
    assert not imaging.unmold_mask(np.ones((28, 28)), (5, 9, 20, 9), (32, 32)).any()
    # A box poking out of the image is cropped, not an error.
    edge = imaging.unmold_mask(np.ones((28, 28)), (-2, 28, 10, 36), (32, 32))
    assert edge.sum() == 10 * 4 and edge[0:10, 28:32].all()


# ---- molding and meta ---------------------------------------------------------------------


def test_mold_unmold_image():
    config = Config()
    image = np.full((2, 3, 3), 200, np.uint8)
    molded = imaging.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], [76.3, 83.2, 96.1], rtol=1e-5)
    np.testing.assert_array_equal(imaging.unmold_image(molded, config), image)


def test_meta_round_trip_numpy_and_tf():
    meta = imaging.compose_image_meta(7, (100, 200, 3), (256, 256, 3), (64, 0, 192, 256), 1.28,
                                      [1, 0, 1, 1])
    assert meta.shape == (12 + 4,)
    parsed = imaging.parse_image_meta(meta)
    assert parsed["image_id"] == 7 and parsed["scale"] == pytest.approx(1.28)
    np.testing.assert_array_equal(parsed["original_image_shape"], [100, 200, 3])
    np.testing.assert_array_equal(parsed["image_shape"], [256, 256, 3])
    np.testing.assert_array_equal(parsed["window"], [64, 0, 192, 256])
    np.testing.assert_array_equal(parsed["active_class_ids"], [1, 0, 1, 1])

    batch = np.stack([meta, imaging.compose_image_meta(8, (5, 6, 3), (64, 64, 3), (1, 2, 3, 4),
                                                       2.0, [1, 1, 1, 1])])
    parsed_batch = imaging.parse_image_meta(batch)
    np.testing.assert_array_equal(parsed_batch["image_id"], [7, 8])
    assert parsed_batch["window"].shape == (2, 4)
    import tensorflow as tf

    parsed_tf = imaging.parse_image_meta_tf(tf.constant(batch, tf.float32))
    assert set(parsed_tf) == set(parsed_batch)
    for name, value in parsed_batch.items():
        np.testing.assert_allclose(parsed_tf[name].numpy(), value, rtol=1e-6, err_msg=name)


def test_mold_inputs(tiny_config):
    images = [np.full((64, 96), 128, np.uint8), np.zeros((100, 50, 4), np.uint8)]
    molded, metas, windows = imaging.mold_inputs(images, tiny_config)
    assert molded.shape == (2, 128, 128, 3) and molded.dtype == np.float32
    assert metas.shape == (2, tiny_config.IMAGE_META_SIZE)
    # 64x96 grows to at least 128 on its short side but the long one must fit 128: scale 4/3.
    np.testing.assert_array_equal(windows[0], [21, 0, 106, 128])  # 64*4/3 -> 85 rows
    np.testing.assert_array_equal(windows[1], [0, 32, 128, 96])
    parsed = imaging.parse_image_meta(metas)
    np.testing.assert_array_equal(parsed["original_image_shape"], [[64, 96, 3], [100, 50, 3]])
    np.testing.assert_array_equal(parsed["active_class_ids"], np.ones((2, 4)))
    np.testing.assert_allclose(molded[0, 64, 64], 128 - tiny_config.MEAN_PIXEL, rtol=1e-5)


def test_mold_inputs_different_shapes_names_images(tiny_config):
    class Pad(type(tiny_config)):
        IMAGE_RESIZE_MODE = "pad64"
        IMAGE_MIN_DIM = 64

    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8),
              np.zeros((100, 64, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"images \[0, 1\].*images \[2\]"):
        imaging.mold_inputs(images, Pad())
    with pytest.raises(ValueError, match="image 1"):
        imaging.mold_inputs([images[0], np.zeros((4, 4, 5))], tiny_config)


# ---- unmold_detections --------------------------------------------------------------------


def test_unmold_detections_hand_built():
    # Original 100x200 image in a 256x256 molded image: scale 1.28, window (64, 0, 192, 256).
    window = np.array([64, 0, 192, 256])
    image_shape, original = (256, 256, 3), (100, 200, 3)

    def normalized(pixel_box):  # original-image pixel box -> normalized molded coordinates
        y1, x1, y2, x2 = np.array(pixel_box) * 1.28 + [64, 0, 64, 0]
        return [y1 / 255, x1 / 255, (y2 - 1) / 255, (x2 - 1) / 255]

    detections = np.zeros((6, 6), np.float32)
    detections[0] = normalized([10, 20, 60, 120]) + [2, 0.9]
    detections[1] = normalized([30, 30, 30, 80]) + [1, 0.8]  # zero height -> dropped
    detections[2] = normalized([0, 0, 100, 200]) + [3, 0.7]
    detections[4] = normalized([5, 5, 10, 10]) + [1, 0.6]    # after the padding: ignored
    masks = np.zeros((6, 28, 28, 4), np.float32)
    masks[0, :, :, 2] = 1.0
    masks[0, :, :, 1] = 0.0  # wrong class channel stays unused
    masks[2, :14, :, 3] = 1.0  # top half of the whole image

    boxes, class_ids, scores, full, kept = imaging.unmold_detections(
        detections, masks, original, image_shape, window)
    assert boxes.dtype == np.int32 and class_ids.dtype == np.int32
    assert scores.dtype == np.float32 and full.dtype == bool and kept.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[10, 20, 60, 120], [0, 0, 100, 200]])
    np.testing.assert_array_equal(class_ids, [2, 3])
    np.testing.assert_allclose(scores, [0.9, 0.7])
    np.testing.assert_array_equal(kept, [0, 2])
    assert full.shape == (100, 200, 2)
    expected0 = np.zeros((100, 200), bool)
    expected0[10:60, 20:120] = True
    # Zero padding outside the 28x28 mask (matterport's mode="constant") weighs the four corner
    # pixels of this 50x100 box at (1 - 0.22) * (1 - 0.36) = 0.4992 < 0.5: they are off.
    expected0[[10, 10, 59, 59], [20, 119, 20, 119]] = False
    np.testing.assert_array_equal(full[:, :, 0], expected0)
    # matterport resizes with mode="constant" (zeros outside), so a 28 -> 100/200 upsample
    # loses the extreme corner pixels; the interior of the top half is on, the bottom off.
    assert full[1:50, 2:198, 1].all() and not full[50:, :, 1].any()
    np.testing.assert_array_equal(
        full[:, :, 1], imaging.unmold_mask(masks[2, :, :, 3], (0, 0, 100, 200), original))


def test_unmold_detections_empty():
    boxes, class_ids, scores, full, kept = imaging.unmold_detections(
        np.zeros((5, 6)), np.zeros((5, 28, 28, 2)), (30, 40, 3), (64, 64, 3), (12, 0, 52, 64))
    assert boxes.shape == (0, 4) and class_ids.shape == (0,) and scores.shape == (0,)
    assert full.shape == (30, 40, 0) and kept.shape == (0,)


@pytest.mark.parametrize("out_h, out_w", [(28, 28), (14, 7), (27, 3), (60, 90), (100, 45)])
def test_fast_mask_resize_matches_skimage(out_h, out_w):
    # The matrix bilinear resize equals skimage's (matterport's settings) everywhere except where
    # both source coordinates fall beyond the outer pixel centres: scipy's grid-constant corner
    # handling differs there, so that corner block is left out of the comparison.
    mask = np.random.default_rng(1).random((28, 28)).astype(np.float32)
    fast = imaging._bilinear_resize(mask, out_h, out_w)
    reference = imaging._resize(mask, (out_h, out_w))
    src_y = (np.arange(out_h) + 0.5) * 28 / out_h - 0.5
    src_x = (np.arange(out_w) + 0.5) * 28 / out_w - 0.5
    outside_y = (src_y < 0) | (src_y > 27)
    outside_x = (src_x < 0) | (src_x > 27)
    compare = ~(outside_y[:, None] & outside_x[None, :])
    np.testing.assert_allclose(fast[compare], reference[compare], atol=1e-6)
