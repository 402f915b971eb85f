"""RPN training targets (numpy), with matterport's ``build_rpn_targets`` semantics.

Shape shorthand: A anchors, G ground-truth instances, R = ``config.RPN_TRAIN_ANCHORS_PER_IMAGE``.
Boxes are ``[y1, x1, y2, x2]`` in pixels of the molded image (anchors and GT alike).

Each anchor gets one of three match states:

* ``POSITIVE`` — it overlaps a GT box enough to be trained as an object and to regress to it;
* ``NEGATIVE`` — it overlaps no GT box enough and is trained as background;
* ``NEUTRAL``  — it takes no part in the loss (in-between IoU, near a crowd, or not sampled).
"""

from __future__ import annotations

import numpy as np

from mrcnn.boxes import box_refinement, compute_overlaps

POSITIVE = 1
NEGATIVE = -1
NEUTRAL = 0

# IoU thresholds of matterport's RPN matcher.
POSITIVE_IOU = 0.7
NEGATIVE_IOU = 0.3
# An anchor whose IoU with any crowd box reaches this is never used as a negative: a crowd
# region holds objects that were not annotated one by one.
CROWD_IOU = 0.001


def build_rpn_targets(anchors, gt_class_ids, gt_boxes, config, rng=None):
    """Match [A, 4] pixel anchors to GT; return (rpn_match [A] int32, rpn_bbox [R, 4] float32).

    IoUs are computed in float64 whatever the input dtype, so exact ties (several anchors
    equally best for a GT box, all of which become positive) are the same as matterport's.

    ``gt_class_ids`` [G] int: > 0 an object, < 0 a crowd region, 0 padding (ignored).
    ``gt_boxes`` [G, 4] pixels. ``rpn_match`` holds POSITIVE / NEGATIVE / NEUTRAL per anchor;
    ``rpn_bbox`` row k holds the deltas (divided by ``config.RPN_BBOX_STD_DEV``) from the k-th
    positive anchor (in anchor order) to its best GT box; rows past the positives are zero.
    ``rng`` (``np.random.Generator``) drives the subsampling, so a seeded one is reproducible.
    """
    rng = np.random.default_rng() if rng is None else rng
    # float64 as generated (and as matterport compares them): a float32 copy rounds the anchors'
    # irrational sides (scale * sqrt(ratio)) differently per anchor, which breaks exact IoU ties
    # and so changes which anchors are a GT box's best match.
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(gt_class_ids) != len(gt_boxes):
        raise ValueError(f"build_rpn_targets: gt_class_ids has {len(gt_class_ids)} entries but "
                         f"gt_boxes has {len(gt_boxes)} rows; expected one class id per box")
    samples = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)

    crowd_boxes = gt_boxes[gt_class_ids < 0]
    gt_boxes = gt_boxes[gt_class_ids > 0]
    rpn_match = np.full([len(anchors)], NEUTRAL, dtype=np.int32)

    can_be_negative = np.ones([len(anchors)], dtype=bool)
    if len(crowd_boxes):
        can_be_negative = compute_overlaps(anchors, crowd_boxes).max(axis=1) < CROWD_IOU

    if len(gt_boxes):
        overlaps = compute_overlaps(anchors, gt_boxes)  # (A, G)
        best_gt = overlaps.argmax(axis=1)
        best_iou = overlaps[np.arange(len(anchors)), best_gt]
        rpn_match[(best_iou < NEGATIVE_IOU) & can_be_negative] = NEGATIVE
        # Every GT box gets its best anchor(s) — ties included — even below POSITIVE_IOU, so a
        # small or oddly shaped object still trains the RPN. A GT box that overlaps no anchor at
        # all has no best anchor (matterport would mark every anchor positive there).
        column_best = overlaps.max(axis=0)
        is_best = (overlaps == column_best[None, :]) & (column_best[None, :] > 0)
        rpn_match[is_best.any(axis=1)] = POSITIVE
        rpn_match[best_iou >= POSITIVE_IOU] = POSITIVE
    else:
        best_gt = np.zeros([len(anchors)], dtype=np.int64)
        rpn_match[can_be_negative] = NEGATIVE

    _subsample(rpn_match, POSITIVE, samples // 2, rng)
    _subsample(rpn_match, NEGATIVE, samples - int(np.sum(rpn_match == POSITIVE)), rng)

    rpn_bbox = np.zeros([samples, 4], dtype=np.float32)
    positive_ix = np.flatnonzero(rpn_match == POSITIVE)
    if len(positive_ix):
        deltas = box_refinement(anchors[positive_ix], gt_boxes[best_gt[positive_ix]])
        rpn_bbox[:len(positive_ix)] = deltas / np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    return rpn_match, rpn_bbox


def _subsample(rpn_match, state, keep, rng):
    """Set random anchors of ``state`` to NEUTRAL, in place, until at most ``keep`` remain."""
    ids = np.flatnonzero(rpn_match == state)
    extra = len(ids) - max(int(keep), 0)
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = NEUTRAL


def rpn_match_summary(rpn_match) -> dict:
    """Counts of each match state in an [A] (or [B, A]) ``rpn_match``: positive/negative/neutral/total."""
    rpn_match = np.asarray(rpn_match)
    return {
        "positive": int(np.sum(rpn_match == POSITIVE)),
        "negative": int(np.sum(rpn_match == NEGATIVE)),
        "neutral": int(np.sum(rpn_match == NEUTRAL)),
        "total": int(rpn_match.size),
    }
