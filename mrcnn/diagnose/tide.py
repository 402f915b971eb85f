"""TIDE-style dAP per error type (Bolya et al. 2020), in numpy, from per-image IoU matrices.

dAP of an error type = AP50 after fixing every error of that type minus AP50 as is (clipped at
0), with TIDE's definitions and fixes (tidecv 1.0.1, ``TIDERun``):

* ``wrong_class`` (Cls) / ``localization`` (Loc): the highest-scoring such detection of a GT not
  matched otherwise becomes its true positive (with the GT's class for Cls); the others drop out;
* ``both``, ``duplicate``, ``background``: the detections drop out;
* ``missed``: GTs no detection matched and no Cls/Loc error points at stop counting as positives.

AP is COCO's 101-point interpolated AP per class (x100), averaged over classes with data. Only
IoU matrices, classes and scores are needed, so it serves boxes and masks alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mrcnn.diagnose.detection_types import false_positive_type, match_detections

ERROR_TYPES = ("wrong_class", "localization", "both", "duplicate", "background", "missed")
# TIDE's short names, for tables.
SHORT_NAMES = {"wrong_class": "Cls", "localization": "Loc", "both": "Both", "duplicate": "Dupe",
               "background": "Bkg", "missed": "Miss"}


@dataclass
class TideImage:
    """One image: ``iou`` [N, G], classes and scores of N detections, classes of G GTs."""

    iou: np.ndarray
    pred_class_ids: np.ndarray
    pred_scores: np.ndarray
    gt_class_ids: np.ndarray


@dataclass
class _Points:
    """Per class: detection points {id: (score, correct)} and the number of GT positives."""

    points: dict = field(default_factory=dict)
    positives: dict = field(default_factory=dict)

    def push(self, cls, det_id, score, correct):
        self.points.setdefault(cls, {})[det_id] = (score, correct)
        self.positives.setdefault(cls, 0)

    def add_positives(self, cls, count):
        self.points.setdefault(cls, {})
        self.positives[cls] = self.positives.get(cls, 0) + count

    def mean_ap(self) -> float:
        aps = [class_ap(list(self.points[c].values()), self.positives.get(c, 0))
               for c in self.points if self.points[c] or self.positives.get(c, 0)]
        return float(np.mean(aps)) if aps else 0.0


def class_ap(points, positives) -> float:
    """COCO 101-point AP (x100) of [(score, correct)] against ``positives`` GT objects."""
    if positives == 0:
        return 0.0
    ordered = sorted(points, key=lambda p: -p[0])  # stable: ties keep their order, as TIDE
    correct = np.array([c for _, c in ordered], bool)
    true_pos = np.cumsum(correct)
    precision = true_pos / np.arange(1, len(correct) + 1)
    recall = true_pos / positives
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    grid = np.linspace(0, 1, 101)
    at = np.searchsorted(recall, grid, side="left")
    values = np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0) \
        if len(precision) else np.zeros(101)
    return float(values.mean() * 100)


def tide_errors(images, pos_iou=0.5, bg_iou=0.1, max_dets=100) -> dict:
    """{"ap": AP50, "dap": {type: dAP}, "counts": {type: n}} over ``images`` (TideImage list)."""
    base = _Points()
    errors = []   # (type, class, det_id, score, fix) with fix: ("tp", cls) / ("drop",) / ("gt", cls)
    gt_best = {}  # (image, gt) -> (score, det_id) of the best Cls/Loc error pointing at it
    det_id = 0
    for k, image in enumerate(images):
        gt_cls = np.asarray(image.gt_class_ids)
        for cls in gt_cls:
            base.add_positives(int(cls), 1)
        order = np.argsort(-np.asarray(image.pred_scores, np.float64), kind="stable")[:max_dets]
        iou = np.asarray(image.iou, np.float64).reshape(len(image.pred_scores), len(gt_cls))[order]
        cls_ids = np.asarray(image.pred_class_ids)[order]
        scores = np.asarray(image.pred_scores, np.float64)[order]
        pred_match, gt_match = match_detections(iou, cls_ids, gt_cls, scores, pos_iou)
        same = cls_ids[:, None] == gt_cls[None, :]
        usable = np.zeros(len(gt_cls), bool)
        for d in range(len(order)):
            cls, score = int(cls_ids[d]), float(scores[d])
            base.push(cls, det_id, score, pred_match[d] >= 0)
            if pred_match[d] < 0:
                kind, g = ("background", -1) if len(gt_cls) == 0 else false_positive_type(
                    d, iou, same, gt_match >= 0, pos_iou, bg_iou)
                fix = ("drop",)
                if kind in ("wrong_class", "localization") and gt_match[g] < 0:
                    usable[g] = True
                    best = gt_best.get((k, g))
                    if best is None or best[0] < score:
                        gt_best[(k, g)] = (score, det_id)
                    fix = ("tp", int(gt_cls[g]) if kind == "wrong_class" else cls, (k, g))
                errors.append((kind, cls, det_id, score, fix))
            det_id += 1
        for g in np.flatnonzero((gt_match < 0) & ~usable):
            errors.append(("missed", int(gt_cls[g]), -1, 0.0, ("gt", int(gt_cls[g]))))
    ap = base.mean_ap()
    dap = {kind: max(_fixed(base, errors, gt_best, kind).mean_ap() - ap, 0.0)
           for kind in ERROR_TYPES}
    counts = {kind: sum(e[0] == kind for e in errors) for kind in ERROR_TYPES}
    return {"ap": ap, "dap": dap, "counts": counts}


def _fixed(base, errors, gt_best, kind) -> _Points:
    """The AP points with every error of type ``kind`` fixed (tidecv ``fix_errors``)."""
    out = _Points()
    positives = dict(base.positives)
    for error_kind, cls, det_id, score, fix in errors:
        if error_kind != kind:
            if det_id >= 0:
                out.push(cls, det_id, score, False)
            continue
        if fix[0] == "gt":
            positives[fix[1]] -= 1
        elif fix[0] == "tp" and gt_best[fix[2]][1] == det_id:
            out.push(fix[1], det_id, score, True)
    for cls, points in base.points.items():
        for det_id, (score, correct) in points.items():
            if correct:
                out.push(cls, det_id, score, True)
    for cls, count in positives.items():
        out.add_positives(cls, count)
    return out
