"""import mrcnn.model as modellib: matterport's module functions, against the project's own
functions and hand-computed values (no Keras model is built here)."""

import math
import os

import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import imaging, modellib_compat
from mrcnn.anchors import get_anchors_pixels
from mrcnn.data.pipeline import INPUT_NAMES, build_training_inputs, element_spec
from mrcnn.data.pipeline import load_image_gt as project_load_image_gt
from mrcnn.data.shapes import ShapesDataset
from mrcnn.targets import build_rpn_targets as project_build_rpn_targets

MODELLIB_NAMES = ("MaskRCNN load_image_gt build_rpn_targets data_generator mold_image "
                  "unmold_image compose_image_meta parse_image_meta parse_image_meta_graph "
                  "norm_boxes_graph denorm_boxes_graph compute_backbone_shapes log").split()
METHODS = ("find_last set_log_dir get_imagenet_weights compile set_trainable mold_inputs "
           "unmold_detections detect_molded get_anchors run_graph ancestor find_trainable_layer "
           "get_trainable_layers train detect load_weights").split()


@pytest.fixture(scope="module")
def shapes():
    dataset = ShapesDataset()
    dataset.load_shapes(4, 96, 128, seed=5)
    dataset.prepare()
    return dataset


def test_names_exist():
    assert [n for n in MODELLIB_NAMES if not hasattr(modellib, n)] == []
    assert [n for n in METHODS if not callable(getattr(modellib.MaskRCNN, n, None))] == []


def test_log_prints_shape_min_max_dtype(capsys):
    modellib.log("image", np.array([[1.5, -2.0], [3.0, 0.0]], np.float32))
    modellib.log("empty", np.zeros((0, 4)))
    modellib.log("just text")
    lines = capsys.readouterr().out.splitlines()
    # matterport's layout: name in 25 columns, shape in 20, min / max in 10 with 5 decimals.
    assert lines[0] == ("image".ljust(25) + "shape: " + "(2, 2)".ljust(20) + "  "
                        + "min:   -2.00000  max:    3.00000  float32")
    assert lines[1].startswith("empty".ljust(25) + "shape: (0, 4)") and "float64" in lines[1]
    assert lines[2] == "just text"


def test_compute_backbone_shapes_is_ceil_of_strides(tiny_config):
    shapes = modellib.compute_backbone_shapes(tiny_config, (128, 96, 3))
    expected = [[math.ceil(128 / s), math.ceil(96 / s)] for s in tiny_config.BACKBONE_STRIDES]
    np.testing.assert_array_equal(shapes, expected)


@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_load_image_gt_positional_and_keyword_forms(tiny_config, shapes, use_mini_mask):
    keyword = modellib.load_image_gt(shapes, tiny_config, 1, use_mini_mask=use_mini_mask)
    positional = modellib.load_image_gt(shapes, tiny_config, 1, False, None, use_mini_mask)
    image, image_meta, class_ids, bbox, mask = keyword
    config = tiny_config
    config.USE_MINI_MASK = use_mini_mask
    project = project_load_image_gt(shapes, config, 1)
    for mine, other, theirs in zip(keyword, positional, project):
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(other, theirs)
    expected_mask_shape = (tuple(tiny_config.MINI_MASK_SHAPE) if use_mini_mask
                           else image.shape[:2]) + (len(class_ids),)
    assert mask.shape == expected_mask_shape and mask.dtype == bool
    assert image.shape == (128, 128, 3) and bbox.dtype == np.int32
    if not use_mini_mask:  # boxes enclose the full-size masks exactly
        for i, (y1, x1, y2, x2) in enumerate(bbox):
            rows, cols = np.flatnonzero(mask[..., i].any(1)), np.flatnonzero(mask[..., i].any(0))
            assert (y1, x1, y2, x2) == (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)


def test_load_image_gt_augment_flag_flips_some_images(tiny_config, shapes):
    with pytest.warns(DeprecationWarning, match="augment"):
        flips = [modellib.load_image_gt(shapes, tiny_config, 0, augment=True)[0] for _ in range(12)]
    plain = modellib.load_image_gt(shapes, tiny_config, 0)[0]
    mirrored = sum(np.array_equal(f, plain[:, ::-1]) for f in flips)
    unchanged = sum(np.array_equal(f, plain) for f in flips)
    assert mirrored + unchanged == 12 and mirrored > 0 and unchanged > 0


def test_build_rpn_targets_matterport_signature(tiny_config, shapes):
    image, _, class_ids, boxes, _ = modellib.load_image_gt(shapes, tiny_config, 2)
    anchors = get_anchors_pixels(tiny_config, image.shape)
    tiny_config.RPN_TRAIN_ANCHORS_PER_IMAGE = 2 * len(anchors)  # no random subsampling
    match, bbox = modellib.build_rpn_targets(image.shape, anchors, class_ids, boxes, tiny_config)
    expected_match, expected_bbox = project_build_rpn_targets(anchors, class_ids, boxes,
                                                              tiny_config)
    np.testing.assert_array_equal(match, expected_match)
    np.testing.assert_array_equal(bbox, expected_bbox)
    assert np.sum(match == 1) >= len(class_ids)  # each GT has at least its best anchor


def test_data_generator_batches_in_matterport_order(tiny_config, shapes):
    generator = modellib.data_generator(shapes, tiny_config, shuffle=False, batch_size=2)
    inputs, outputs = next(generator)
    assert outputs == []
    specs = element_spec(tiny_config, batch_size=2)
    assert [tuple(x.shape) for x in inputs] == [tuple(specs[n].shape) for n in INPUT_NAMES]
    first = build_training_inputs(shapes, tiny_config, 0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(inputs[0][0], first["input_image"])  # unshuffled: image 0
    np.testing.assert_array_equal(inputs[1][0], first["input_image_meta"])
    second, _ = next(generator)
    np.testing.assert_array_equal(
        second[0][0], build_training_inputs(shapes, tiny_config, 2)["input_image"])
    with pytest.raises(NotImplementedError, match="random_rois"):
        next(modellib.data_generator(shapes, tiny_config, random_rois=200))


def test_image_helpers_are_the_project_functions():
    assert modellib.mold_image is imaging.mold_image
    assert modellib.unmold_image is imaging.unmold_image
    assert modellib.compose_image_meta is imaging.compose_image_meta
    assert modellib.parse_image_meta is imaging.parse_image_meta
    meta = modellib.compose_image_meta(7, (90, 120, 3), (128, 128, 3), (19, 0, 109, 128), 1.07,
                                       np.ones(4, np.int32))
    parsed = modellib.parse_image_meta(meta[None])
    np.testing.assert_array_equal(parsed["window"], [[19, 0, 109, 128]])
    graph = modellib.parse_image_meta_graph(meta[None].astype(np.float32))
    np.testing.assert_allclose(graph["window"].numpy(), [[19, 0, 109, 128]])
    boxes = np.array([[10.0, 20.0, 40.0, 60.0]], np.float32)
    normalized = modellib.norm_boxes_graph(boxes, np.array([128, 128])).numpy()
    np.testing.assert_allclose(normalized, [[10 / 127, 20 / 127, 39 / 127, 59 / 127]], rtol=1e-6)
    np.testing.assert_array_equal(
        modellib.denorm_boxes_graph(normalized, np.array([128, 128])).numpy(), boxes)


def test_log_dir_paths_follow_matterport():
    log_dir, pattern, epoch = modellib_compat.log_dir_paths("logs", "Balloon")
    assert os.path.dirname(log_dir) == "logs" and os.path.basename(log_dir).startswith("balloon")
    assert len(os.path.basename(log_dir)) == len("balloon") + len("20240102T0304")
    assert pattern == os.path.join(log_dir, "mask_rcnn_balloon_{epoch:04d}.h5") and epoch == 0
    path = os.path.join("runs", "balloon20240102T0304", "mask_rcnn_balloon_0007.h5")
    log_dir, pattern, epoch = modellib_compat.log_dir_paths("runs", "balloon", path)
    assert log_dir == os.path.join("runs", "balloon20240102T0304") and epoch == 7
    assert modellib_compat.log_dir_paths("runs", "balloon", "other/epoch_0003.h5")[2] == 0


def test_find_last_picks_the_newest_run_and_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directory starting with 'shapes'"):
        modellib_compat.find_last(tmp_path, "shapes")
    for run, files in {"shapes20240101T0000": ["mask_rcnn_shapes_0009.h5"],
                       "shapes20240102T0000": ["mask_rcnn_shapes_0001.h5",
                                               "mask_rcnn_shapes_0002.h5", "events.out"],
                       "coco20250101T0000": ["mask_rcnn_coco_0001.h5"]}.items():
        (tmp_path / run).mkdir()
        for name in files:
            (tmp_path / run / name).write_bytes(b"")
    assert modellib_compat.find_last(tmp_path, "SHAPES") == str(
        tmp_path / "shapes20240102T0000" / "mask_rcnn_shapes_0002.h5")
    (tmp_path / "shapes20240103T0000").mkdir()
    with pytest.raises(FileNotFoundError, match="no mask_rcnn.*shapes20240103T0000"):
        modellib_compat.find_last(tmp_path, "shapes")


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(modellib_compat.IMAGENET_WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="MRCNN_IMAGENET_WEIGHTS"):
        modellib_compat.imagenet_weights_path()
    weights = tmp_path / "resnet50.h5"
    weights.write_bytes(b"x")
    monkeypatch.setenv(modellib_compat.IMAGENET_WEIGHTS_ENV, str(weights))
    assert modellib_compat.imagenet_weights_path() == str(weights)


def test_cli_init_from_a_matterport_checkpoint_starts_at_epoch_zero(tmp_path, monkeypatch):
    """load_weights continues a matterport checkpoint's epoch (as there); --init must not."""
    import types

    from mrcnn.checks import weights as weight_checks
    from mrcnn.train_setup import load_initial_weights

    # The stand-in model has no Keras graph for the loaded-fraction check to count.
    monkeypatch.setattr(weight_checks, "check_loaded_weights", lambda *args, **kwargs: None)

    path = tmp_path / "coco20240101T0000" / "mask_rcnn_coco_0160.h5"
    path.parent.mkdir()
    path.write_bytes(b"")

    class Model:
        epoch = 0
        keras_model = None

        def load_weights(self, filepath, exclude=None):
            self.epoch = modellib_compat.log_dir_paths(tmp_path, "coco", filepath)[2]
            return types.SimpleNamespace(loaded=["conv1"])

    model = Model()
    model.load_weights(str(path))
    assert model.epoch == 160
    args = types.SimpleNamespace(init=str(path), exclude=[])
    assert load_initial_weights(model, args, None)["path"] == str(path)
    assert model.epoch == 0


def test_train_passes_albumentations_and_no_augmentation_sources_to_the_pipeline(
        tiny_config, shapes, monkeypatch):
    """MaskRCNN.train(augmentation=<albumentations>, no_augmentation_sources=[...]) reaches
    make_dataset wrapped and unchanged (the pipeline's use of them is tested with make_dataset)."""
    import albumentations as A

    from mrcnn.data import pipeline
    from mrcnn.data.albumentations_aug import AlbumentationsAugmentation

    seen = {}

    class Reached(Exception):
        pass

    def fake_make_dataset(dataset, config, **kwargs):
        seen.update(kwargs, dataset=dataset)
        raise Reached

    monkeypatch.setattr(pipeline, "make_dataset", fake_make_dataset)
    model = object.__new__(modellib.MaskRCNN)  # no graph needed to reach the data pipeline
    model.mode, model.config = "training", tiny_config
    flip = A.HorizontalFlip(p=1.0)
    with pytest.raises(Reached):
        model.train(shapes, None, 0.001, 1, "heads", augmentation=flip,
                    no_augmentation_sources=["shapes"])
    assert seen["dataset"] is shapes and seen["no_augmentation_sources"] == ["shapes"]
    assert isinstance(seen["augmentation"], AlbumentationsAugmentation)
    assert seen["augmentation"].transform.transforms[0] is flip
    fake_imgaug = type("Fliplr", (), {"__module__": "imgaug.augmenters.flip"})()
    with pytest.raises(TypeError, match="imgaug"):
        model.train(shapes, None, 0.001, 1, "heads", augmentation=fake_imgaug)
