"""ResNet backbones with matterport's layer names, built as Keras 3 functional graphs.

Bottleneck ResNets ("resnet50", "resnet101") reproduce matterport's ``resnet_graph`` layer for
layer: same names (``conv1``, ``bn_conv1``, ``res2a_branch2a``, ``bn2a_branch2a``, ...,
``res5c_out``), same weight shapes, biases on every convolution, stride on the 1x1 ``branch2a``
convolution, so ``mask_rcnn_coco.h5`` loads by name. Basic-block ResNets ("resnet18",
"resnet34") follow the same naming pattern and serve the small demo model.

Shape shorthand: B images, H x W input pixels; C2..C5 have strides 4, 8, 16, 32.
"""

from __future__ import annotations

import keras
from keras import layers

# Blocks per stage (2..5) and the block type of each architecture.
BOTTLENECK_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
BASIC_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
# Filters of (branch2a, branch2b, branch2c) in bottleneck stages 2..5.
BOTTLENECK_FILTERS = ((64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048))
# Filters of the two 3x3 convolutions in basic-block stages 2..5.
BASIC_FILTERS = (64, 128, 256, 512)
FIRST_STAGE = 2


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(layers.BatchNormalization):
    """BatchNormalization with frozen statistics unless ``train_bn`` is True.

    Mask R-CNN trains with one or two images per GPU, far too few for useful batch statistics,
    so (as in matterport) BN runs in inference mode - moving mean/variance, no updates - even
    when the model trains. ``train_bn=True`` restores ordinary training behaviour.
    Defaults epsilon=1e-3, momentum=0.99 are the Keras-2 values matterport's weights used.
    """

    def __init__(self, train_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = bool(train_bn)

    def call(self, inputs, training=None, mask=None):
        use_batch_stats = bool(self.train_bn and training)
        return super().call(inputs, training=use_batch_stats, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


def _conv_bn(x, filters, kernel_size, name_suffix, stage, block, strides=1, train_bn=False,
             relu=True):
    """Conv2D ``res{stage}{block}_{suffix}`` -> BatchNorm ``bn{stage}{block}_{suffix}`` [-> relu]."""
    x = layers.Conv2D(filters, kernel_size, strides=strides,
                      padding="same" if kernel_size > 1 else "valid", use_bias=True,
                      name=f"res{stage}{block}_{name_suffix}")(x)
    x = BatchNorm(train_bn=train_bn, name=f"bn{stage}{block}_{name_suffix}")(x)
    if relu:
        x = layers.Activation("relu")(x)
    return x


def bottleneck_block(x, filters, stage, block, strides=1, projection=False, train_bn=False):
    """1x1 -> 3x3 -> 1x1 residual block; ``projection`` adds the 1x1 ``branch1`` shortcut.

    matterport's conv_block puts the stride on the first 1x1 (``branch2a``) and on ``branch1``.
    """
    f1, f2, f3 = filters
    y = _conv_bn(x, f1, 1, "branch2a", stage, block, strides, train_bn)
    y = _conv_bn(y, f2, 3, "branch2b", stage, block, 1, train_bn)
    y = _conv_bn(y, f3, 1, "branch2c", stage, block, 1, train_bn, relu=False)
    shortcut = x
    if projection:
        shortcut = _conv_bn(x, f3, 1, "branch1", stage, block, strides, train_bn, relu=False)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def basic_block(x, filters, stage, block, strides=1, projection=False, train_bn=False):
    """3x3 -> 3x3 residual block (ResNet-18/34); ``projection`` adds a 1x1 ``branch1`` shortcut."""
    y = _conv_bn(x, filters, 3, "branch2a", stage, block, strides, train_bn)
    y = _conv_bn(y, filters, 3, "branch2b", stage, block, 1, train_bn, relu=False)
    shortcut = x
    if projection:
        shortcut = _conv_bn(x, filters, 1, "branch1", stage, block, strides, train_bn, relu=False)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _stem(input_image, train_bn, filters=64):
    """matterport's stage 1: pad 3 -> 7x7/2 conv1 -> bn_conv1 -> relu -> 3x3/2 max pool (stride 4)."""
    x = layers.ZeroPadding2D((3, 3))(input_image)
    x = layers.Conv2D(filters, (7, 7), strides=(2, 2), use_bias=True, name="conv1")(x)
    x = BatchNorm(train_bn=train_bn, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    return layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)


def _block_letter(index: int) -> str:
    # Blocks are named a, b, c, ...; ResNet-101 stage 4 runs to "w" (chr(98 + 21)).
    return chr(ord("a") + index)


def _architecture(architecture: str):
    if architecture in BOTTLENECK_BLOCKS:
        return BOTTLENECK_BLOCKS[architecture], BOTTLENECK_FILTERS, bottleneck_block
    if architecture in BASIC_BLOCKS:
        return BASIC_BLOCKS[architecture], BASIC_FILTERS, basic_block
    known = ", ".join([*BASIC_BLOCKS, *BOTTLENECK_BLOCKS])
    raise ValueError(f"unknown backbone architecture {architecture!r}; expected one of {known}")


def resnet_graph(input_image, architecture: str, stage5: bool = True, train_bn: bool = False,
                 width: float = 1.0):
    """ResNet trunk on ``input_image`` (B, H, W, C) -> [C1, C2, C3, C4, C5] (C5 None if not stage5).

    C1 has stride 4 (after the max pool, as in matterport), C2..C5 strides 4, 8, 16, 32.
    ``width`` scales the channels of basic-block ResNets (a small demo model); bottleneck
    ResNets keep matterport's shapes.
    """
    block_counts, stage_filters, block_fn = _architecture(architecture)
    if block_fn is basic_block and width != 1.0:
        stage_filters = tuple(max(8, int(round(f * width))) for f in stage_filters)
    x = c1 = _stem(input_image, train_bn, filters=stage_filters[0] if block_fn is basic_block else 64)
    outputs = [c1]
    for stage_index, (count, filters) in enumerate(zip(block_counts, stage_filters)):
        stage = FIRST_STAGE + stage_index
        if stage == 5 and not stage5:
            outputs.append(None)
            break
        # Stage 2 keeps the stem's stride; stages 3-5 halve the resolution in their first block.
        strides = 1 if stage == FIRST_STAGE else 2
        # Bottleneck stage 2 still needs a projection (64 -> 256 channels); basic stage 2 does not.
        projection = block_fn is bottleneck_block or stage != FIRST_STAGE
        for block_index in range(count):
            first = block_index == 0
            x = block_fn(x, filters, stage, _block_letter(block_index),
                         strides=strides if first else 1, projection=projection and first,
                         train_bn=train_bn)
        outputs.append(x)
    return outputs


def build_backbone(input_image, config):
    """[C2, C3, C4, C5] feature maps (strides 4..32) for ``config.BACKBONE``.

    ``config.BACKBONE`` is an architecture name or a callable(input_image, config) returning
    [C2, C3, C4, C5] (with ``config.COMPUTE_BACKBONE_SHAPE`` giving their strides).
    """
    if callable(config.BACKBONE):
        features = list(config.BACKBONE(input_image, config))
        if len(features) != 4:
            raise ValueError(f"BACKBONE callable {config.BACKBONE!r} returned {len(features)} "
                             "feature maps; expected 4 ([C2, C3, C4, C5])")
        return features
    _, c2, c3, c4, c5 = resnet_graph(input_image, config.BACKBONE, stage5=True,
                                     train_bn=config.TRAIN_BN,
                                     width=getattr(config, "BACKBONE_WIDTH", 1.0))
    return [c2, c3, c4, c5]


def backbone_layer_names(config) -> dict:
    """{"C2": layer name, ..., "C5": layer name} of the backbone outputs, e.g. "res4w_out".

    For a callable BACKBONE the names are unknown before building, so the dict is empty; look
    at the returned tensors' layers instead.
    """
    if callable(config.BACKBONE):
        return {}
    block_counts, _, _ = _architecture(config.BACKBONE)
    return {f"C{FIRST_STAGE + i}": f"res{FIRST_STAGE + i}{_block_letter(count - 1)}_out"
            for i, count in enumerate(block_counts)}
