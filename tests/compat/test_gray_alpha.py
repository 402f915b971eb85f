"""Gray+alpha (2-channel) images: luminance to RGB, alpha dropped, in every image reader."""

import numpy as np
import pytest
from png_writer import write_png

from mrcnn import imaging
from mrcnn.cli import read_image
from mrcnn.data.dataset import Dataset, _to_rgb_uint8, read_image_rgb, to_rgb_uint8


def gray_alpha(dtype, seed=0):
    """[9, 11, 2] gray + alpha (the model takes 8 px a side and up) with every alpha value different from the gray."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    gray = rng.integers(0, top + 1, (9, 11)).astype(dtype)
    alpha = (top - gray).astype(dtype)
    return np.stack([gray, alpha], axis=-1)


def test_in_memory_8bit_gray_alpha_becomes_gray_rgb():
    image = gray_alpha(np.uint8)
    expected = np.repeat(image[:, :, :1], 3, axis=-1)
    for convert in (imaging.to_model_channels, to_rgb_uint8, lambda x: _to_rgb_uint8(x, "x")):
        out = convert(image)
        assert out.shape == (9, 11, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(imaging.to_model_channels(image, channels=1), image[:, :, :1])


def test_in_memory_16bit_gray_alpha_scales_by_257():
    image = gray_alpha(np.uint16)
    out = imaging.to_model_channels(image)
    assert out.dtype == np.float32 and out.shape == (9, 11, 3)
    np.testing.assert_allclose(out, np.repeat(image[:, :, :1] / 257.0, 3, axis=-1), rtol=1e-6)
    expected = np.round(image[:, :, 0] / 257.0).astype(np.uint8)
    for out in (to_rgb_uint8(image), _to_rgb_uint8(image, "x")):
        np.testing.assert_array_equal(out, np.repeat(expected[:, :, None], 3, axis=-1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_files_through_every_reader(tmp_path, dtype):
    image = gray_alpha(dtype, seed=1)
    path = tmp_path / f"gray_alpha_{np.dtype(dtype).itemsize * 8}.png"
    write_png(path, image)
    dataset = Dataset()
    dataset.add_image("files", image_id="a", path=str(path))
    dataset.prepare()
    readers = {"read_image_rgb": lambda: read_image_rgb(str(path)),
               "Dataset.load_image": lambda: dataset.load_image(0),
               "cli read_image": lambda: read_image(path)}
    gray = image[:, :, 0].astype(np.float64) / (257.0 if dtype == np.uint16 else 1.0)
    for name, read in readers.items():
        out = read()
        assert out.shape == (9, 11, 3) and out.dtype == np.uint8, name
        np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1], err_msg=name)
        np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2], err_msg=name)
        if dtype == np.uint8:
            np.testing.assert_array_equal(out[:, :, 0], image[:, :, 0], err_msg=name)
        else:
            # Pillow decodes 16-bit colour PNGs to 8 bits by their high byte: within 1 of v/257.
            assert np.max(np.abs(out[:, :, 0] - gray)) <= 1.0, name
        # The alpha plane (255 - gray) must not leak into any channel.
        assert not np.array_equal(out[:, :, 0], 255 - out[:, :, 0])
