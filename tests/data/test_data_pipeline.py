"""Training inputs: load_image_gt, build_training_inputs and the tf.data pipeline."""

import numpy as np
import pytest

from mrcnn.anchors import get_anchors_pixels
from mrcnn.boxes import apply_box_deltas, compute_overlaps, extract_bboxes
from mrcnn.data.augment import Augmentation
from mrcnn.data.dataset import Dataset
from mrcnn.data.pipeline import (INPUT_NAMES, ImageGT, build_training_inputs, element_spec,
                                 load_image_gt, make_dataset)
from mrcnn.data.shapes import ShapesDataset
from mrcnn.imaging import expand_mask, parse_image_meta
from mrcnn.targets import NEUTRAL, POSITIVE


def derived_config(base, **overrides):
    """A new ``type(base)`` instance with class attributes overridden (derived values redone)."""
    return type("DerivedConfig", (type(base),), overrides)()


class ArrayDataset(Dataset):
    """Images and masks given as arrays (full control over instance counts and crowds)."""

    def __init__(self):
        super().__init__()
        for class_id in (1, 2, 3):
            self.add_class("arrays", class_id, f"class{class_id}")

    def add_array(self, image, masks, class_ids):
        self.add_image("arrays", image_id=len(self.image_info), path=None, image=image,
                       masks=masks, class_ids=np.asarray(class_ids, dtype=np.int32))

    def image_reference(self, image_id):
        return f"array image {image_id}"

    def load_image(self, image_id):
        return self.image_info[image_id]["image"]

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return info["masks"], info["class_ids"]


def grid_of_squares(count, size=128, side=10, step=12):
    """(image, masks, class ids) with ``count`` separate squares on a grid."""
    image = np.zeros([size, size, 3], dtype=np.uint8)
    masks = np.zeros([size, size, count], dtype=bool)
    per_row = size // step
    for i in range(count):
        y, x = (i // per_row) * step, (i % per_row) * step
        masks[y:y + side, x:x + side, i] = True
        image[y:y + side, x:x + side] = 40 + 5 * i
    class_ids = (np.arange(count) % 3) + 1
    return image, masks, class_ids


@pytest.fixture(scope="module")
def shapes():
    """Eight 96x128 shape images (padded to 128 square: exercises the window)."""
    dataset = ShapesDataset()
    dataset.load_shapes(8, 96, 128, seed=3)
    dataset.prepare()
    return dataset


# -- load_image_gt --------------------------------------------------------------------------


def test_load_image_gt_shapes_dtypes_and_meta(tiny_config, shapes):
    gt = load_image_gt(shapes, tiny_config, 2, rng=np.random.default_rng(0))
    assert isinstance(gt, ImageGT)
    count = len(shapes.load_mask(2)[1])
    assert gt.image.shape == (128, 128, 3) and gt.image.dtype == np.uint8
    assert gt.image_meta.shape == (tiny_config.IMAGE_META_SIZE,)
    assert gt.class_ids.shape == (count,) and gt.class_ids.dtype == np.int32
    assert gt.boxes.shape == (count, 4) and gt.boxes.dtype == np.int32
    assert gt.masks.shape == (28, 28, count) and gt.masks.dtype == bool
    meta = parse_image_meta(gt.image_meta)
    assert meta["image_id"] == 2
    assert tuple(meta["original_image_shape"]) == (96, 128, 3)
    assert tuple(meta["window"]) == (16, 0, 112, 128)  # 32 rows of padding split evenly
    np.testing.assert_array_equal(meta["active_class_ids"], [1, 1, 1, 1])


def test_boxes_match_full_masks_and_mini_masks_expand_back(tiny_config, shapes):
    full_config = derived_config(tiny_config, USE_MINI_MASK=False)
    for image_id in shapes.image_ids:
        full = load_image_gt(shapes, full_config, image_id, rng=np.random.default_rng(0))
        mini = load_image_gt(shapes, tiny_config, image_id, rng=np.random.default_rng(0))
        assert full.masks.shape[:2] == (128, 128)
        np.testing.assert_array_equal(full.boxes, extract_bboxes(full.masks))
        np.testing.assert_array_equal(mini.boxes, full.boxes)
        np.testing.assert_array_equal(mini.class_ids, full.class_ids)
        expanded = expand_mask(mini.boxes, mini.masks, mini.image.shape)
        for i in range(full.masks.shape[-1]):
            a, b = expanded[:, :, i], full.masks[:, :, i]
            assert (a & b).sum() / (a | b).sum() >= 0.9, (image_id, i)


def test_masks_follow_resized_image(tiny_config):
    # A 64x64 image is scaled 2x into 128x128: the coloured square and its mask stay together.
    image = np.zeros([64, 64, 3], dtype=np.uint8)
    image[10:20, 30:50] = 200
    masks = np.zeros([64, 64, 1], dtype=bool)
    masks[10:20, 30:50, 0] = True
    dataset = ArrayDataset()
    dataset.add_array(image, masks, [2])
    dataset.prepare()
    gt = load_image_gt(dataset, derived_config(tiny_config, USE_MINI_MASK=False), 0)
    assert tuple(gt.boxes[0]) == (20, 60, 40, 100)
    assert tuple(extract_bboxes(gt.image[:, :, :1] > 100)[0]) == (20, 60, 40, 100)


def test_zero_instance_image(tiny_config):
    dataset = ArrayDataset()
    dataset.add_array(np.full([128, 128, 3], 90, np.uint8), np.zeros([128, 128, 0], bool), [])
    dataset.prepare()
    gt = load_image_gt(dataset, tiny_config, 0, augmentation=Augmentation(hflip=1.0))
    assert gt.class_ids.shape == (0,) and gt.boxes.shape == (0, 4)
    assert gt.masks.shape == (28, 28, 0)
    inputs = build_training_inputs(dataset, tiny_config, 0, rng=np.random.default_rng(0))
    assert not inputs["input_gt_class_ids"].any() and not inputs["input_gt_masks"].any()
    rpn_match = inputs["input_rpn_match"][:, 0]
    assert not (rpn_match == POSITIVE).any()
    assert (rpn_match != NEUTRAL).sum() == tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE


def test_instances_that_vanish_are_dropped(tiny_config):
    # Crop mode keeps a 64x64 window: a centre square always survives, a corner one rarely.
    image = np.zeros([128, 128, 3], dtype=np.uint8)
    masks = np.zeros([128, 128, 2], dtype=bool)
    masks[60:68, 60:68, 0] = True
    masks[0:8, 0:8, 1] = True
    dataset = ArrayDataset()
    dataset.add_array(image, masks, [1, 2])
    dataset.prepare()
    config = derived_config(tiny_config, IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64)
    seen = set()
    for seed in range(10):
        gt = load_image_gt(dataset, config, 0, rng=np.random.default_rng(seed))
        assert gt.class_ids[0] == 1 and gt.masks.shape[-1] == len(gt.class_ids)
        seen.add(len(gt.class_ids))
    assert 1 in seen


def test_crop_mode_crops_image_and_masks_together(tiny_config, shapes):
    config = derived_config(tiny_config, IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64,
                            USE_MINI_MASK=False)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=[96, 128, 3], dtype=np.uint8)  # every crop is unique
    masks = np.zeros([96, 128, 2], dtype=bool)
    masks[20:60, 30:90, 0] = True
    masks[50:90, 70:120, 1] = True
    dataset = ArrayDataset()
    dataset.add_array(noise, masks, [1, 3])
    dataset.prepare()
    for seed in range(4):
        gt = load_image_gt(dataset, config, 0, rng=np.random.default_rng(seed))
        assert gt.image.shape == (64, 64, 3)
        offsets = [(y, x) for y in range(96 - 63) for x in range(128 - 63)
                   if np.array_equal(noise[y:y + 64, x:x + 64], gt.image)]
        assert len(offsets) == 1
        y, x = offsets[0]
        cropped = masks[y:y + 64, x:x + 64]
        kept = cropped.any(axis=(0, 1))
        np.testing.assert_array_equal(gt.masks, cropped[:, :, kept])
        np.testing.assert_array_equal(gt.class_ids, np.array([1, 3])[kept])
    same = [load_image_gt(dataset, config, 0, rng=np.random.default_rng(1)).image for _ in "ab"]
    np.testing.assert_array_equal(*same)


def test_hflip_augmentation_mirrors_boxes(tiny_config, shapes):
    config = derived_config(tiny_config, USE_MINI_MASK=False)
    plain = load_image_gt(shapes, config, 4, rng=np.random.default_rng(0))
    flipped = load_image_gt(shapes, config, 4, augmentation=Augmentation(hflip=1.0),
                            rng=np.random.default_rng(0))
    width = plain.image.shape[1]
    np.testing.assert_array_equal(flipped.boxes[:, [0, 2]], plain.boxes[:, [0, 2]])
    np.testing.assert_array_equal(flipped.boxes[:, 1], width - plain.boxes[:, 3])
    np.testing.assert_array_equal(flipped.boxes[:, 3], width - plain.boxes[:, 1])
    np.testing.assert_array_equal(flipped.image, plain.image[:, ::-1])


def test_bad_mask_shape_is_reported(tiny_config):
    dataset = ArrayDataset()
    dataset.add_array(np.zeros([64, 64, 3], np.uint8), np.zeros([64, 60, 1], bool), [1])
    dataset.prepare()
    with pytest.raises(ValueError, match=r"load_mask of image 0.*\(64, 64\)"):
        load_image_gt(dataset, tiny_config, 0)


# -- build_training_inputs ------------------------------------------------------------------


def test_build_training_inputs_rpn_targets(tiny_config, shapes):
    inputs = build_training_inputs(shapes, tiny_config, 1, rng=np.random.default_rng(0))
    spec = element_spec(tiny_config)
    for name in INPUT_NAMES:
        assert inputs[name].shape == tuple(spec[name].shape), name
        assert inputs[name].dtype == spec[name].dtype.as_numpy_dtype, name
    rpn_match = inputs["input_rpn_match"][:, 0]
    assert (rpn_match != NEUTRAL).sum() == tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE

    anchors = get_anchors_pixels(tiny_config, (128, 128, 3))
    positive = np.flatnonzero(rpn_match == POSITIVE)
    assert len(positive) > 0
    deltas = inputs["input_rpn_bbox"][:len(positive)] * tiny_config.RPN_BBOX_STD_DEV
    decoded = apply_box_deltas(anchors[positive], deltas)
    count = int((inputs["input_gt_class_ids"] > 0).sum())
    gt_boxes = inputs["input_gt_boxes"][:count]
    best = compute_overlaps(anchors[positive], gt_boxes).argmax(axis=1)
    np.testing.assert_allclose(decoded, gt_boxes[best], atol=1e-3)
    assert not inputs["input_rpn_bbox"][len(positive):].any()

    # Molded image = resized image minus the mean pixel.
    gt = load_image_gt(shapes, tiny_config, 1, rng=np.random.default_rng(0))
    np.testing.assert_allclose(inputs["input_image"] + tiny_config.MEAN_PIXEL, gt.image,
                               atol=1e-4)


def test_more_instances_than_max_gt_are_subsampled(tiny_config):
    image, masks, class_ids = grid_of_squares(25)
    dataset = ArrayDataset()
    dataset.add_array(image, masks, class_ids)
    dataset.prepare()
    config = derived_config(tiny_config, USE_MINI_MASK=False)
    assert len(load_image_gt(dataset, config, 0).class_ids) == 25
    inputs = build_training_inputs(dataset, config, 0, rng=np.random.default_rng(0))
    gt_boxes, gt_masks = inputs["input_gt_boxes"], inputs["input_gt_masks"]
    assert (inputs["input_gt_class_ids"] > 0).all()  # all 20 slots used
    all_boxes = extract_bboxes(masks)
    rows = [int(np.flatnonzero((all_boxes == box).all(axis=1))[0]) for box in gt_boxes]
    assert len(set(rows)) == tiny_config.MAX_GT_INSTANCES
    np.testing.assert_array_equal(inputs["input_gt_class_ids"], class_ids[rows])
    np.testing.assert_array_equal(gt_masks, masks[:, :, rows])


def test_padding_rows_are_zero(tiny_config, shapes):
    inputs = build_training_inputs(shapes, tiny_config, 0, rng=np.random.default_rng(0))
    count = len(shapes.load_mask(0)[1])
    assert (inputs["input_gt_class_ids"][:count] > 0).all()
    assert not inputs["input_gt_class_ids"][count:].any()
    assert not inputs["input_gt_boxes"][count:].any()
    assert not inputs["input_gt_masks"][:, :, count:].any()
    assert inputs["input_gt_masks"][:, :, :count].any(axis=(0, 1)).all()


# -- make_dataset ---------------------------------------------------------------------------


def first_batch(dataset):
    return {name: value.numpy() for name, value in next(iter(dataset)).items()}


def test_make_dataset_matches_element_spec(tiny_config, shapes):
    data = make_dataset(shapes, tiny_config, batch_size=2, seed=1)
    expected = element_spec(tiny_config, batch_size=2)
    assert set(data.element_spec) == set(INPUT_NAMES)
    for name in INPUT_NAMES:
        assert data.element_spec[name].shape == expected[name].shape, name
        assert data.element_spec[name].dtype == expected[name].dtype, name
    batch = first_batch(data)
    for name in INPUT_NAMES:
        assert batch[name].shape == tuple(expected[name].shape), name
        assert batch[name].dtype == expected[name].dtype.as_numpy_dtype, name


def test_element_spec_variants(tiny_config):
    full = element_spec(derived_config(tiny_config, USE_MINI_MASK=False))
    assert tuple(full["input_gt_masks"].shape) == (128, 128, tiny_config.MAX_GT_INSTANCES)
    dynamic = element_spec(derived_config(tiny_config, IMAGE_RESIZE_MODE="pad64"), batch_size=1)
    assert tuple(dynamic["input_image"].shape) == (1, None, None, 3)
    assert tuple(dynamic["input_rpn_match"].shape) == (1, None, 1)
    crop = element_spec(derived_config(tiny_config, IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64))
    assert tuple(crop["input_image"].shape) == (64, 64, 3)
    assert crop["input_rpn_match"].shape[0] == len(get_anchors_pixels(tiny_config, (64, 64)))


def test_make_dataset_is_deterministic(tiny_config, shapes):
    augmentation = Augmentation(hflip=0.5, scale_range=(0.8, 1.2), brightness=0.1)
    batches = [first_batch(make_dataset(shapes, tiny_config, batch_size=2, seed=5,
                                        augmentation=augmentation, num_parallel_calls=2))
               for _ in range(2)]
    for name in INPUT_NAMES:
        np.testing.assert_array_equal(batches[0][name], batches[1][name], err_msg=name)
    other = first_batch(make_dataset(shapes, tiny_config, batch_size=2, seed=6,
                                     augmentation=augmentation))
    assert not np.array_equal(other["input_image"], batches[0]["input_image"])


def test_make_dataset_one_epoch_in_order(tiny_config, shapes):
    config = derived_config(tiny_config, IMAGES_PER_GPU=3)
    batches = list(make_dataset(shapes, config, shuffle=False, repeat=False))
    assert len(batches) == 2  # 8 images, batches of 3, remainder dropped
    ids = np.concatenate([b["input_image_meta"].numpy()[:, 0] for b in batches])
    np.testing.assert_array_equal(ids, np.arange(6))


def test_skip_crowd_only(tiny_config):
    image, masks, class_ids = grid_of_squares(2)
    dataset = ArrayDataset()
    dataset.add_array(image, masks, -class_ids)  # crowd regions only
    dataset.add_array(image, masks, class_ids)
    dataset.prepare()
    kept = list(make_dataset(dataset, tiny_config, shuffle=False, repeat=False, batch_size=1))
    assert [int(b["input_image_meta"][0, 0]) for b in kept] == [1]
    every = list(make_dataset(dataset, tiny_config, shuffle=False, repeat=False, batch_size=1,
                              skip_crowd_only=False))
    assert len(every) == 2
    np.testing.assert_array_equal(every[0]["input_gt_class_ids"][0, :2], -class_ids)


def test_bad_image_file_names_the_file(tiny_config, tmp_path):
    import tensorflow as tf

    broken = tmp_path / "broken_image.png"
    broken.write_bytes(b"this is not a png")
    dataset = Dataset()
    dataset.add_class("files", 1, "thing")
    dataset.add_image("files", image_id="x", path=str(broken), height=64, width=64)
    dataset.prepare()
    with pytest.raises(tf.errors.OpError, match="broken_image.png") as error:
        next(iter(make_dataset(dataset, tiny_config, batch_size=1)))
    # The base Dataset has no image_reference, so the path stands in for it.
    assert f"training image 0 ({broken})" in str(error.value)
