"""What the canvas draws of a diagnosis: GT boxes coloured by verdict, and the evidence of the
selected GT object (the anchors that matched it, the proposal that suppressed it, its ROI …).

``verdict_plan(trace, diagnosis, stage, selection, view) -> VerdictOverlay`` is pure and Qt-free
(tests call it directly); ``viewer.panels.verdict_layer`` applies it to pyqtgraph items beside the
stage's own overlay (``canvas_plans``), so the stage plans stay as they are. Boxes are
original-image pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.diagnosis_view import verdict_colour, verdict_title
from viewer.stages import stage_by_key

MAX_EVIDENCE_BOXES = 200   # per evidence item: "matching anchors" can be thousands
EVIDENCE_RGB = {"evidence": (190, 130, 255), "evidence_by": (255, 70, 150)}
# Evidence roles drawn as "what did it" (the suppressor, the detection that took the GT) in the
# "evidence_by" style; every other role is "evidence" (what belongs to the GT).
BY_ROLES = ("suppressed_by", "related_gt")
ROLE_TITLES = {
    "best_anchor": "best anchor", "matching_anchors": "matching anchor",
    "refined_from_matching_anchors": "refined from matching anchor",
    "suppressed": "suppressed", "suppressed_by": "suppressed by", "roi": "ROI",
    "covering_rois": "covering ROI", "right_class": "ROI", "refined_boxes": "refined box",
    "cut": "cut by max instances", "detection": "detection", "mask": "mask",
    "related_gt": "GT",
}


@dataclass
class VerdictOverlay:
    """GT outlines per verdict colour, evidence boxes per style, and their labels."""

    gt_boxes: dict = field(default_factory=dict)   # rgb tuple -> [G, 4]
    boxes: dict = field(default_factory=dict)      # "evidence" / "evidence_by" -> [N, 4]
    labels: list = field(default_factory=list)     # (box [4], text, rgb, "top" | "bottom")


def evidence_boxes(trace, evidence) -> np.ndarray:
    """[N, 4] boxes of the rows an ``Evidence`` names (its stage's boxes; for stages without
    boxes the boxes those rows index: anchors for RPN scores, ROIs for class probabilities,
    the GT class's refined box for ``heads/refined``, detection boxes for masks)."""
    rows = np.asarray(evidence.indices, np.int64).reshape(-1)[:MAX_EVIDENCE_BOXES]
    key = evidence.stage
    if key == "heads/refined" and key in trace:
        class_ids = np.asarray(evidence.values.get("class_id", 0), np.int64).reshape(-1)
        class_ids = np.resize(class_ids, len(rows)) if len(class_ids) else np.zeros_like(rows)
        boxes = np.asarray(trace[key]["boxes"])
        ok = rows < len(boxes)
        return boxes[rows[ok], class_ids[ok]].astype(np.float32).reshape(-1, 4)
    source = {"rpn/scores": "anchors", "heads/class_probs": "proposals/post_nms",
              "masks": "detections"}.get(key, key)
    if source not in trace or "boxes" not in trace[source]:
        return np.zeros((0, 4), np.float32)
    boxes = np.asarray(trace[source]["boxes"], np.float32).reshape(-1, 4)
    return boxes[rows[(rows >= 0) & (rows < len(boxes))]]


def verdict_plan(trace, diagnosis, stage: str, selection=None, view=None) -> VerdictOverlay:
    """The diagnosis overlay of viewer stage ``stage``: every GT box in its verdict's colour
    (when the "gt" overlay is shown) and, for a selected GT (or detection), its evidence items
    that live in the stage's trace stages."""
    overlay = VerdictOverlay()
    if trace is None or diagnosis is None:
        return overlay
    shows = (lambda name: True) if view is None else view.shows
    gt_boxes = np.asarray(trace["gt"]["boxes"], np.float32).reshape(-1, 4) if "gt" in trace \
        else np.zeros((0, 4), np.float32)
    if shows("gt"):
        for verdict in diagnosis.gt:
            if verdict.index < len(gt_boxes):
                rgb = verdict_colour(verdict.cause)
                overlay.gt_boxes.setdefault(rgb, []).append(gt_boxes[verdict.index])
                if not verdict.detected and shows("labels"):
                    overlay.labels.append((gt_boxes[verdict.index],
                                           f"GT {verdict.index}: {verdict_title(verdict.cause)}",
                                           rgb, "bottom"))
        overlay.gt_boxes = {rgb: np.asarray(b, np.float32) for rgb, b in overlay.gt_boxes.items()}
    verdict = selected_verdict(diagnosis, selection)
    if verdict is not None:
        _add_evidence(overlay, trace, verdict, stage, shows("labels"))
    return overlay


def selected_verdict(diagnosis, selection):
    """The GTVerdict / DetectionVerdict of a "gt" / "detection" selection, or None."""
    if diagnosis is None or selection is None:
        return None
    items = {"gt": diagnosis.gt, "detection": diagnosis.detections}.get(selection.kind)
    if items is None or not 0 <= selection.index < len(items):
        return None
    return items[selection.index]


def _add_evidence(overlay, trace, verdict, stage, labels) -> None:
    try:
        shown = set(stage_by_key(stage).needs)
    except KeyError:
        return
    shown |= {"detections", "gt"} if stage in ("composite", "masks", "raw_masks") else set()
    boxes = {"evidence": [], "evidence_by": []}
    for item in verdict.evidence:
        if item.stage not in shown:
            continue
        found = evidence_boxes(trace, item)
        style = "evidence_by" if item.role in BY_ROLES else "evidence"
        boxes[style].extend(found)
        if labels and len(found):
            _add_label(overlay.labels, found[0], _evidence_label(item, trace.class_names),
                       EVIDENCE_RGB[style])
    overlay.boxes = {style: np.asarray(b, np.float32).reshape(-1, 4)
                     for style, b in boxes.items() if b}


def _add_label(labels, box, text, rgb) -> None:
    """A top-corner label; one on the same box as an earlier one joins it as a second line
    (the ROI of a verdict is often also the first covering ROI)."""
    for i, (other, other_text, other_rgb, corner) in enumerate(labels):
        if corner == "top" and np.array_equal(other, box):
            labels[i] = (other, f"{other_text}\n{text}", other_rgb, corner)
            return
    labels.append((box, text, rgb, "top"))


def _evidence_label(item, class_names=()) -> str:
    """'suppressed by · IoU 0.65' — the role and the first row's main number; an ROI's two
    most likely classes ('ROI 7 · BG 0.94, triangle 0.05')."""
    text = ROLE_TITLES.get(item.role, item.role.replace("_", " "))
    if len(item.indices) > 1:
        text += f" ×{len(item.indices)}"
    elif item.indices:
        text += f" {item.indices[0]}"
    probs = item.values.get("probs")
    if probs:
        row = np.asarray(probs[0], float)
        names = list(class_names or [])
        top = np.argsort(-row, kind="stable")[:2]
        return text + " · " + ", ".join(
            f"{names[c] if c < len(names) else c} {row[c]:.2f}" for c in top)
    for name, label in (("iou", "IoU"), ("score", "score"), ("rank", "rank"),
                        ("mask_iou", "mask IoU")):
        values = item.values.get(name)
        if values:
            value = values[0]
            text += f" · {label} {value:.2f}" if isinstance(value, float) else f" · {label} {value}"
            break
    return text
