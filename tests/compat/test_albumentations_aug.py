"""albumentations pipelines as training augmentation: image and masks moved alike, seeded,
loaded from "module:attribute" or a saved JSON / YAML, refused for imgaug with a porting hint."""


import albumentations as A
import numpy as np
import pytest

from mrcnn.data.albumentations_aug import (AlbumentationsAugmentation, as_augmentation,
                                           load_albumentations)
from mrcnn.data.augment import Augmentation
from mrcnn.data.pipeline import load_image_gt, make_dataset
from mrcnn.data.dataset import Dataset


def image_and_masks(seed=0, count=3, shape=(32, 40)):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    masks = np.zeros(shape + (count,), bool)
    for i in range(count):
        y, x = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        masks[y:y + 6, x:x + 7, i] = True
    return image, masks


def test_horizontal_flip_moves_image_and_masks_alike():
    image, masks = image_and_masks()
    augmentation = as_augmentation(A.HorizontalFlip(p=1.0))  # a bare transform is wrapped
    assert isinstance(augmentation, AlbumentationsAugmentation)
    out_image, out_masks = augmentation.apply(image, masks, np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    assert out_image.dtype == np.uint8 and out_masks.dtype == bool


def test_pixel_transforms_leave_masks_alone_and_seeds_repeat():
    image, masks = image_and_masks(1)
    augmentation = as_augmentation(A.Compose([A.RandomBrightnessContrast(p=1.0),
                                              A.HorizontalFlip(p=0.5)]))
    runs = [augmentation.apply(image, masks, np.random.default_rng(seed)) for seed in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], image)
    for out_image, out_masks in runs:  # masks only ever flipped, never recoloured
        assert (np.array_equal(out_masks, masks) or np.array_equal(out_masks, masks[:, ::-1]))


def test_zero_instances_and_size_changes():
    image, masks = image_and_masks(count=0)
    out_image, out_masks = as_augmentation(A.HorizontalFlip(p=1.0)).apply(image, masks)
    assert out_masks.shape == (32, 40, 0)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    with pytest.raises(ValueError, match=r"changed the image shape from \(32, 40, 3\) to "
                                         r"\(16, 16, 3\)"):
        as_augmentation(A.CenterCrop(16, 16)).apply(*image_and_masks())


def test_project_spec_passes_through_and_imgaug_is_refused():
    spec = Augmentation(hflip=1.0)
    assert as_augmentation(spec) is spec and as_augmentation(None) is None
    fake_imgaug = type("Fliplr", (), {"__module__": "imgaug.augmenters.flip"})()
    with pytest.raises(TypeError, match=r"imgaug .* A\.HorizontalFlip\(p=0\.5\)"):
        as_augmentation(fake_imgaug)
    with pytest.raises(TypeError, match="expected None, an mrcnn.data.augment.Augmentation"):
        as_augmentation("hflip")


def test_load_from_module_attribute_and_saved_files(tmp_path):
    image, masks = image_and_masks(2)
    flip = load_albumentations("albumentations_pipelines:FLIP")
    np.testing.assert_array_equal(flip.apply(image, masks)[0], image[:, ::-1])
    vertical = load_albumentations("albumentations_pipelines:make_vertical_flip")
    np.testing.assert_array_equal(vertical.apply(image, masks)[1], masks[::-1])
    for suffix, data_format in ((".json", "json"), (".yaml", "yaml")):
        path = tmp_path / f"pipeline{suffix}"
        A.save(A.Compose([A.VerticalFlip(p=1.0)]), str(path), data_format=data_format)
        np.testing.assert_array_equal(load_albumentations(str(path)).apply(image, masks)[0],
                                      image[::-1])
    with pytest.raises(ValueError, match="does not exist"):
        load_albumentations(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="albumentations.save"):
        load_albumentations(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="module:attribute"):
        load_albumentations("just_a_name")
    with pytest.raises(ValueError, match="no_such_module"):
        load_albumentations("no_such_module:X")
    with pytest.raises(TypeError, match="got int"):
        load_albumentations("albumentations_pipelines:NOT_A_PIPELINE")


class TwoSources(Dataset):
    """One asymmetric image per source ("synthetic" and "real")."""

    def __init__(self):
        super().__init__()
        for source in ("synthetic", "real"):
            self.add_class(source, 1, "thing")
            image = np.zeros((128, 128, 3), np.uint8)
            image[10:30, 5:25] = 200
            masks = np.zeros((128, 128, 1), bool)
            masks[10:30, 5:25, 0] = True
            self.add_image(source, image_id=source, path=None, image=image, masks=masks)

    def load_image(self, image_id):
        return self.image_info[image_id]["image"]

    def load_mask(self, image_id):
        return self.image_info[image_id]["masks"], np.array([1], np.int32)


def test_pipeline_augments_all_but_the_no_augmentation_sources(tiny_config):
    dataset = TwoSources()
    dataset.prepare()
    flip = as_augmentation(A.HorizontalFlip(p=1.0))
    gt = load_image_gt(dataset, tiny_config, 0, augmentation=flip)
    np.testing.assert_array_equal(gt.boxes, [[10, 103, 30, 123]])  # x mirrored: 128 - 25 .. 128 - 5
    data = make_dataset(dataset, tiny_config, shuffle=False, augmentation=flip, repeat=False,
                        batch_size=1, no_augmentation_sources=["real"])
    boxes = [batch["input_gt_boxes"].numpy()[0, 0] for batch in data]
    np.testing.assert_array_equal(boxes, [[10, 103, 30, 123], [10, 5, 30, 25]])


def test_ported_nucleus_pipeline_from_the_readme_runs_and_keeps_masks_aligned():
    """matterport's samples/nucleus imgaug pipeline, ported as the README shows."""
    augmentation = A.Compose([
        A.SomeOf([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0),
                  A.OneOf([A.Affine(rotate=90, p=1.0), A.Affine(rotate=180, p=1.0),
                           A.Affine(rotate=270, p=1.0)], p=1.0),
                  A.MultiplicativeNoise(multiplier=(0.8, 1.5), per_channel=False,
                                        elementwise=False, p=1.0),
                  A.GaussianBlur(sigma_limit=(0.1, 5.0), p=1.0)], n=2, p=1.0),
    ])
    image = np.zeros((48, 48, 3), np.uint8)
    masks = np.zeros((48, 48, 2), bool)
    masks[5:15, 8:20, 0] = True
    masks[30:44, 25:31, 1] = True
    image[masks[..., 0]] = 250
    image[masks[..., 1]] = 40  # dim: stays below half the bright one after any noise
    wrapped = as_augmentation(augmentation)
    for seed in range(8):
        out_image, out_masks = wrapped.apply(image, masks, np.random.default_rng(seed))
        assert out_image.shape == image.shape and out_masks.shape == masks.shape
        assert out_masks.sum(axis=(0, 1)).tolist() == [120, 84]  # flips/rotations keep areas
        # Geometry moved image and masks alike: the bright object (above half the brightest
        # value; blur and noise change values, not where they are) is centred on its mask.
        bright = out_image[..., 0] > out_image[..., 0].max() / 2
        centre = np.argwhere(bright).mean(axis=0)
        np.testing.assert_allclose(centre, np.argwhere(out_masks[..., 0]).mean(axis=0), atol=1.5)
