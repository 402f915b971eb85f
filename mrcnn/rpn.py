"""Region Proposal Network: one shared sub-model applied to every pyramid level.

Shape shorthand: B images; Hi x Wi the size of pyramid level i; A anchors per location
(len(RPN_ANCHOR_RATIOS)); N = sum over levels of Hi*Wi*A / anchor_stride**2 anchors in all.
Per anchor the RPN predicts ``objectness`` logits (background, foreground) and box ``deltas``
(dy, dx, log(dh), log(dw)) divided by RPN_BBOX_STD_DEV.
"""

from __future__ import annotations

import keras
from keras import layers

from mrcnn.precision import BOX_DTYPE

RPN_SHARED_CHANNELS = 512


def build_rpn_model(anchor_stride: int, anchors_per_location: int, depth: int,
                    channels: int = RPN_SHARED_CHANNELS) -> keras.Model:
    """The ``rpn_model`` sub-model: feature map (B, Hi, Wi, depth) -> [logits, probs, deltas].

    Outputs: rpn_class_logits (B, Hi*Wi*A, 2), rpn_probs (B, Hi*Wi*A, 2) softmax,
    rpn_bbox (B, Hi*Wi*A, 4). Layer names match matterport so its weights load by name.
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(channels, (3, 3), padding="same", activation="relu",
                           strides=anchor_stride, name="rpn_conv_shared")(feature_map)

    class_raw = layers.Conv2D(2 * anchors_per_location, (1, 1), padding="valid",
                              activation="linear", name="rpn_class_raw")(shared)
    # (B, Hi, Wi, A*2) -> (B, Hi*Wi*A, 2): anchors ordered row, column, then ratio.
    class_logits = layers.Reshape((-1, 2))(class_raw)
    # Softmax in float32 under any policy: scores feed top-k and NMS.
    probs = layers.Activation("softmax", dtype=BOX_DTYPE)(class_logits)

    bbox_raw = layers.Conv2D(4 * anchors_per_location, (1, 1), padding="valid",
                             activation="linear", name="rpn_bbox_pred")(shared)
    # (B, Hi, Wi, A*4) -> (B, Hi*Wi*A, 4)
    deltas = layers.Reshape((-1, 4))(bbox_raw)
    return keras.Model(feature_map, [class_logits, probs, deltas], name="rpn_model")


def apply_rpn(rpn_model: keras.Model, feature_maps):
    """Run ``rpn_model`` on each level and concatenate: (rpn_class_logits, rpn_probs, rpn_bbox).

    Shapes (B, N, 2), (B, N, 2), (B, N, 4); levels in the order given (P2..P6), matching the
    anchor order of ``mrcnn.anchors``.
    """
    per_level = [rpn_model(feature_map) for feature_map in feature_maps]
    logits, probs, deltas = zip(*per_level)
    # The outputs are float32 in every precision (box math and losses read them).
    return (layers.Concatenate(axis=1, name="rpn_class_logits", dtype=BOX_DTYPE)(list(logits)),
            layers.Concatenate(axis=1, name="rpn_class", dtype=BOX_DTYPE)(list(probs)),
            layers.Concatenate(axis=1, name="rpn_bbox", dtype=BOX_DTYPE)(list(deltas)))
