"""Comparing a low-precision model's detections with float32's: "twins".

A float32 detection has a twin when the other model returns a detection of the same class whose
box overlaps it with IoU >= TWIN_IOU (issue 14's accuracy criterion: >= 95% of float32 detections
with score >= 0.5 have a bfloat16 twin). Boxes are ``[y1, x1, y2, x2]`` in pixels.
"""

from __future__ import annotations

import numpy as np

from mrcnn.boxes import compute_overlaps

TWIN_IOU = 0.9


def twin_rows(boxes, class_ids, other_boxes, other_class_ids, min_iou=TWIN_IOU) -> np.ndarray:
    """For each row of ``boxes`` [N, 4], the row of its best same-class twin in ``other_boxes``
    [M, 4] (IoU >= ``min_iou``), or -1: an int64 array [N]."""
    twins = np.full(len(boxes), -1, np.int64)
    if len(boxes) == 0 or len(other_boxes) == 0:
        return twins
    iou = compute_overlaps(np.asarray(boxes, np.float64), np.asarray(other_boxes, np.float64))
    iou[np.asarray(class_ids)[:, None] != np.asarray(other_class_ids)[None, :]] = 0.0
    best = iou.argmax(axis=1)
    found = iou[np.arange(len(boxes)), best] >= min_iou
    twins[found] = best[found]
    return twins


def twin_counts(reference: dict, other: dict, min_score: float = 0.5) -> tuple[int, int]:
    """(reference detections with score >= min_score, how many of them have a twin in other);
    both are detect() results (``rois``, ``class_ids``, ``scores``)."""
    keep = np.asarray(reference["scores"]) >= min_score
    twins = twin_rows(np.asarray(reference["rois"])[keep], np.asarray(reference["class_ids"])[keep],
                      other["rois"], other["class_ids"])
    return int(keep.sum()), int(np.sum(twins >= 0))
