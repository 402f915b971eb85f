"""Mask R-CNN configuration with matterport's field names and defaults.

Subclass it the way matterport users do::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 1 + 3
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128

Derived values (BATCH_SIZE, IMAGE_SHAPE, IMAGE_META_SIZE) are computed in ``__init__`` from the
fields, exactly as matterport does, so a ported subclass gives the same numbers. On top of that:
``to_dict`` / ``to_json`` / ``from_json`` round-trip a config and ``validate()`` rejects impossible
settings with a message that names the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mrcnn.errors import ConfigError  # noqa: F401  (validate raises it; imported from here too)

# Backbones this package can build. "resnet18"/"resnet34" are basic-block ResNets used by the
# small demo model; the two bottleneck ResNets carry matterport's layer names.
KNOWN_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
RESIZE_MODES = ("none", "square", "pad64", "crop")
OPTIMIZERS = ("sgd", "adam")
# Values of COMPUTE_DTYPE (the Keras dtype policy each maps to: mrcnn.precision).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")

# Fields that are computed from the others and so are never read from JSON.
DERIVED_FIELDS = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")


class Config:
    """Base configuration. Override fields in a subclass or with ``Config.from_dict``."""

    # Name of the configuration; run directories and checkpoints are named after it.
    NAME = None
    # Number of GPUs to train with (matterport field). With tf.distribute the visible devices are
    # used instead; kept so that BATCH_SIZE is computed like matterport's.
    GPU_COUNT = 1
    # Images per GPU per step. 12 GB fits about two 1024x1024 images.
    IMAGES_PER_GPU = 2
    # Training steps per epoch (not tied to the dataset size, as in matterport).
    STEPS_PER_EPOCH = 1000
    # Validation steps at the end of each epoch.
    VALIDATION_STEPS = 50

    # Backbone: one of KNOWN_BACKBONES, or a callable(input_image, config) -> [C2, C3, C4, C5].
    BACKBONE = "resnet101"
    # Only for a callable BACKBONE: strides of its C2..C5 (matterport's COMPUTE_BACKBONE_SHAPE).
    COMPUTE_BACKBONE_SHAPE = None
    # Stride in pixels of each FPN level P2..P6.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    # Units of the fully connected layers of the classification head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the FPN feature maps.
    TOP_DOWN_PYRAMID_SIZE = 256
    # --- Not in matterport (defaults give its shapes): sizes that let a small model stay small.
    # Channel multiplier of the basic-block backbones (resnet18/34); must be 1.0 for resnet50/101.
    BACKBONE_WIDTH = 1.0
    # Channels of the RPN's shared 3x3 convolution (rpn_conv_shared).
    RPN_CONV_CHANNELS = 512
    # Channels of the mask head's convolutions (mrcnn_mask_conv1..4, mrcnn_mask_deconv).
    MASK_HEAD_CHANNELS = 256

    # Number of classes including background (class 0).
    NUM_CLASSES = 1

    # Side of the square anchor, in pixels, on each pyramid level P2..P6.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    # Anchor height/width ratios; each ratio gives one anchor per location per level.
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    # Anchor stride in feature-map cells: 1 = an anchor at every cell, 2 = every other cell.
    RPN_ANCHOR_STRIDE = 1
    # IoU threshold of the non-max suppression that filters RPN proposals.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image sampled for the RPN loss.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # Top anchors by objectness kept before NMS.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS, in training and in inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store instance masks cropped to their box and resized to MINI_MASK_SHAPE (saves memory).
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width) of a mini-mask, pixels

    # Input resizing: "none" (no change), "square" (scale then pad to IMAGE_MAX_DIM square),
    # "pad64" (no scaling, pad to multiples of 64), "crop" (random IMAGE_MIN_DIM crop; training only).
    IMAGE_RESIZE_MODE = "square"
    # The shorter side is scaled up to at least IMAGE_MIN_DIM, the longer one down to at most
    # IMAGE_MAX_DIM (pixels); IMAGE_MAX_DIM must be divisible by 2**6 = 64.
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scale ratio; 0 means no lower bound. 2 would make every image at least twice as large.
    IMAGE_MIN_SCALE = 0
    # Image channels: 3 for RGB. Grayscale and RGBA inputs are converted to this count.
    IMAGE_CHANNEL_COUNT = 3
    # Mean pixel subtracted from the input (RGB order), one value per channel.
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the classifier/mask heads in training.
    TRAIN_ROIS_PER_IMAGE = 200
    # Fraction of those ROIs that are positive (IoU >= 0.5 with a GT box).
    ROI_POSITIVE_RATIO = 0.33
    # Not in matterport: add the GT boxes to the proposals the ROIs are sampled from (as
    # detectron2 does). Gives the heads positive ROIs from the first step, which matters when
    # training from scratch, before the RPN proposes anything useful. False = matterport.
    TRAIN_ROIS_INCLUDE_GT = False
    # Output side of ROIAlign for the classifier head and for the mask head, in cells.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    # Size of the predicted mask (the mask head upsamples MASK_POOL_SIZE by 2).
    MASK_SHAPE = [28, 28]
    # Most ground-truth instances used per image.
    MAX_GT_INSTANCES = 100

    # Standard deviations that scale the box deltas of the RPN and of the final detections.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Most detections returned per image.
    DETECTION_MAX_INSTANCES = 100
    # Detections with a lower class probability are dropped.
    DETECTION_MIN_CONFIDENCE = 0.7
    # IoU threshold of the per-class non-max suppression of detections.
    DETECTION_NMS_THRESHOLD = 0.3

    # SGD learning rate and momentum.
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    # Not in matterport: "sgd" (matterport: SGD with LEARNING_MOMENTUM) or "adam" (Adam with
    # beta_1 = LEARNING_MOMENTUM, which trains small models from scratch far faster).
    OPTIMIZER = "sgd"
    # L2 weight decay on kernels (not on BatchNorm gamma/beta).
    WEIGHT_DECAY = 0.0001
    # Weight of each loss in the total.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    # Train the RPN on the ROIs it proposes (True) or on externally supplied ROIs (False).
    USE_RPN_ROIS = True
    # Update BatchNorm statistics and parameters while training. Small batches make them
    # unreliable, so matterport (and this package) freeze BN by default.
    TRAIN_BN = False
    # Not in matterport: BatchNorm of the heads (mrcnn_class_bn*, mrcnn_mask_bn*) trains only if
    # this is True; None follows TRAIN_BN (matterport). Their batch is the sampled ROIs, zero
    # padding included, whose statistics differ from the proposals seen at inference, so a model
    # trained from scratch (TRAIN_BN for the backbone) learns better with these frozen.
    TRAIN_HEAD_BN = None
    # Global-norm gradient clipping.
    GRADIENT_CLIP_NORM = 5.0
    # Not in matterport: dtype the convolutions and dense layers compute in - "float32",
    # "bfloat16" (CPUs with AMX-BF16 / AVX512-BF16, Ampere+ GPUs) or "float16" (GPUs; training
    # adds loss scaling). Weights, box arithmetic, anchors, NMS, ROIAlign coordinates, softmax
    # outputs, losses and the optimizer stay float32 (mrcnn.precision).
    COMPUTE_DTYPE = "float32"

    @property
    def head_train_bn(self) -> bool:
        """Whether the heads' BatchNorm layers train (TRAIN_HEAD_BN, or TRAIN_BN when None)."""
        return bool(self.TRAIN_BN if self.TRAIN_HEAD_BN is None else self.TRAIN_HEAD_BN)

    def __init__(self):
        """Compute the derived values from the (possibly overridden) fields."""
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        self.MEAN_PIXEL = np.asarray(self.MEAN_PIXEL, dtype=np.float64)
        self.RPN_BBOX_STD_DEV = np.asarray(self.RPN_BBOX_STD_DEV, dtype=np.float64)
        self.BBOX_STD_DEV = np.asarray(self.BBOX_STD_DEV, dtype=np.float64)
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array(
                [self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM, self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array(
                [self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, self.IMAGE_CHANNEL_COUNT])
        # image_id(1) + original_image_shape(3) + image_shape(3) + window(4) + scale(1)
        # + active_class_ids(NUM_CLASSES)
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    # ---- introspection and (de)serialisation ---------------------------------------------

    def field_names(self) -> list[str]:
        """Upper-case attribute names, class-level and instance-level, sorted."""
        names = {n for n in dir(self) if n.isupper() and not callable(getattr(self, n))}
        return sorted(names)

    def to_dict(self) -> dict:
        """All fields (derived ones included) as JSON-friendly Python values."""
        out = {}
        for name in self.field_names():
            out[name] = _to_jsonable(getattr(self, name))
        return out

    def to_json(self, path=None) -> str:
        """Serialise to a JSON string and, if ``path`` is given, write it there."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """A config of this class with ``values`` overriding the defaults (derived fields recomputed)."""
        unknown = [k for k in values if not hasattr(cls, k) and k not in DERIVED_FIELDS]
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        from mrcnn.checks.config_types import check_field_types

        check_field_types(cls, values, ConfigError)  # "IMAGE_MAX_DIM: expected a number ..."
        overrides = {k: _from_jsonable(k, v) for k, v in values.items() if k not in DERIVED_FIELDS}
        subclass = type(cls.__name__, (cls,), overrides)
        config = subclass()
        return config

    @classmethod
    def from_json(cls, path_or_text) -> "Config":
        """Load a config from a JSON file path or a JSON string."""
        text = str(path_or_text)
        source = "config text"
        if not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            text, source = path.read_text(), str(path)
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{source}: not valid JSON ({e})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object of config fields")
        return cls.from_dict(values)

    def display(self) -> None:
        """Print every field, as matterport's Config.display()."""
        print("\nConfigurations:")
        for name in self.field_names():
            print(f"{name:30} {getattr(self, name)}")
        print()

    # ---- validation ----------------------------------------------------------------------

    def validate(self) -> "Config":
        """Raise ConfigError naming the field when a setting is impossible; return self if fine."""
        self._validate_model()
        self._validate_image()
        self._validate_anchors()
        self._validate_proposals_and_heads()
        self._validate_training()
        return self

    def _validate_model(self) -> None:
        """Class count, batch, backbone, optimizer and layer widths."""
        _check(self.NUM_CLASSES >= 1 and int(self.NUM_CLASSES) == self.NUM_CLASSES,
               "NUM_CLASSES", f"must be an integer >= 1 (background included), got {self.NUM_CLASSES}")
        _check(self.IMAGES_PER_GPU >= 1, "IMAGES_PER_GPU", f"must be >= 1, got {self.IMAGES_PER_GPU}")
        _check(self.GPU_COUNT >= 1, "GPU_COUNT", f"must be >= 1, got {self.GPU_COUNT}")
        if not callable(self.BACKBONE):
            _check(self.BACKBONE in KNOWN_BACKBONES, "BACKBONE",
                   f"unknown backbone {self.BACKBONE!r}; expected one of {', '.join(KNOWN_BACKBONES)}"
                   " or a callable")
        _check(self.BACKBONE_WIDTH > 0 and (self.BACKBONE_WIDTH == 1.0 or callable(self.BACKBONE)
                                            or self.BACKBONE in ("resnet18", "resnet34")),
               "BACKBONE_WIDTH", f"must be > 0, and 1.0 unless BACKBONE is resnet18/resnet34 "
               f"(matterport's weight shapes), got {self.BACKBONE_WIDTH} with {self.BACKBONE!r}")
        _check(self.OPTIMIZER in OPTIMIZERS, "OPTIMIZER",
               f"unknown optimizer {self.OPTIMIZER!r}; expected one of {', '.join(OPTIMIZERS)}")
        for name in ("RPN_CONV_CHANNELS", "MASK_HEAD_CHANNELS", "TOP_DOWN_PYRAMID_SIZE",
                     "FPN_CLASSIF_FC_LAYERS_SIZE"):
            value = getattr(self, name)
            _check(int(value) == value and value >= 1, name, f"must be an integer >= 1, got {value}")

    def _validate_image(self) -> None:
        """Resize mode, image sides and channels."""
        _check(self.IMAGE_RESIZE_MODE in RESIZE_MODES, "IMAGE_RESIZE_MODE",
               f"unknown mode {self.IMAGE_RESIZE_MODE!r}; expected one of {', '.join(RESIZE_MODES)}")
        if self.IMAGE_RESIZE_MODE in ("square", "crop"):
            side = self.IMAGE_MAX_DIM if self.IMAGE_RESIZE_MODE == "square" else self.IMAGE_MIN_DIM
            field = "IMAGE_MAX_DIM" if self.IMAGE_RESIZE_MODE == "square" else "IMAGE_MIN_DIM"
            _check(side % 64 == 0, field,
                   f"must be divisible by 64 (2**6, for the P6 level) in {self.IMAGE_RESIZE_MODE!r}"
                   f" mode, got {side}; nearest valid values: {side // 64 * 64} or {(side // 64 + 1) * 64}")
        _check(0 < self.IMAGE_MIN_DIM <= self.IMAGE_MAX_DIM, "IMAGE_MIN_DIM",
               f"must be in 1..IMAGE_MAX_DIM ({self.IMAGE_MAX_DIM}), got {self.IMAGE_MIN_DIM}")
        _check(self.IMAGE_CHANNEL_COUNT >= 1, "IMAGE_CHANNEL_COUNT",
               f"must be >= 1, got {self.IMAGE_CHANNEL_COUNT}")
        _check(len(self.MEAN_PIXEL) == self.IMAGE_CHANNEL_COUNT, "MEAN_PIXEL",
               f"has {len(self.MEAN_PIXEL)} values but IMAGE_CHANNEL_COUNT is {self.IMAGE_CHANNEL_COUNT}")

    def _validate_anchors(self) -> None:
        """Pyramid strides and anchor scales, ratios and stride."""
        _check(len(self.BACKBONE_STRIDES) == 5, "BACKBONE_STRIDES",
               f"needs 5 strides (P2..P6), got {len(self.BACKBONE_STRIDES)}")
        _check(len(self.RPN_ANCHOR_SCALES) == len(self.BACKBONE_STRIDES), "RPN_ANCHOR_SCALES",
               f"needs one scale per pyramid level ({len(self.BACKBONE_STRIDES)}), "
               f"got {len(self.RPN_ANCHOR_SCALES)}")
        _check(len(self.RPN_ANCHOR_RATIOS) >= 1 and all(r > 0 for r in self.RPN_ANCHOR_RATIOS),
               "RPN_ANCHOR_RATIOS", f"must be positive numbers, got {self.RPN_ANCHOR_RATIOS}")
        _check(self.RPN_ANCHOR_STRIDE >= 1, "RPN_ANCHOR_STRIDE", f"must be >= 1, got {self.RPN_ANCHOR_STRIDE}")

    def _validate_proposals_and_heads(self) -> None:
        """Thresholds, ROI counts, pool and mask sizes."""
        for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE",
                     "ROI_POSITIVE_RATIO"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")
        for name in ("PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
                     "TRAIN_ROIS_PER_IMAGE", "DETECTION_MAX_INSTANCES", "MAX_GT_INSTANCES",
                     "RPN_TRAIN_ANCHORS_PER_IMAGE", "POOL_SIZE", "MASK_POOL_SIZE"):
            value = getattr(self, name)
            _check(int(value) == value and value >= 1, name, f"must be an integer >= 1, got {value}")
        _check(list(self.MASK_SHAPE) == [2 * self.MASK_POOL_SIZE] * 2, "MASK_SHAPE",
               f"must be twice MASK_POOL_SIZE ({self.MASK_POOL_SIZE}) on each side, got {self.MASK_SHAPE}")
        _check(len(self.MINI_MASK_SHAPE) == 2 and min(self.MINI_MASK_SHAPE) >= 1, "MINI_MASK_SHAPE",
               f"must be (height, width) >= 1, got {self.MINI_MASK_SHAPE}")

    def _validate_training(self) -> None:
        """Box deltas, loss weights, learning rate and weight decay."""
        for name in ("RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            value = getattr(self, name)
            _check(len(value) == 4 and np.all(value > 0), name, f"must be 4 positive numbers, got {value}")
        unknown_losses = set(self.LOSS_WEIGHTS) - set(Config.LOSS_WEIGHTS)
        _check(not unknown_losses, "LOSS_WEIGHTS",
               f"unknown loss name(s) {sorted(unknown_losses)}; expected {sorted(Config.LOSS_WEIGHTS)}")
        _check(self.LEARNING_RATE > 0, "LEARNING_RATE", f"must be > 0, got {self.LEARNING_RATE}")
        _check(self.WEIGHT_DECAY >= 0, "WEIGHT_DECAY", f"must be >= 0, got {self.WEIGHT_DECAY}")
        _check(self.COMPUTE_DTYPE in COMPUTE_DTYPES, "COMPUTE_DTYPE",
               f"unknown dtype {self.COMPUTE_DTYPE!r}; expected one of {', '.join(COMPUTE_DTYPES)}")

    # ---- small derived helpers used across the package -------------------------------------

    def backbone_strides(self) -> list[int]:
        """Strides of C2..C5/P2..P6 in pixels."""
        return list(self.BACKBONE_STRIDES)

    def backbone_shapes(self, image_shape) -> np.ndarray:
        """[5, 2] (height, width) of each pyramid level's feature map for ``image_shape``."""
        return np.array([[int(math.ceil(image_shape[0] / s)), int(math.ceil(image_shape[1] / s))]
                         for s in self.BACKBONE_STRIDES])


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {message}")


def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return value


# Fields stored as numpy arrays by the base class; JSON lists are turned back into arrays.
_ARRAY_FIELDS = ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV")
_TUPLE_FIELDS = ("RPN_ANCHOR_SCALES", "MINI_MASK_SHAPE")


def _from_jsonable(name, value):
    if name in _ARRAY_FIELDS:
        return np.asarray(value, dtype=np.float64)
    if name in _TUPLE_FIELDS and isinstance(value, list):
        return tuple(value)
    return value
