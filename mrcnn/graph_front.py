"""The front both graphs share: backbone -> FPN -> shared RPN -> ProposalLayer.

Inference and training differ only in how many proposals survive NMS (POST_NMS_ROIS_INFERENCE
vs POST_NMS_ROIS_TRAINING) and in what follows; building the front in one place keeps the two
graphs' layer names, and so their weights, identical.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mrcnn.backbone import build_backbone
from mrcnn.config import Config
from mrcnn.fpn import build_fpn
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.rpn import apply_rpn, build_rpn_model


class GraphFront(NamedTuple):
    """Keras tensors of the shared front (B = batch, A = anchors, K = pre-NMS, R = proposals)."""

    feature_maps: list        # [P2, P3, P4, P5]: what the heads pool from
    rpn_class_logits: object  # (B, A, 2)
    rpn_class: object         # (B, A, 2) softmax
    rpn_bbox: object          # (B, A, 4) deltas / RPN_BBOX_STD_DEV
    proposals: tuple          # ProposalLayer outputs: rois (B, R, 4) normalized, then the
                              # pre-NMS boxes, anchor indices, post-NMS indices, pre-NMS scores


def build_graph_front(image, anchors, config: Config, proposal_count: int) -> GraphFront:
    """Backbone, FPN (P2-P6), the shared ``rpn_model`` over every level, and proposals."""
    c2, c3, c4, c5 = build_backbone(image, config)
    p2, p3, p4, p5, p6 = build_fpn(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                          config.TOP_DOWN_PYRAMID_SIZE, channels=config.RPN_CONV_CHANNELS)
    rpn_class_logits, rpn_class, rpn_bbox = apply_rpn(rpn, [p2, p3, p4, p5, p6])
    proposals = ProposalLayer(
        proposal_count=proposal_count,
        nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=np.asarray(config.RPN_BBOX_STD_DEV).tolist(),
        name="ROI",
    )([rpn_class, rpn_bbox, anchors])
    return GraphFront([p2, p3, p4, p5], rpn_class_logits, rpn_class, rpn_bbox, tuple(proposals))
