"""diagnose(trace) -> Diagnosis: a verdict for every GT object and every detection (numpy only)."""

from __future__ import annotations

import time

import numpy as np

from mrcnn.diagnose.detection_types import classify_detections
from mrcnn.diagnose.geometry import box_iou, mask_iou
from mrcnn.diagnose.gt_causes import ImageContext, head_cause, proposal_nms_cause, rpn_cause
from mrcnn.diagnose.records import (CAUSE_STAGE, DETECTED, Diagnosis, DetectionVerdict, Evidence,
                                    GTVerdict, Thresholds, coco_size)

# Stages the diagnosis reads; a trace without one of them cannot be diagnosed.
REQUIRED_STAGES = ("anchors", "rpn/scores", "proposals/pre_nms", "proposals/post_nms",
                   "heads/class_probs", "heads/refined", "detections/pre_nms", "detections", "gt")


def diagnose(trace, thresholds: Thresholds | None = None) -> Diagnosis:
    """Verdicts for ``trace`` (a ``Trace`` with a ``gt`` stage); see ``mrcnn.diagnose.records``.

    ``thresholds``: IoU thresholds and overrides of the config's detection settings (default:
    IoU 0.5 / RPN positive 0.7 / TIDE background 0.1 and the trace's own config). GT without
    ``masks`` gives a boxes-only diagnosis (no ``mask`` cause, ``mask_iou`` None).
    """
    start = time.perf_counter()
    missing = [key for key in REQUIRED_STAGES if key not in trace]
    if missing:
        raise ValueError(f"diagnose: the trace lacks stage(s) {', '.join(missing)}"
                         + (" (trace it with gt=... to add ground truth)" if "gt" in missing else ""))
    t = (thresholds or Thresholds()).resolved(trace.meta.get("config", {}))
    gt = trace["gt"]
    det = trace["detections"]
    boxes_only = gt.get("masks") is None or "masks" not in trace
    det_iou = box_iou(det["boxes"], gt["boxes"])  # [N, G]
    types, related, gt_match = classify_detections(
        det_iou, det["class_ids"], gt["class_ids"], det["scores"], t.cover_iou, t.background_iou)
    ctx = ImageContext(trace, t, gt_match)
    # Instance-major copies ([G, H, W], [N, H, W]): a slice of an [H, W, G] array is strided,
    # and comparing strided full-size masks dominated the diagnosis' time on large images.
    masks = None if boxes_only else (_instance_major(gt["masks"]),
                                     _instance_major(trace["masks"]["masks"]))
    gt_verdicts = [_gt_verdict(ctx, g, det_iou, masks) for g in range(len(gt["class_ids"]))]
    det_verdicts = [_detection_verdict(trace, d, types[d], int(related[d]), det_iou, masks)
                    for d in range(len(types))]
    return Diagnosis(gt=gt_verdicts, detections=det_verdicts, thresholds=vars(t),
                     boxes_only=boxes_only, seconds=time.perf_counter() - start)


def _gt_verdict(ctx, g, det_iou, masks) -> GTVerdict:
    area = _area(ctx, g, masks)
    post_iou = ctx.iou("proposals/post_nms")[:, g]
    covering_post = np.flatnonzero(post_iou >= ctx.t.cover_iou)
    verdict = GTVerdict(index=g, class_id=int(ctx.gt_class_ids[g]), cause=DETECTED,
                        stage="detections", size=coco_size(area), area=area,
                        proposal_rank=int(covering_post[0]) if len(covering_post) else -1)
    d = int(ctx.gt_match[g])
    if d >= 0:
        verdict.detection, verdict.box_iou = d, float(det_iou[d, g])
        verdict.evidence = [Evidence("detections", [d], "detection", {"iou": [verdict.box_iou]})]
        if masks is not None:
            verdict.mask_iou = mask_iou(masks[0][g], masks[1][d])
            if verdict.mask_iou < ctx.t.mask_iou:
                verdict.cause, verdict.stage = "mask", CAUSE_STAGE["mask"]
                verdict.details = {"mask_iou": verdict.mask_iou, "threshold": ctx.t.mask_iou}
                verdict.evidence.append(Evidence("masks", [d], "mask",
                                                 {"mask_iou": [verdict.mask_iou]}))
        return verdict
    covering_pre = np.flatnonzero(ctx.iou("proposals/pre_nms")[:, g] >= ctx.t.cover_iou)
    if len(covering_pre) == 0:
        cause, details, evidence = rpn_cause(ctx, g)
    elif len(covering_post) == 0:
        cause, details, evidence = proposal_nms_cause(ctx, g, covering_pre)
    else:
        cause, details, evidence = head_cause(ctx, g, covering_post)
    verdict.cause, verdict.stage = cause, CAUSE_STAGE[cause]
    verdict.details, verdict.evidence = details, evidence
    # The closest final detection, whatever its class, helps the reader too.
    if det_iou.shape[0]:
        nearest = int(np.argmax(det_iou[:, g]))
        verdict.details["nearest_detection"] = nearest
        verdict.details["nearest_detection_iou"] = float(det_iou[nearest, g])
    if masks is not None:
        _best_mask_match(ctx, g, masks, verdict)
    return verdict


def _best_mask_match(ctx, g, masks, verdict):
    """Record the same-class detection with the best mask IoU: an occluded object split in two
    can be matched by mask (as mask AP counts it) while no box reaches the box threshold."""
    same = np.flatnonzero(ctx.trace["detections"]["class_ids"] == ctx.gt_class_ids[g])
    if len(same):
        ious = [mask_iou(masks[0][g], masks[1][d]) for d in same]
        best = int(np.argmax(ious))
        verdict.details["best_mask_detection"] = int(same[best])
        verdict.details["best_mask_iou"] = float(ious[best])


def _detection_verdict(trace, d, kind, g, det_iou, masks) -> DetectionVerdict:
    det = trace["detections"]
    verdict = DetectionVerdict(index=d, class_id=int(det["class_ids"][d]),
                               score=float(det["scores"][d]), type=kind, gt=g)
    evidence = [Evidence("detections", [d], "detection", {"score": [verdict.score]})]
    if g >= 0:
        verdict.box_iou = float(det_iou[d, g])
        if masks is not None:
            verdict.mask_iou = mask_iou(masks[0][g], masks[1][d])
        evidence.append(Evidence("gt", [g], "related_gt", {"iou": [verdict.box_iou]}))
    verdict.evidence = evidence
    return verdict


def _instance_major(masks) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(np.asarray(masks, bool), -1, 0))


def _area(ctx, g, masks) -> float:
    if masks is not None:
        return float(np.count_nonzero(masks[0][g]))
    y1, x1, y2, x2 = ctx.gt_boxes[g]
    return float(max(y2 - y1, 0) * max(x2 - x1, 0))
