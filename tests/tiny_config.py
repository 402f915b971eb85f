"""TinyConfig: the small config unit tests share (its own module: every test folder has a
conftest.py, so `from conftest import ...` would pick whichever was imported last)."""

from mrcnn.config import Config


class TinyConfig(Config):
    """128x128 images, 4 classes, a basic-block backbone and few proposals: fast unit tests."""

    NAME = "tiny"
    BACKBONE = "resnet18"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_INFERENCE = 100
    POST_NMS_ROIS_TRAINING = 200
    TRAIN_ROIS_PER_IMAGE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    TOP_DOWN_PYRAMID_SIZE = 32
    DETECTION_MAX_INSTANCES = 20
    DETECTION_MIN_CONFIDENCE = 0.0
    MAX_GT_INSTANCES = 20
    MINI_MASK_SHAPE = (28, 28)


def tiny_config_values() -> dict:
    """TinyConfig's own fields as the JSON object a user would pass with ``--config``."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in vars(TinyConfig).items() if name.isupper()}
