"""Box and mask overlaps and NMS replays for the diagnosis (numpy only)."""

from __future__ import annotations

import numpy as np

from mrcnn.boxes import compute_overlaps
from mrcnn.trace_data import original_to_normalized


def box_iou(boxes, others) -> np.ndarray:
    """[N, M] IoU of [N, 4] and [M, 4] boxes (any unit, ``[y1, x1, y2, x2]``); empty-safe."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    others = np.asarray(others, np.float64).reshape(-1, 4)
    if len(boxes) == 0 or len(others) == 0:
        return np.zeros((len(boxes), len(others)))
    return compute_overlaps(boxes, others)


def mask_iou(mask_a, mask_b) -> float:
    """IoU of two [H, W] boolean masks (0.0 when both are empty)."""
    union = np.count_nonzero(mask_a | mask_b)
    return float(np.count_nonzero(mask_a & mask_b) / union) if union else 0.0


def model_space(trace, boxes) -> np.ndarray:
    """``boxes`` (original pixels) in the coordinates the graph's NMS used (normalized).

    IoU is nearly the same in both, but replaying an NMS decision at its threshold needs the
    exact coordinates; traces without ``image_meta`` keep pixels.
    """
    meta = trace.meta.get("image_meta")
    if not meta or "molded_shape" not in meta:
        return np.asarray(boxes, np.float64).reshape(-1, 4)
    return original_to_normalized(boxes, meta).astype(np.float64)


def proposal_suppressor(trace, row: int, threshold: float) -> int:
    """Row of ``proposals/pre_nms`` whose NMS removed pre-NMS row ``row``; -1 if none did.

    Greedy NMS walks the pre-NMS rows in score order (they are stored that way): ``row`` is
    removed by the first kept row above it whose IoU with it exceeds ``threshold``. -1 means no
    kept row did, so it was cut by the proposal count (POST_NMS_ROIS_INFERENCE).
    """
    pre = trace["proposals/pre_nms"]
    kept = np.sort(trace["proposals/post_nms"]["indices"])
    kept = kept[kept < row]
    if len(kept) == 0:
        return -1
    boxes = model_space(trace, pre["boxes"][np.concatenate([[row], kept])])
    iou = box_iou(boxes[:1], boxes[1:])[0]
    over = np.flatnonzero(iou > threshold)
    return int(kept[over[0]]) if len(over) else -1


class DetectionNmsReplay:
    """Replays the detection layer's per-class NMS and count limit over ``detections/pre_nms``.

    ``fate[m]`` of candidate m: ``("kept", rank)``, ``("suppressed", by_candidate)`` or
    ``("cut", rank)`` (survived NMS but beyond DETECTION_MAX_INSTANCES).
    """

    def __init__(self, trace, nms_threshold: float, max_instances: int):
        stage = trace["detections/pre_nms"]
        self.class_ids = np.asarray(stage["class_ids"])
        scores = np.asarray(stage["scores"], np.float64)
        self.boxes = model_space(trace, stage["boxes"])
        # The layer's NMS order: descending score, ties to the lower ROI (= candidate) index.
        self.order = np.argsort(-scores, kind="stable")
        self.threshold = nms_threshold
        self.max_instances = max_instances
        self.fate = {}
        self._survivors = []   # candidates that passed NMS, in order
        self._position = 0

    def fate_of(self, candidate: int):
        """The fate of candidate ``candidate``, replaying only as far as needed."""
        while candidate not in self.fate and self._position < len(self.order):
            self._step(int(self.order[self._position]))
            self._position += 1
        return self.fate.get(candidate, ("cut", -1))

    def _step(self, m):
        same = [s for s in self._survivors if self.class_ids[s] == self.class_ids[m]]
        if same:
            iou = box_iou(self.boxes[m:m + 1], self.boxes[same])[0]
            over = np.flatnonzero(iou > self.threshold)
            if len(over):
                self.fate[m] = ("suppressed", int(same[over[0]]))
                return
        rank = len(self._survivors)
        self._survivors.append(m)
        self.fate[m] = ("kept", rank) if rank < self.max_instances else ("cut", rank)
