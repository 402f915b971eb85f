"""ProposalLayer: RPN scores + deltas + anchors -> NMS'd region proposals (matterport semantics).

Shape shorthand: B images, N anchors, K = min(pre_nms_limit, N) pre-NMS boxes,
P = proposal_count. Boxes are normalized ``[y1, x1, y2, x2]``.

Besides the proposals the layer returns what the trace needs to follow one proposal back to its
anchor: the refined pre-NMS boxes, their anchor indices and scores, and for each proposal the
pre-NMS row it came from.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.boxes import apply_box_deltas_tf, clip_boxes_tf
from mrcnn.precision import float32_layer_kwargs

# Proposals never leave the (normalized) image.
_UNIT_WINDOW = (0.0, 0.0, 1.0, 1.0)
# post_nms_indices value of a padding row.
PADDING_INDEX = -1


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Top-k anchors by foreground score, refined by deltas, clipped, NMS'd, zero-padded.

    Inputs ``[rpn_probs (B, N, 2), rpn_bbox (B, N, 4), anchors (B, N, 4) normalized]``.
    Outputs, a list:

    * ``proposals (B, P, 4)`` float32, normalized, zero rows after the kept ones;
    * ``pre_nms_boxes (B, K, 4)`` float32, refined + clipped anchors in descending score order;
    * ``pre_nms_anchor_indices (B, K)`` int32, index of each pre-NMS box into ``anchors``;
    * ``post_nms_indices (B, P)`` int32, index of each proposal into the pre-NMS rows, -1 = padding;
    * ``pre_nms_scores (B, K)`` float32, foreground score of each pre-NMS box.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        # Anchors, deltas and NMS in float32 under any policy (NMS takes no bfloat16).
        super().__init__(**float32_layer_kwargs(kwargs))
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]
        if len(self.rpn_bbox_std_dev) != 4:
            raise ValueError(f"ProposalLayer {self.name}: rpn_bbox_std_dev needs 4 values, "
                             f"got {self.rpn_bbox_std_dev}")

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs
        scores = rpn_probs[:, :, 1]  # (B, N) foreground probability
        k = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        top = tf.math.top_k(scores, k, sorted=True)
        pre_nms_scores, anchor_indices = top.values, top.indices  # (B, K)
        deltas = tf.gather(rpn_bbox, anchor_indices, batch_dims=1)  # (B, K, 4)
        deltas = deltas * tf.constant(self.rpn_bbox_std_dev, dtype=deltas.dtype)
        pre_nms_anchors = tf.gather(anchors, anchor_indices, batch_dims=1)  # (B, K, 4)

        # Box math is row-wise: fold the batch into rows (B, K, 4) -> (B*K, 4) and back.
        flat_boxes = apply_box_deltas_tf(tf.reshape(pre_nms_anchors, [-1, 4]),
                                         tf.reshape(deltas, [-1, 4]))
        flat_boxes = clip_boxes_tf(flat_boxes, tf.constant(_UNIT_WINDOW, flat_boxes.dtype))
        pre_nms_boxes = tf.reshape(flat_boxes, tf.shape(pre_nms_anchors))

        proposals, post_nms_indices = tf.map_fn(
            self._nms_one_image, (pre_nms_boxes, pre_nms_scores),
            fn_output_signature=(tf.TensorSpec([self.proposal_count, 4], pre_nms_boxes.dtype),
                                 tf.TensorSpec([self.proposal_count], tf.int32)))
        return [proposals, pre_nms_boxes, anchor_indices, post_nms_indices, pre_nms_scores]

    def _nms_one_image(self, boxes_and_scores):
        """(K, 4) boxes + (K,) scores -> (P, 4) kept boxes zero-padded, (P,) rows -1-padded."""
        boxes, scores = boxes_and_scores
        keep = tf.image.non_max_suppression(boxes, scores, self.proposal_count,
                                            self.nms_threshold)
        keep = tf.cast(keep, tf.int32)
        padding = self.proposal_count - tf.shape(keep)[0]
        proposals = tf.pad(tf.gather(boxes, keep), [[0, padding], [0, 0]])
        keep = tf.pad(keep, [[0, padding]], constant_values=PADDING_INDEX)
        return proposals, keep

    def _pre_nms_count(self, num_anchors):
        return None if num_anchors is None else min(self.pre_nms_limit, int(num_anchors))

    def compute_output_shape(self, input_shape):
        batch, num_anchors = input_shape[2][0], input_shape[2][1]
        k = self._pre_nms_count(num_anchors)
        return [(batch, self.proposal_count, 4), (batch, k, 4), (batch, k),
                (batch, self.proposal_count), (batch, k)]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([tuple(x.shape) for x in inputs])
        dtypes = ["float32", "float32", "int32", "int32", "float32"]
        return [keras.KerasTensor(s, dtype=d) for s, d in zip(shapes, dtypes)]

    def get_config(self):
        config = super().get_config()
        config.update(proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev)
        return config
