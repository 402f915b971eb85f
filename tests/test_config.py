"""Config: matterport defaults, subclassing, JSON round trip, validate() messages."""

import json

import numpy as np
import pytest

from mrcnn.config import Config, ConfigError


def test_defaults_match_matterport():
    config = Config()
    assert config.NAME is None
    assert config.GPU_COUNT == 1 and config.IMAGES_PER_GPU == 2 and config.BATCH_SIZE == 2
    assert config.STEPS_PER_EPOCH == 1000 and config.VALIDATION_STEPS == 50
    assert config.BACKBONE == "resnet101"
    assert config.BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    assert config.NUM_CLASSES == 1 and config.IMAGE_META_SIZE == 13
    assert tuple(config.RPN_ANCHOR_SCALES) == (32, 64, 128, 256, 512)
    assert list(config.RPN_ANCHOR_RATIOS) == [0.5, 1, 2] and config.RPN_ANCHOR_STRIDE == 1
    assert config.RPN_NMS_THRESHOLD == 0.7 and config.RPN_TRAIN_ANCHORS_PER_IMAGE == 256
    assert config.PRE_NMS_LIMIT == 6000
    assert config.POST_NMS_ROIS_TRAINING == 2000 and config.POST_NMS_ROIS_INFERENCE == 1000
    assert config.USE_MINI_MASK and tuple(config.MINI_MASK_SHAPE) == (56, 56)
    assert config.IMAGE_RESIZE_MODE == "square"
    assert (config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE) == (800, 1024, 0)
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [1024, 1024, 3])
    np.testing.assert_allclose(config.MEAN_PIXEL, [123.7, 116.8, 103.9])
    assert config.TRAIN_ROIS_PER_IMAGE == 200 and config.ROI_POSITIVE_RATIO == 0.33
    assert (config.POOL_SIZE, config.MASK_POOL_SIZE, list(config.MASK_SHAPE)) == (7, 14, [28, 28])
    assert config.MAX_GT_INSTANCES == 100 and config.DETECTION_MAX_INSTANCES == 100
    np.testing.assert_allclose(config.RPN_BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(config.BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
    assert config.DETECTION_MIN_CONFIDENCE == 0.7 and config.DETECTION_NMS_THRESHOLD == 0.3
    assert (config.LEARNING_RATE, config.LEARNING_MOMENTUM, config.WEIGHT_DECAY) == (0.001, 0.9, 0.0001)
    assert config.USE_RPN_ROIS and not config.TRAIN_BN and config.GRADIENT_CLIP_NORM == 5.0
    assert set(config.LOSS_WEIGHTS.values()) == {1.0} and len(config.LOSS_WEIGHTS) == 5
    assert config.validate() is config


def test_matterport_style_subclass():
    class ShapesConfig(Config):
        NAME = "shapes"
        GPU_COUNT = 2
        IMAGES_PER_GPU = 4
        NUM_CLASSES = 1 + 3
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)

    config = ShapesConfig().validate()
    assert config.BATCH_SIZE == 8 and config.IMAGE_META_SIZE == 12 + 4
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [128, 128, 3])
    assert Config().NUM_CLASSES == 1  # base class untouched


def test_crop_mode_image_shape():
    class Crop(Config):
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 512
        IMAGE_CHANNEL_COUNT = 1
        MEAN_PIXEL = [100.0]

    config = Crop().validate()
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [512, 512, 1])
    assert isinstance(config.MEAN_PIXEL, np.ndarray)


def test_json_round_trip(tmp_path, tiny_config):
    text = tiny_config.to_json()
    assert json.loads(text)["NAME"] == "tiny"
    again = type(tiny_config).from_json(text)
    assert again.to_dict() == tiny_config.to_dict()
    for name in ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV", "IMAGE_SHAPE"):
        assert isinstance(getattr(again, name), np.ndarray), name
    assert isinstance(again.RPN_ANCHOR_SCALES, tuple)

    path = tmp_path / "config.json"
    tiny_config.to_json(path)
    from_file = Config.from_json(path)
    assert from_file.to_dict() == tiny_config.to_dict()
    assert from_file.IMAGE_META_SIZE == 16 and from_file.BATCH_SIZE == 1


def test_from_dict_recomputes_derived_fields():
    config = Config.from_dict({"NUM_CLASSES": 81, "IMAGES_PER_GPU": 1, "BATCH_SIZE": 99})
    assert config.IMAGE_META_SIZE == 12 + 81 and config.BATCH_SIZE == 1


@pytest.mark.parametrize("overrides, field, fragment", [
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM", "divisible by 64"),
    ({"BACKBONE": "vgg"}, "BACKBONE", "'vgg'"),
    ({"IMAGE_CHANNEL_COUNT": 1}, "MEAN_PIXEL", "IMAGE_CHANNEL_COUNT is 1"),
    ({"IMAGE_RESIZE_MODE": "fit"}, "IMAGE_RESIZE_MODE", "'fit'"),
    ({"RPN_NMS_THRESHOLD": 1.5}, "RPN_NMS_THRESHOLD", "[0, 1]"),
    ({"NUM_CLASSES": 0}, "NUM_CLASSES", ">= 1"),
])
def test_validate_names_the_field(overrides, field, fragment):
    config = Config.from_dict(overrides)
    with pytest.raises(ConfigError) as info:
        config.validate()
    message = str(info.value)
    assert message.startswith(field + ":") and fragment in message


def test_unknown_field_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="unknown config field.*IMAGE_MAX_DIMS"):
        Config.from_dict({"IMAGE_MAX_DIMS": 512})
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="config file not found.*nope.json"):
        Config.from_json(missing)
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json('{"NUM_CLASSES": 3,')
    broken = tmp_path / "broken.json"
    broken.write_text("NUM_CLASSES = 3\n")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        Config.from_json(broken)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        Config.from_json(listing)


def test_small_model_fields_default_to_matterport_shapes_and_validate():
    from mrcnn.config import Config, ConfigError

    config = Config()
    assert (config.BACKBONE_WIDTH, config.RPN_CONV_CHANNELS, config.MASK_HEAD_CHANNELS) == (1.0, 512, 256)

    class Slim(Config):
        BACKBONE = "resnet18"
        BACKBONE_WIDTH = 0.5

    Slim().validate()

    class SlimResNet50(Config):
        BACKBONE = "resnet50"
        BACKBONE_WIDTH = 0.5

    with pytest.raises(ConfigError, match="BACKBONE_WIDTH"):
        SlimResNet50().validate()
