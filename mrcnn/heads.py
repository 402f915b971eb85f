"""Mask R-CNN heads on FPN features: box classifier/regressor and mask head (matterport names).

Shape shorthand: B images, N ROIs per image, C classes, F = fc_layers_size, p = pool size,
ROIs normalized ``[y1, x1, y2, x2]``.

Layer names and weight shapes are matterport's (``mrcnn_class_conv1`` kernel (p, p, 256, F),
``mrcnn_bbox_fc`` kernel (F, 4C), ``mrcnn_mask`` kernel (1, 1, 256, C), ...), and the per-ROI
layers are wrapped in a TimeDistributed layer of the same name as there, so matterport's HDF5
weights load by name. The wrapper is ``RoiTimeDistributed``: Keras 3's own TimeDistributed
unrolls a Python loop over a static time axis (one conv per ROI, 1000 ROIs at inference), so this
subclass folds the ROI axis into the batch axis instead - same weights, same numbers.
"""

from __future__ import annotations

import keras
from keras import layers

from mrcnn.backbone import BatchNorm
from mrcnn.layers.roi_align import PyramidROIAlign
from mrcnn.precision import BOX_DTYPE

# Channels of the mask head's convolutions (matterport's value; its weights have this shape).
MASK_HEAD_CHANNELS = 256


@keras.saving.register_keras_serializable(package="mrcnn")
class RoiTimeDistributed(layers.TimeDistributed):
    """TimeDistributed that runs its layer once on (B*N, ...) instead of N times on (B, ...)."""

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(f"RoiTimeDistributed {self.name}: masks are not supported")
        # (B, N, ...) -> (B*N, ...) -> layer -> (B, N, ...)
        shape = keras.ops.shape(inputs)
        folded = keras.ops.reshape(inputs, (-1, *_dims(inputs)[2:]))
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        outputs = self.layer.call(folded, **kwargs)
        return keras.ops.reshape(outputs, (shape[0], shape[1], *_dims(outputs)[1:]))


def _dims(tensor):
    """Static sizes of ``tensor`` where known, dynamic ones elsewhere (for reshape targets)."""
    dynamic = keras.ops.shape(tensor)
    return [size if size is not None else dynamic[i] for i, size in enumerate(tensor.shape)]


def _conv_bn_relu(x, filters, kernel_size, padding, conv_name, bn_name, train_bn):
    """RoiTimeDistributed Conv2D ``conv_name`` -> BatchNorm ``bn_name`` -> relu."""
    x = RoiTimeDistributed(layers.Conv2D(filters, kernel_size, padding=padding),
                           name=conv_name)(x)
    x = RoiTimeDistributed(BatchNorm(train_bn=train_bn), name=bn_name)(x)
    return layers.Activation("relu")(x)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=False, fc_layers_size=1024):
    """Classifier + box regressor head.

    ``rois (B, N, 4)`` normalized, ``feature_maps`` [P2, P3, P4, P5], ``image_meta (B, META)``.
    Returns ``mrcnn_class_logits (B, N, C)``, ``mrcnn_probs (B, N, C)`` softmax,
    ``mrcnn_bbox (B, N, C, 4)`` class-specific deltas (dy, dx, log dh, log dw) / BBOX_STD_DEV.
    """
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_classifier")(
        [rois, image_meta, *feature_maps])  # (B, N, p, p, 256)
    # The two "fully connected" layers are convolutions: a p x p valid conv, then a 1x1 conv.
    x = _conv_bn_relu(x, fc_layers_size, (pool_size, pool_size), "valid", "mrcnn_class_conv1",
                      "mrcnn_class_bn1", train_bn)
    x = _conv_bn_relu(x, fc_layers_size, (1, 1), "valid", "mrcnn_class_conv2",
                      "mrcnn_class_bn2", train_bn)
    # (B, N, 1, 1, F) -> (B, N, F)
    shared = layers.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)

    mrcnn_class_logits = RoiTimeDistributed(layers.Dense(num_classes),
                                            name="mrcnn_class_logits")(shared)
    # Softmax and the box deltas are float32 under any policy (detection's box math reads them).
    mrcnn_probs = RoiTimeDistributed(layers.Activation("softmax", dtype=BOX_DTYPE),
                                     name="mrcnn_class", dtype=BOX_DTYPE)(mrcnn_class_logits)
    x = RoiTimeDistributed(layers.Dense(num_classes * 4, activation="linear"),
                           name="mrcnn_bbox_fc")(shared)
    mrcnn_bbox = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox",
                                dtype=BOX_DTYPE)(x)  # (B, N, C, 4)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=False, channels=MASK_HEAD_CHANNELS):
    """Mask head: ``rois (B, N, 4)`` normalized -> ``mrcnn_mask (B, N, 2p, 2p, C)`` sigmoid."""
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_mask")(
        [rois, image_meta, *feature_maps])  # (B, N, p, p, 256)
    for index in range(1, 5):
        x = _conv_bn_relu(x, channels, (3, 3), "same", f"mrcnn_mask_conv{index}",
                          f"mrcnn_mask_bn{index}", train_bn)
    x = RoiTimeDistributed(layers.Conv2DTranspose(channels, (2, 2), strides=2,
                                                  activation="relu"),
                           name="mrcnn_mask_deconv")(x)  # (B, N, 2p, 2p, 256)
    # The last 1x1 convolution and its sigmoid compute in float32 under any policy: a bfloat16
    # sigmoid cannot tell 0.996 from 1 (the mask loss' log), and this layer is cheap.
    return RoiTimeDistributed(layers.Conv2D(num_classes, (1, 1), strides=1,
                                            activation="sigmoid", dtype=BOX_DTYPE),
                              name="mrcnn_mask", dtype=BOX_DTYPE)(x)
