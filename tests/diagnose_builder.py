"""Hand-built Traces for the diagnosis tests: a tiny pipeline replayed in numpy.

The caller gives anchors, their objectness and where the RPN moves them, and a head (ROI boxes
-> class probabilities and refined boxes); ``build_trace`` runs top-k, proposal NMS, the
detection filter, per-class NMS and the instance limit exactly as the graph does, with plain
loops (independent of ``mrcnn.diagnose``'s replays), and returns a Trace with every stage the
diagnosis reads. Boxes are pixels; there is no ``image_meta``, so pixels are the model space.
"""

from __future__ import annotations

import numpy as np

from mrcnn.trace_data import Trace

SIZE = 100  # image side, pixels


def iou(a, b):
    """IoU of two pixel boxes (plain Python, the tests' own reference)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(boxes, threshold, limit):
    """Rows kept (boxes in score order): drop a box whose IoU with a kept one > threshold."""
    keep = []
    for i, box in enumerate(boxes):
        if len(keep) == limit:
            break
        if all(iou(box, boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def oracle_head(gt_boxes, gt_class_ids, num_classes=3, score=0.9):
    """Head that knows the answer: a ROI covering a GT (IoU >= 0.5) gets its class at ``score``
    (one value, or one per GT) and a refined box equal to the GT box; other ROIs are background."""
    per_gt = np.broadcast_to(np.asarray(score, np.float32), (len(gt_boxes),))

    def head(rois):
        probs = np.zeros((len(rois), num_classes), np.float32)
        refined = np.repeat(np.asarray(rois, np.float32)[:, None], num_classes, axis=1)
        for r, roi in enumerate(rois):
            overlaps = [iou(roi, g) for g in gt_boxes]
            g = int(np.argmax(overlaps)) if overlaps else -1
            if g >= 0 and overlaps[g] >= 0.5:
                cls = int(gt_class_ids[g])
                probs[r] = (1 - per_gt[g]) / (num_classes - 1)
                probs[r, cls] = per_gt[g]
                refined[r, cls] = gt_boxes[g]
            else:
                probs[r] = 0.05 / (num_classes - 1)
                probs[r, 0] = 0.95
        return probs, refined
    return head


def build_trace(anchors, anchor_scores, gt_boxes, gt_class_ids, head=None, moved=None,
                gt_masks=None, num_classes=3, **config) -> Trace:
    """A Trace of the tiny pipeline (see the module docstring).

    ``moved`` [A, 4]: the refined box of each anchor (default: the anchor itself).
    ``config``: PRE_NMS_LIMIT, RPN_NMS_THRESHOLD, POST_NMS_ROIS_INFERENCE,
    DETECTION_MIN_CONFIDENCE, DETECTION_NMS_THRESHOLD, DETECTION_MAX_INSTANCES overrides.
    """
    cfg = {"PRE_NMS_LIMIT": 100, "RPN_NMS_THRESHOLD": 0.7, "POST_NMS_ROIS_INFERENCE": 50,
           "DETECTION_MIN_CONFIDENCE": 0.7, "DETECTION_NMS_THRESHOLD": 0.3,
           "DETECTION_MAX_INSTANCES": 10, "RPN_ANCHOR_SCALES": [32], "RPN_ANCHOR_RATIOS": [0.5, 1, 2],
           "NUM_CLASSES": num_classes, **config}
    anchors = np.asarray(anchors, np.float32).reshape(-1, 4)
    scores = np.asarray(anchor_scores, np.float32)
    moved = anchors.copy() if moved is None else np.asarray(moved, np.float32)
    gt_boxes = np.asarray(gt_boxes, np.int32).reshape(-1, 4)
    gt_class_ids = np.asarray(gt_class_ids, np.int32)
    head = head or oracle_head(gt_boxes, gt_class_ids, num_classes)

    order = sorted(range(len(anchors)), key=lambda a: (-scores[a], a))[:cfg["PRE_NMS_LIMIT"]]
    order = np.array(order, np.int32)
    pre_boxes = moved[order]
    kept = np.array(greedy_nms(pre_boxes, cfg["RPN_NMS_THRESHOLD"],
                               cfg["POST_NMS_ROIS_INFERENCE"]), np.int32)
    rois = pre_boxes[kept]
    probs, refined = head(rois)
    probs, refined = np.asarray(probs, np.float32), np.asarray(refined, np.float32)

    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    best_score = probs[np.arange(len(probs)), best] if len(probs) else np.zeros(0)
    candidates = np.array([r for r in range(len(rois)) if best[r] > 0
                           and best_score[r] >= cfg["DETECTION_MIN_CONFIDENCE"]], np.int32)
    cand_boxes = refined[candidates, best[candidates]] if len(candidates) else np.zeros((0, 4))
    final = _detect(candidates, cand_boxes, best, best_score, cfg)
    det_boxes = np.round(cand_boxes[final]).astype(np.int32).reshape(-1, 4)
    stages = {
        "input": {"image": np.zeros((SIZE, SIZE, 3), np.uint8)},
        "anchors": {"boxes": anchors, "levels": np.full(len(anchors), 2, np.int32)},
        "rpn/scores": {"scores": scores},
        "proposals/pre_nms": {"boxes": pre_boxes, "unclipped": pre_boxes,
                              "scores": scores[order], "anchor_indices": order},
        "proposals/post_nms": {"boxes": rois, "scores": scores[order][kept], "indices": kept},
        "heads/class_probs": {"probs": probs},
        "heads/refined": {"boxes": refined},
        "detections/pre_nms": {"boxes": cand_boxes.astype(np.float32),
                               "class_ids": best[candidates].astype(np.int32),
                               "scores": best_score[candidates].astype(np.float32),
                               "roi_indices": candidates},
        "detections": {"boxes": det_boxes, "class_ids": best[candidates[final]].astype(np.int32),
                       "scores": best_score[candidates[final]].astype(np.float32),
                       "roi_indices": candidates[final], "pre_nms_indices": final},
        "gt": {"boxes": gt_boxes, "class_ids": gt_class_ids},
    }
    if gt_masks is not None:
        stages["gt"]["masks"] = np.asarray(gt_masks, bool)
        stages["masks"] = {"masks": _box_masks(det_boxes)}
    return Trace(stages=stages, meta={"config": cfg, "class_names": ["BG", "a", "b", "c"][:num_classes]})


def _detect(candidates, boxes, best, best_score, cfg):
    """Candidate rows kept: per-class greedy NMS by score, then the best D overall."""
    order = sorted(range(len(candidates)), key=lambda m: (-best_score[candidates[m]], m))
    kept = []
    for cls in sorted(set(best[candidates].tolist())):
        members = [m for m in order if best[candidates[m]] == cls]
        rows = greedy_nms([boxes[m] for m in members], cfg["DETECTION_NMS_THRESHOLD"],
                          cfg["DETECTION_MAX_INSTANCES"])
        kept += [members[r] for r in rows]
    kept = sorted(kept, key=lambda m: (-best_score[candidates[m]], m))
    return np.array(kept[:cfg["DETECTION_MAX_INSTANCES"]], np.int32)


def _box_masks(boxes):
    masks = np.zeros((SIZE, SIZE, len(boxes)), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[max(y1, 0):y2, max(x1, 0):x2, i] = True
    return masks


def box_mask(box):
    """[SIZE, SIZE] bool filled box."""
    out = np.zeros((SIZE, SIZE), bool)
    y1, x1, y2, x2 = box
    out[y1:y2, x1:x2] = True
    return out
