"""Dataset summary of per-image diagnoses (numpy only): what ``mrcnn analyze`` reports.

``ImageResult`` holds one image's Diagnosis plus the IoU matrices TIDE needs; ``summarize``
turns a list of them into the JSON-friendly dict written to ``report.json``:

==================  =============================================================================
key                 contents
==================  =============================================================================
``images``          number of images analysed (failed ones excluded), ``gt`` / ``detections``
``mAP50``           mean per-image VOC AP@0.5 (mask IoU; ``mrcnn.evaluate.compute_ap``)
``causes``          ``{"counts": {verdict: n}, "shares": {verdict: n / GT}}`` over every GT
``fp_types``        ``{"counts": {type: n}, "shares": {type: n / detections}}`` over detections
``per_class``       ``{class name: {"gt": {verdict: n}, "detections": {type: n}, "gt_shares",
                    "detection_shares"}}`` (shares within the class)
``per_size``        the same per ``small|medium|large`` (GT by its area, detections by their box
                    area)
``rpn_recall``      ``{"proposals": [n...], "recall": [share of GT covered by the n first]}``
``confusion``       ``{"labels": [BG, classes...], "matrix": [[...]]}`` rows = GT class (row 0:
                    detections matching no GT), columns = predicted class (column 0: missed)
``dap``             ``{"box": {"ap", "dap": {type: dAP}, "counts"}, "mask": {...}}`` (TIDE, AP50)
``worst_images``    image records sorted worst first (lowest AP50, then most errors), each with
                    its ``diagnosis`` and ``detection_areas`` (box areas, pixels², by detection)
==================  =============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrcnn.diagnose.records import (DETECTION_VERDICTS, GT_VERDICTS, SIZES, TRUE_POSITIVE,
                                    Diagnosis, coco_size)
from mrcnn.diagnose.tide import TideImage, tide_errors

RECALL_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000, 2000)


@dataclass
class ImageResult:
    """One analysed image."""

    image_id: int
    reference: str
    diagnosis: Diagnosis
    ap50: float
    box_iou: np.ndarray      # [N, G]
    mask_iou: np.ndarray     # [N, G] (box IoU again when boxes only)
    det_class_ids: np.ndarray
    det_scores: np.ndarray
    det_areas: np.ndarray    # [N] box areas (pixels²) of the detections
    gt_class_ids: np.ndarray

    def record(self) -> dict:
        """JSON record of the image for report.json (verdicts with their details)."""
        d = self.diagnosis
        counts = d.counts()
        return {"image_id": int(self.image_id), "reference": self.reference,
                "ap50": float(self.ap50), "gt": len(d.gt), "detections": len(d.detections),
                "missed": len(d.missed()), "false_positives": len(d.false_positives()),
                "causes": {k: v for k, v in counts["gt"].items() if v},
                "fp_types": {k: v for k, v in counts["detections"].items() if v},
                "detection_areas": [float(a) for a in self.det_areas],
                "diagnosis": d.to_dict()}


def summarize(results, class_names, max_proposals=None) -> dict:
    """The report dict (see the module docstring) of ``results`` (ImageResult list)."""
    gts = [v for r in results for v in r.diagnosis.gt]
    dets = [(v, r.det_areas[v.index]) for r in results for v in r.diagnosis.detections]
    gt_counts = _count((v.cause for v in gts), GT_VERDICTS)
    det_counts = _count((v.type for v, _ in dets), DETECTION_VERDICTS)
    steps = [n for n in RECALL_STEPS if max_proposals is None or n <= max_proposals]
    if max_proposals and max_proposals not in steps:
        steps.append(int(max_proposals))
    ranks = np.array([v.proposal_rank for v in gts], np.int64)
    return {
        "images": len(results), "gt": len(gts), "detections": len(dets),
        "mAP50": float(np.mean([r.ap50 for r in results])) if results else 0.0,
        "causes": {"counts": gt_counts, "shares": _shares(gt_counts, len(gts))},
        "fp_types": {"counts": det_counts, "shares": _shares(det_counts, len(dets))},
        "per_class": _per_class(gts, dets, class_names),
        "per_size": {size: _group(_count((v.cause for v in gts if v.size == size), GT_VERDICTS),
                                  _count((v.type for v, a in dets if coco_size(a) == size),
                                         DETECTION_VERDICTS))
                     for size in SIZES},
        "rpn_recall": {"proposals": steps,
                       "recall": [float(np.mean((ranks >= 0) & (ranks < n))) if len(ranks) else 0.0
                                  for n in steps]},
        "confusion": confusion_matrix(results, len(class_names), class_names),
        "dap": {"box": tide_errors([_tide(r, r.box_iou) for r in results]),
                "mask": tide_errors([_tide(r, r.mask_iou) for r in results])},
        "worst_images": [r.record() for r in sorted(results, key=_badness)],
    }


def confusion_matrix(results, num_classes, class_names=None) -> dict:
    """Rows: GT class (0 = no GT: a false positive); columns: predicted class (0 = missed).

    A GT counts once: under its matched detection's class, else under the class of a
    ``wrong_class`` detection pointing at it, else as missed. Every other false positive counts
    in row 0 under its class.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for r in results:
        d = r.diagnosis
        used = set()
        wrong = {}
        for v in d.detections:
            if v.type == "wrong_class" and v.gt >= 0 and v.gt not in wrong:
                wrong[v.gt] = v
        for g in d.gt:
            if g.detection >= 0:
                matrix[g.class_id, g.class_id] += 1
                used.add(g.detection)
            elif g.index in wrong:
                matrix[g.class_id, wrong[g.index].class_id] += 1
                used.add(wrong[g.index].index)
            else:
                matrix[g.class_id, 0] += 1
        for v in d.detections:
            if v.index not in used and v.type != TRUE_POSITIVE:
                matrix[0, v.class_id] += 1
    labels = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    return {"labels": labels, "matrix": matrix.tolist()}


def _tide(result, iou):
    return TideImage(iou, result.det_class_ids, result.det_scores, result.gt_class_ids)


def _badness(result):
    d = result.diagnosis
    return (result.ap50, -(len(d.missed()) + len(d.false_positives())), result.image_id)


def _count(values, keys) -> dict:
    out = dict.fromkeys(keys, 0)
    for value in values:
        out[value] += 1
    return out


def _shares(counts, total) -> dict:
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def _per_class(gts, dets, class_names) -> dict:
    out = {}
    for class_id, name in enumerate(class_names):
        if class_id == 0:
            continue
        out[name] = _group(
            _count((v.cause for v in gts if v.class_id == class_id), GT_VERDICTS),
            _count((v.type for v, _ in dets if v.class_id == class_id), DETECTION_VERDICTS))
    return out


def _group(gt_counts, det_counts) -> dict:
    """Counts of one class / size and their shares within it."""
    return {"gt": gt_counts, "detections": det_counts,
            "gt_shares": _shares(gt_counts, sum(gt_counts.values())),
            "detection_shares": _shares(det_counts, sum(det_counts.values()))}
