"""Augmentation: geometric ops keep image and masks aligned to the pixel; colour ops leave masks."""

import json

import numpy as np
import pytest

from mrcnn.boxes import extract_bboxes
from mrcnn.data.augment import Augmentation, parse_augmentation

SIZE = 128


def rectangle_pair(y1, x1, y2, x2, size=SIZE):
    """A black uint8 image with a 255 rectangle and the matching [H, W, 1] mask."""
    image = np.zeros([size, size, 3], dtype=np.uint8)
    image[y1:y2, x1:x2] = 255
    masks = np.zeros([size, size, 1], dtype=bool)
    masks[y1:y2, x1:x2, 0] = True
    return image, masks


def image_region_box(image):
    """Pixel box of the image's bright region (value >= half of 255)."""
    return extract_bboxes((image[:, :, :1] >= 128))[0]


def test_hflip_mirrors_box_exactly():
    image, masks = rectangle_pair(10, 20, 50, 90)
    out_image, out_masks = Augmentation(hflip=1.0).apply(image, masks, np.random.default_rng(0))
    y1, x1, y2, x2 = extract_bboxes(out_masks)[0]
    assert (y1, x1, y2, x2) == (10, SIZE - 90, 50, SIZE - 20)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    assert out_masks.dtype == bool and out_image.dtype == np.uint8


def test_vflip_mirrors_box_exactly():
    image, masks = rectangle_pair(10, 20, 50, 90)
    _, out_masks = Augmentation(hflip=0.0, vflip=1.0).apply(image, masks, np.random.default_rng(0))
    assert tuple(extract_bboxes(out_masks)[0]) == (SIZE - 50, 20, SIZE - 10, 90)


def test_zero_probabilities_are_identity():
    image, masks = rectangle_pair(5, 6, 70, 80)
    out_image, out_masks = Augmentation(hflip=0.0).apply(image, masks, np.random.default_rng(3))
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_masks, masks)


@pytest.mark.parametrize("zoom, rect, expected", [
    # Zoom out 2x about the centre: source [32, 96) -> [48, 80) (hand-computed sample points).
    (0.5, (32, 32, 96, 96), (48, 48, 80, 80)),
    # Zoom in 2x: source [56, 72) -> [48, 80); everything else leaves the frame.
    (2.0, (56, 56, 72, 72), (48, 48, 80, 80)),
])
def test_fixed_zoom_hand_computed(zoom, rect, expected):
    image, masks = rectangle_pair(*rect)
    augmentation = Augmentation(hflip=0.0, scale_range=(zoom, zoom))
    out_image, out_masks = augmentation.apply(image, masks, np.random.default_rng(0))
    assert tuple(extract_bboxes(out_masks)[0]) == expected
    assert tuple(image_region_box(out_image)) == expected


@pytest.mark.parametrize("seed", range(8))
def test_random_geometry_keeps_mask_on_image_region(seed):
    rng = np.random.default_rng(seed)
    y1, x1 = rng.integers(10, 60, size=2)
    image, masks = rectangle_pair(y1, x1, y1 + rng.integers(8, 50), x1 + rng.integers(8, 50))
    augmentation = Augmentation(hflip=0.5, vflip=0.5, scale_range=(0.7, 1.3), crop=0.2)
    out_image, out_masks = augmentation.apply(image, masks, rng)
    assert out_image.shape == image.shape and out_masks.shape == masks.shape
    if out_masks.any():
        assert tuple(extract_bboxes(out_masks)[0]) == tuple(image_region_box(out_image))
        # Same "bilinear value >= half" rule on both, so the regions agree pixel for pixel.
        np.testing.assert_array_equal(out_masks[:, :, 0], out_image[:, :, 0] >= 128)


def test_same_seed_same_result_and_many_masks():
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, size=[64, 80, 3], dtype=np.uint8)
    masks = rng.random([64, 80, 40]) > 0.7  # more than one chunk of masks
    augmentation = Augmentation(hflip=0.5, scale_range=(0.8, 1.2), crop=0.1, brightness=0.1,
                                contrast=0.2)
    first = augmentation.apply(image, masks, np.random.default_rng(5))
    second = augmentation.apply(image, masks, np.random.default_rng(5))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[1].shape == (64, 80, 40)


def test_colour_ops_leave_masks_alone():
    image, masks = rectangle_pair(20, 20, 60, 60)
    image[:] = 100
    augmentation = Augmentation(hflip=0.0, brightness=0.3, contrast=0.5)
    changed = 0
    for seed in range(5):
        out_image, out_masks = augmentation.apply(image, masks, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_masks, masks)
        assert out_image.dtype == np.uint8
        changed += int(not np.array_equal(out_image, image))
    assert changed == 5


def test_brightness_shift_clips_to_uint8_range():
    image = np.full([8, 8, 3], 250, dtype=np.uint8)
    out, _ = Augmentation(hflip=0.0, brightness=1.0).apply(image, np.zeros([8, 8, 0], bool),
                                                           np.random.default_rng(1))
    assert out.min() >= 0 and out.max() <= 255
    assert len(np.unique(out)) == 1  # a uniform shift of a uniform image


def test_zero_instances():
    image = np.zeros([32, 32, 3], dtype=np.uint8)
    masks = np.zeros([32, 32, 0], dtype=bool)
    augmentation = Augmentation(hflip=1.0, scale_range=(0.9, 1.1), crop=0.1)
    _, out_masks = augmentation.apply(image, masks, np.random.default_rng(0))
    assert out_masks.shape == (32, 32, 0)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="same height and width"):
        Augmentation().apply(np.zeros([8, 8, 3]), np.zeros([9, 8, 1], bool))


# -- parsing and serialising ----------------------------------------------------------------


def test_parse_bare_hflip_turns_only_hflip_on():
    augmentation = parse_augmentation("hflip")
    assert augmentation == Augmentation(hflip=0.5, vflip=0.0)


def test_parse_full_string():
    augmentation = parse_augmentation("hflip=0.3, vflip, scale=0.8-1.2,crop=0.1,"
                                      "brightness=0.1,contrast=0.2")
    assert augmentation == Augmentation(hflip=0.3, vflip=0.5, scale_range=(0.8, 1.2), crop=0.1,
                                        brightness=0.1, contrast=0.2)


@pytest.mark.parametrize("text", ["", "none", "  None "])
def test_parse_none(text):
    assert parse_augmentation(text) is None


@pytest.mark.parametrize("text, token", [
    ("hflip,flip", "flip"),
    ("scale=0.8", "scale=0.8"),
    ("hflip,brightness=abc", "brightness=abc"),
    ("contrast", "contrast"),
])
def test_parse_errors_name_the_token(text, token):
    with pytest.raises(ValueError, match=f"bad token '{token}'"):
        parse_augmentation(text)


@pytest.mark.parametrize("text, field", [
    ("hflip=2", "hflip"), ("scale=1.2-0.8", "scale_range"), ("crop=0.6", "crop"),
    ("brightness=-0.1", "brightness"),
])
def test_parse_out_of_range_names_the_field(text, field):
    with pytest.raises(ValueError, match=f"Augmentation.{field}"):
        parse_augmentation(text)


def test_dict_json_and_text_round_trip():
    augmentation = Augmentation(hflip=0.5, vflip=0.25, scale_range=(0.8, 1.2), crop=0.1,
                                brightness=0.1, contrast=0.2)
    restored = Augmentation.from_dict(json.loads(json.dumps(augmentation.to_dict())))
    assert restored == augmentation
    assert parse_augmentation(augmentation.to_text()) == augmentation
    assert Augmentation(hflip=0.0).to_text() == "none"


def test_from_dict_unknown_key():
    with pytest.raises(ValueError, match="unknown key.*rotate"):
        Augmentation.from_dict({"hflip": 0.5, "rotate": 10})
