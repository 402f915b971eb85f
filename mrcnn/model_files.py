"""A model's files: weights (HDF5), config JSON, class names, and the images it reads.

The one rule that finds a model's config (``find_config``): the config file given, else
``config.json`` beside the weights file, else ``config.json`` of the run directory the weights
belong to (``RUN/checkpoints/epoch_0001.h5`` -> ``RUN/config.json``), else - where allowed -
the fields the weights' shapes imply (``infer_config_values``). ``mrcnn detect`` / ``trace`` /
``evaluate``, the viewer and the training dialog all go through it.

Errors are the typed ``mrcnn.errors`` (ConfigError, WeightsFileError, ImageFileError,
ClassNamesError), each naming the file. TensorFlow-free: h5py, numpy and the config only.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from mrcnn.checks.options import check_input_file
from mrcnn.errors import (ClassNamesError, ConfigError, DatasetError, ImageFileError,
                          WeightsFileError)

CONFIG_FILE_NAME = "config.json"
# matterport's COCO model (mask_rcnn_coco.h5) has 81 classes; its CocoConfig differs from the
# defaults only in NAME and NUM_CLASSES, so the config inferred from such weights is that one.
COCO_NUM_CLASSES = 81


# ---- weights ------------------------------------------------------------------------------------

def read_weight_shapes(path) -> dict:
    """{layer: {weight short name: shape}} of a Keras-2 HDF5 weights file; WeightsFileError if
    it is missing or not such a file."""
    import h5py

    from mrcnn.stats import NotKeras2WeightsError, iter_file_weights

    path = os.fspath(path)
    check_input_file(path, "weights file", WeightsFileError)
    try:
        with h5py.File(path, "r") as handle:
            shapes: dict = {}
            for layer, name, dataset in iter_file_weights(handle):
                shapes.setdefault(layer, {})[name] = tuple(dataset.shape)
            return shapes
    except NotKeras2WeightsError:
        raise WeightsFileError(f"{path}: not a Keras-2 (matterport layout) weights file "
                               "(no 'layer_names' attribute)") from None
    except (OSError, KeyError) as e:
        raise WeightsFileError(f"{path}: not a readable HDF5 weights file ({e})") from None


def weights_class_count(path):
    """NUM_CLASSES of an HDF5 weights file (mrcnn_class_logits' output size), None if absent.

    Also reads whole-model files (weights under ``model_weights``).
    """
    import h5py

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "mrcnn_class_logits" not in root:
            return None
        shapes = []
        root["mrcnn_class_logits"].visititems(
            lambda name, obj: shapes.append(obj.shape) if hasattr(obj, "shape") else None)
    kernels = [s for s in shapes if len(s) == 2]
    return int(kernels[0][1]) if kernels else None


def infer_config_values(shapes: dict) -> dict:
    """Config fields implied by a weights file's shapes (NUM_CLASSES, BACKBONE, head sizes)."""
    values = {}
    logits = shapes.get("mrcnn_class_logits", {}).get("kernel")
    if logits:
        values["NUM_CLASSES"] = int(logits[-1])
    if "res4w_branch2c" in shapes or "res4w_branch2a" in shapes:
        values["BACKBONE"] = "resnet101"
    elif "res2a_branch2c" in shapes:
        values["BACKBONE"] = "resnet50"
    elif "res2a_branch2a" in shapes:
        # Basic blocks: ResNet-34 has six stage-4 blocks (res4a..res4f), ResNet-18 two.
        values["BACKBONE"] = "resnet34" if "res4c_branch2a" in shapes else "resnet18"
    conv1 = shapes.get("mrcnn_class_conv1", {}).get("kernel")
    if conv1:
        values["POOL_SIZE"] = int(conv1[0])
        values["FPN_CLASSIF_FC_LAYERS_SIZE"] = int(conv1[-1])
    p5 = shapes.get("fpn_c5p5", {}).get("kernel")
    if p5:
        values["TOP_DOWN_PYRAMID_SIZE"] = int(p5[-1])
    return values


# ---- config -------------------------------------------------------------------------------------

def find_config(weights_path, config_path=None) -> Path | None:
    """The config JSON of the model in ``weights_path`` (the module docstring's rule), or None.

    A ``config_path`` that is given is returned as it is (``load_config`` reports it missing).
    """
    if config_path:
        return Path(config_path)
    weights = Path(weights_path).resolve()
    for folder in (weights.parent, weights.parent.parent):  # beside, then the run directory
        if (folder / CONFIG_FILE_NAME).is_file():
            return folder / CONFIG_FILE_NAME
    return None


def load_config(config_path, weights_path, command: str = "", infer=True):
    """The validated inference Config (one image per batch) of the weights ``weights_path``.

    Found by ``find_config``; without a file, ``infer=True`` builds it from the weights' shapes
    (defaults for the rest) and ``infer=False`` raises ConfigError. ``command`` (e.g. "detect")
    asks for one line on stderr, ``mrcnn <command>: ...``, saying where a config that was not
    given came from.
    """
    from mrcnn.config import Config

    found = find_config(weights_path, config_path)
    if found is not None:
        config = _config_from_file(found)
        if not config_path:
            _note(command, f"no --config given; using {found}")
    elif infer:
        values = inferred_config_values(weights_path)
        _note(command, f"no --config given; inferred from {weights_path}: "
              + ", ".join(f"{k}={v}" for k, v in sorted(values.items()) if k != "NAME")
              + " (other fields: defaults)")
        config = Config.from_dict(values)
    else:
        raise ConfigError(f"no --config given and no {CONFIG_FILE_NAME} next to "
                          f"{Path(weights_path).resolve()} or in its run directory")
    # One image at a time: detection, tracing and evaluation go image by image.
    config.IMAGES_PER_GPU, config.GPU_COUNT, config.BATCH_SIZE = 1, 1, 1
    try:
        return config.validate()
    except ConfigError as e:
        raise ConfigError(f"{found or weights_path}: {e}") from None


def _note(command: str, text: str) -> None:
    if command:
        print(f"mrcnn {command}: {text}", file=sys.stderr)


def _config_from_file(path):
    from mrcnn.config import Config

    try:
        return Config.from_json(os.fspath(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def inferred_config_values(weights_path) -> dict:
    """Config fields from the weights' shapes; NAME "coco" for 81 classes, else "inferred"."""
    values = infer_config_values(read_weight_shapes(weights_path))
    values.setdefault("NAME", "coco" if values.get("NUM_CLASSES") == COCO_NUM_CLASSES
                      else "inferred")
    return values


def default_config_values(dataset: str, shapes_size: int = 128) -> dict:
    """Config fields ``mrcnn train`` uses without --config: a small model for the synthetic
    "shapes" of side ``shapes_size`` pixels, matterport's defaults (named "coco") otherwise."""
    if dataset != "shapes":
        return {"NAME": "coco"}
    side = max(64, int(math.ceil(shapes_size / 64)) * 64)
    return {"NAME": "shapes", "BACKBONE": "resnet18", "IMAGES_PER_GPU": 2,
            "IMAGE_MIN_DIM": side, "IMAGE_MAX_DIM": side,
            "RPN_ANCHOR_SCALES": [s * side // 128 for s in (8, 16, 32, 64, 128)],
            "TRAIN_ROIS_PER_IMAGE": 32, "POST_NMS_ROIS_TRAINING": 500,
            "POST_NMS_ROIS_INFERENCE": 250, "PRE_NMS_LIMIT": 1000,
            "RPN_TRAIN_ANCHORS_PER_IMAGE": 64, "TOP_DOWN_PYRAMID_SIZE": 64,
            "FPN_CLASSIF_FC_LAYERS_SIZE": 256, "MAX_GT_INSTANCES": 10,
            "DETECTION_MAX_INSTANCES": 20, "MINI_MASK_SHAPE": [28, 28],
            "STEPS_PER_EPOCH": 100, "VALIDATION_STEPS": 5,
            **_if_known({"RPN_CONV_CHANNELS": 64, "MASK_HEAD_CHANNELS": 64})}


def _if_known(values) -> dict:
    """The entries of ``values`` that are Config fields (newer size knobs may be absent)."""
    from mrcnn.config import Config

    return {k: v for k, v in values.items() if hasattr(Config, k)}


# ---- class names --------------------------------------------------------------------------------

def read_class_names(path, num_classes: int) -> list[str]:
    """Class names from a text file (one per line) or a JSON list; "BG" prepended when missing."""
    check_input_file(path, "class names file", ClassNamesError)
    path = Path(path)
    text = path.read_text()
    try:
        names = json.loads(text) if text.lstrip().startswith("[") else \
            [line.strip() for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise ClassNamesError(f"{path}: not a valid JSON list of class names ({e})") from None
    if len(names) == num_classes - 1:
        names = ["BG"] + list(names)
    if len(names) != num_classes:
        raise ClassNamesError(f"{path}: {len(names)} class names for NUM_CLASSES={num_classes} "
                              f"(expected {num_classes - 1} without or {num_classes} with 'BG')")
    return [str(n) for n in names]


RUN_FILE_NAME = "run.json"


def find_run_file(weights_path) -> Path | None:
    """``run.json`` of the training run ``weights_path`` belongs to (beside the weights, or in
    the run directory: ``RUN/checkpoints/epoch_0001.h5`` -> ``RUN/run.json``), or None. The same
    two places ``find_config`` looks for ``config.json``."""
    weights = Path(weights_path).resolve()
    for folder in (weights.parent, weights.parent.parent):
        if (folder / RUN_FILE_NAME).is_file():
            return folder / RUN_FILE_NAME
    return None


def run_class_names(weights_path, num_classes: int) -> list[str] | None:
    """The class names (BG first) the run of ``weights_path`` trained with (its run.json's
    ``class_names``), or None: no run.json, an unreadable one, or names that do not fit
    ``num_classes`` (the weights were then not trained on that run's dataset)."""
    found = find_run_file(weights_path)
    if found is None:
        return None
    try:
        names = json.loads(found.read_text()).get("class_names")
    except (OSError, ValueError, AttributeError):
        return None  # a broken run record must not stop the weights from loading
    if not isinstance(names, list) or len(names) != num_classes:
        return None
    return [str(n) for n in names]


def model_class_names(weights_path, num_classes: int, names_path=None) -> list[str]:
    """The class names of a model: the file ``names_path`` when given (``read_class_names``),
    else the names its training run recorded (``run_class_names``), else
    ``default_class_names``. ``mrcnn detect / trace / explain`` and the viewer use this rule."""
    if names_path:
        return read_class_names(names_path, num_classes)
    return (run_class_names(weights_path, num_classes) if weights_path else None) or \
        default_class_names(num_classes)


def default_class_names(num_classes: int) -> list[str]:
    """COCO's names for an 81-class model (matterport's mask_rcnn_coco.h5), else "class i"."""
    from mrcnn.data.coco_names import COCO_CLASS_NAMES

    if num_classes == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES)
    return ["BG"] + [f"class {i}" for i in range(1, num_classes)]


# ---- images -------------------------------------------------------------------------------------

def read_image(path) -> np.ndarray:
    """[H, W, 3] uint8 RGB from an image file; ImageFileError naming the file otherwise
    (ImageShapeError for an image too small or too elongated for the model)."""
    from mrcnn.checks.images import check_image_shape
    from mrcnn.data.dataset import read_image_rgb

    check_input_file(path, "image", ImageFileError)
    try:
        image = read_image_rgb(os.fspath(path), what="image")
    except (FileNotFoundError, DatasetError) as e:
        raise ImageFileError(str(e).splitlines()[0]) from None
    check_image_shape(image, path)
    return image
