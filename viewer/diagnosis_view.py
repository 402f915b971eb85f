"""What the viewer shows of a trace's diagnosis (issue 13): verdict names, colours, the viewer
stage each verdict is shown at, and the Diagnosis of the session's trace.

Qt-free and TensorFlow-free (``mrcnn.diagnose`` is numpy only). The diagnosis comes with the
trace when it was traced with ground truth (``mrcnn.trace.trace(..., gt=...)`` attaches it;
``mrcnn analyze --save-traces`` too); an older trace with ground truth is diagnosed here, once
(0.6 ms on the demo sample), and the result stored in its meta so a saved trace keeps it.
"""

from __future__ import annotations

from mrcnn.diagnose import REQUIRED_STAGES, Diagnosis, diagnose

# Viewer stage (``viewer.stages`` key) that shows what lost a GT object, by cause. The
# diagnosis names trace stages (``CAUSE_STAGE``); the stepper shows viewer stages.
CAUSE_VIEW_STAGE = {
    "detected": "composite",
    "no_anchor": "anchors",
    "rpn_rank": "rpn_scores",
    "proposal_refinement": "refined_anchors",
    "proposal_nms": "proposals",
    "background": "roi_refinement",
    "wrong_class": "roi_refinement",
    "low_score": "roi_refinement",
    "box_regression": "roi_refinement",
    "detection_nms": "detections",
    "max_instances": "detections",
    "mask": "masks",
}
# Readable verdict names (tables, filters, canvas labels).
VERDICT_TITLES = {
    "detected": "detected", "no_anchor": "no anchor", "rpn_rank": "RPN rank",
    "proposal_refinement": "proposal refinement", "proposal_nms": "proposal NMS",
    "background": "called background", "wrong_class": "wrong class", "low_score": "low score",
    "box_regression": "box regression", "detection_nms": "detection NMS",
    "max_instances": "max instances", "mask": "mask",
    "true_positive": "true positive", "duplicate": "duplicate", "localization": "localization",
    "both": "class + location", "background_fp": "background",
}
# RGB per verdict: green found, red lost early (RPN), orange lost in the heads, yellow late.
VERDICT_COLOURS = {
    "detected": (60, 220, 90), "true_positive": (60, 220, 90),
    "no_anchor": (255, 60, 60), "rpn_rank": (255, 60, 60), "proposal_refinement": (255, 60, 60),
    "proposal_nms": (255, 60, 60),
    "background": (255, 140, 30), "wrong_class": (255, 140, 30), "low_score": (255, 140, 30),
    "box_regression": (255, 140, 30),
    "detection_nms": (255, 220, 40), "max_instances": (255, 220, 40), "mask": (255, 220, 40),
    "duplicate": (255, 220, 40), "localization": (255, 140, 30), "both": (255, 140, 30),
}
FP_BACKGROUND_COLOUR = (255, 60, 60)


def verdict_title(verdict: str, detection: bool = False) -> str:
    """Readable name of a GT cause or (``detection``) a detection type."""
    if detection and verdict == "background":
        return VERDICT_TITLES["background_fp"]
    return VERDICT_TITLES.get(verdict, verdict.replace("_", " "))


def verdict_colour(verdict: str, detection: bool = False) -> tuple:
    """RGB of a GT cause or (``detection``) a detection type."""
    if detection and verdict == "background":
        return FP_BACKGROUND_COLOUR
    return VERDICT_COLOURS.get(verdict, (200, 200, 200))


def view_stage_of(cause: str) -> str:
    """The viewer stage to show for GT verdict ``cause``."""
    return CAUSE_VIEW_STAGE.get(cause, "composite")


def can_diagnose(trace) -> bool:
    """True if ``trace`` has ground truth and every stage the diagnosis reads."""
    return trace is not None and all(key in trace for key in REQUIRED_STAGES)


def diagnosis_of(trace) -> Diagnosis | None:
    """The trace's diagnosis: the attached one, else computed now and attached; None without
    ground truth (or a stage the diagnosis needs)."""
    if trace is None:
        return None
    cached = getattr(trace, "_viewer_diagnosis", None)
    if cached is not None and cached[0] is trace.meta.get("diagnosis"):
        return cached[1]
    diagnosis = Diagnosis.from_trace(trace)
    if diagnosis is None:
        if not can_diagnose(trace):
            return None
        diagnosis = diagnose(trace)
        diagnosis.attach(trace)
    try:  # remember it on the trace: panels and the canvas ask on every redraw
        trace._viewer_diagnosis = (trace.meta.get("diagnosis"), diagnosis)
    except AttributeError:  # a trace type with __slots__: recompute from meta next time
        pass
    return diagnosis


def summary_text(diagnosis: Diagnosis) -> str:
    """One line: 'GT 4: 2 detected, missed 2 (wrong class 1, mask 1) · detections 4: 3 TP, …'."""
    missed = {}
    for v in diagnosis.missed():
        missed[v.cause] = missed.get(v.cause, 0) + 1
    fps = {}
    for v in diagnosis.false_positives():
        fps[v.type] = fps.get(v.type, 0) + 1
    gt = (f"GT {len(diagnosis.gt)}: {len(diagnosis.gt) - len(diagnosis.missed())} detected, "
          f"{len(diagnosis.missed())} missed")
    if missed:
        gt += " (" + ", ".join(f"{verdict_title(k)} {n}" for k, n in missed.items()) + ")"
    tps = len(diagnosis.detections) - len(diagnosis.false_positives())
    dets = f"detections {len(diagnosis.detections)}: {tps} true, {len(diagnosis.false_positives())} false"
    if fps:
        dets += " (" + ", ".join(f"{verdict_title(k, True)} {n}" for k, n in fps.items()) + ")"
    return f"{gt}  ·  {dets}"


def evidence_lines(verdict, class_names=None) -> list[str]:
    """One line per evidence item: 'ROI (heads/class_probs row 0): BG 0.01, square 0.22, …'."""
    names = list(class_names or [])
    lines = []
    for item in verdict.evidence:
        rows = list(item.indices)
        shown = ", ".join(str(r) for r in rows[:8]) + (f", … ({len(rows)} rows)" if len(rows) > 8
                                                        else "")
        text = f"{item.role.replace('_', ' ')} ({item.stage} row{'s' if len(rows) != 1 else ''} " \
               f"{shown})"
        probs = item.values.get("probs")
        if probs:
            row = probs[0]
            text += ": " + ", ".join(
                f"{names[c] if c < len(names) else c} {p:.2f}" for c, p in enumerate(row))
        else:
            numbers = [f"{name} {_number(values[0])}" for name, values in item.values.items()
                       if name != "class_id" and values]
            if numbers:
                text += ": " + ", ".join(numbers) + (" (first row)" if len(rows) > 1 else "")
        lines.append(text)
    return lines


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def gt_links(trace, index: int) -> dict:
    """Rows of other stages linked to GT ``index`` (``Session.linked`` for a GT selection): its
    detection and that detection's lineage, else what its verdict names — the ROI that lost
    it (with its pre-NMS box and anchor), the pre-NMS proposal or the best anchor, and the
    detection candidate."""
    diagnosis = diagnosis_of(trace)
    if diagnosis is None or not 0 <= index < len(diagnosis.gt):
        return {}
    verdict = diagnosis.gt[index]
    if verdict.detection >= 0 and "detections" in trace:
        return {"detections": verdict.detection, **trace.lineage(verdict.detection)}
    details, out = verdict.details, {}
    post, pre = trace.get("proposals/post_nms"), trace.get("proposals/pre_nms")
    roi = details.get("roi", -1)
    pre_row = details.get("covering_pre_nms", details.get("best_pre_nms", -1))
    if post is not None and 0 <= roi < len(post["indices"]):
        out["proposals/post_nms"] = int(roi)
        pre_row = int(post["indices"][roi])
    if pre is not None and 0 <= pre_row < len(pre["anchor_indices"]):
        out["proposals/pre_nms"] = int(pre_row)
        out["anchors"] = int(pre["anchor_indices"][pre_row])
    elif details.get("best_anchor", -1) >= 0:
        out["anchors"] = int(details["best_anchor"])
    if details.get("candidate", -1) >= 0:
        out["detections/pre_nms"] = int(details["candidate"])
    return out
