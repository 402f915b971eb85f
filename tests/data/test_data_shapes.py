"""ShapesDataset: determinism, masks vs pixels and class ids, occlusion, shapes and dtypes."""

import numpy as np
import pytest

from mrcnn.data.shapes import (CLASS_NAMES, MIN_VISIBLE_AREA, ShapesDataset, draw_shape_mask,
                               visible_masks)


def _shapes(count, height=64, width=80, seed=0):
    dataset = ShapesDataset()
    dataset.load_shapes(count, height, width, seed=seed)
    dataset.prepare()
    return dataset


def test_classes_and_images():
    dataset = _shapes(5)
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert dataset.num_images == 5
    image = dataset.load_image(0)
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    masks, class_ids = dataset.load_mask(0)
    assert masks.dtype == bool and masks.shape[:2] == (64, 80)
    assert class_ids.dtype == np.int32 and class_ids.shape == (masks.shape[-1],)


def test_same_seed_same_pixels_and_independent_of_count():
    a, b, longer = _shapes(6, seed=3), _shapes(6, seed=3), _shapes(15, seed=3)
    other = _shapes(6, seed=4)
    for i in range(6):
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        np.testing.assert_array_equal(a.load_image(i), longer.load_image(i))
        np.testing.assert_array_equal(a.load_mask(i)[0], longer.load_mask(i)[0])
        np.testing.assert_array_equal(a.load_mask(i)[1], longer.load_mask(i)[1])
    assert any(not np.array_equal(a.load_image(i), other.load_image(i)) for i in range(6))


def test_masks_match_pixels_class_ids_and_do_not_overlap():
    dataset = _shapes(40, seed=1)
    counts = []
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        counts.append(len(class_ids))
        assert 1 <= len(class_ids) <= 4
        expected_ids = [CLASS_NAMES.index(shape) + 1 for shape, _, _ in info["shapes"]]
        np.testing.assert_array_equal(class_ids, expected_ids)
        # Occlusion: no pixel belongs to two instances; every instance stays visible.
        assert masks.sum(axis=-1).max() <= 1
        assert masks.sum(axis=(0, 1)).min() >= MIN_VISIBLE_AREA
        # Every visible mask pixel has its shape's colour, background pixels the background's.
        for i, (_, colour, _) in enumerate(info["shapes"]):
            assert (image[masks[:, :, i]] == colour).all()
        background = ~masks.any(axis=-1)
        assert (image[background] == info["bg_color"]).all()
    assert set(counts) == {1, 2, 3, 4}  # 40 images reach every count


def test_occlusion_removes_covered_pixels_from_earlier_masks():
    below = draw_shape_mask("square", (20, 20, 8), 40, 40)
    above = draw_shape_mask("circle", (26, 26, 8), 40, 40)
    masks = visible_masks([below, above])
    np.testing.assert_array_equal(masks[:, :, 1], above)
    np.testing.assert_array_equal(masks[:, :, 0], below & ~above)
    assert (below & above).any()


def test_draw_shape_mask_geometry():
    square = draw_shape_mask("square", (10, 12, 4), 30, 30)
    rows, cols = np.where(square)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 14, 8, 16)
    circle = draw_shape_mask("circle", (15, 15, 5), 30, 30)
    assert abs(circle.sum() - np.pi * 25) < 10
    triangle = draw_shape_mask("triangle", (15, 15, 6), 30, 30)
    # Apex up: the top row of the triangle is narrower than the bottom row.
    rows = np.where(triangle.any(axis=1))[0]
    assert triangle[rows[0]].sum() < triangle[rows[-1]].sum()
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        draw_shape_mask("hexagon", (5, 5, 2), 10, 10)


def test_small_images_and_bad_sizes():
    dataset = _shapes(10, height=32, width=32, seed=7)
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.shape[:2] == (32, 32) and len(class_ids) >= 1
    with pytest.raises(ValueError, match="at least 16x16"):
        ShapesDataset().load_shapes(1, 8, 64)
