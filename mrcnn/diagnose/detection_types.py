"""Final detections against ground truth: the matching and TIDE's false-positive types.

Matching (as TIDE and COCO): detections in descending score order each take the unmatched GT of
their class with the highest IoU, if that IoU >= ``pos_iou``. Unmatched detections get TIDE's
type, tested in TIDE's order (tidecv ``TIDERun._eval_image``):

1. ``localization``: best IoU with a GT of its class in [bg_iou, pos_iou];
2. ``wrong_class``: IoU >= pos_iou with a GT of another class;
3. ``duplicate``: IoU >= pos_iou with a GT of its class that another detection already took;
4. ``background``: IoU <= bg_iou with every GT (or no GT at all);
5. ``both``: anything else (wrong class and poorly localized).
"""

from __future__ import annotations

import numpy as np


def match_detections(iou, pred_class_ids, gt_class_ids, pred_scores, pos_iou):
    """(pred_match [N] GT row or -1, gt_match [G] detection row or -1), TIDE's greedy matching."""
    iou = np.asarray(iou, np.float64).reshape(len(pred_class_ids), len(gt_class_ids))
    same = np.asarray(pred_class_ids)[:, None] == np.asarray(gt_class_ids)[None, :]
    buffer = iou * same
    pred_match = np.full(len(pred_class_ids), -1, np.int64)
    gt_match = np.full(len(gt_class_ids), -1, np.int64)
    if buffer.size == 0:
        return pred_match, gt_match
    for d in np.argsort(-np.asarray(pred_scores, np.float64), kind="stable"):
        g = int(np.argmax(buffer[d]))
        if buffer[d, g] >= pos_iou:
            pred_match[d], gt_match[g] = g, d
            buffer[:, g] = 0.0
    return pred_match, gt_match


def false_positive_type(d, iou, same, gt_used, pos_iou, bg_iou):
    """(type, related GT row or -1) of unmatched detection ``d`` (see the module docstring)."""
    if iou.shape[1] == 0:
        return "background", -1
    cls_iou = iou[d] * same[d]
    g = int(np.argmax(cls_iou))
    if bg_iou <= cls_iou[g] <= pos_iou:
        return "localization", g
    other_iou = iou[d] * ~same[d]
    g = int(np.argmax(other_iou))
    if other_iou[g] >= pos_iou:
        return "wrong_class", g
    used_iou = cls_iou * gt_used
    g = int(np.argmax(used_iou))
    if used_iou[g] >= pos_iou:
        return "duplicate", g
    g = int(np.argmax(iou[d]))
    if iou[d, g] <= bg_iou:
        return "background", -1
    return "both", g


def classify_detections(iou, pred_class_ids, gt_class_ids, pred_scores, pos_iou=0.5,
                        bg_iou=0.1):
    """(types [N] str, related GT [N] int, gt_match [G]) for one image's detections.

    ``iou`` [N, G] (box or mask IoU). True positives have type ``"true_positive"`` and their
    matched GT; see the module docstring for the rest.
    """
    iou = np.asarray(iou, np.float64).reshape(len(pred_class_ids), len(gt_class_ids))
    pred_match, gt_match = match_detections(iou, pred_class_ids, gt_class_ids, pred_scores,
                                            pos_iou)
    same = np.asarray(pred_class_ids)[:, None] == np.asarray(gt_class_ids)[None, :]
    gt_used = gt_match >= 0
    types, related = [], []
    for d in range(len(pred_class_ids)):
        if pred_match[d] >= 0:
            kind, g = "true_positive", int(pred_match[d])
        else:
            kind, g = false_positive_type(d, iou, same, gt_used, pos_iou, bg_iou)
        types.append(kind)
        related.append(g)
    return types, np.array(related, np.int64), gt_match
