"""One-line, human-readable explanations of verdicts (for panels, tooltips, notebooks, logs)."""

from __future__ import annotations

_GT_TEXT = {
    "detected": "detected by detection {detection} (box IoU {box_iou:.2f}{mask})",
    "no_anchor": "no anchor reaches IoU {rpn_positive_iou:.2f} (best {best_iou:.2f}); it needs "
                 "scale {needed_scale:.0f} and ratio {needed_ratio:.2f}, the nearest configured "
                 "are {nearest_scale} and {nearest_ratio}",
    "rpn_rank": "its best matching anchor ranks {best_rank} by objectness (score {best_score:.3f}), "
                "outside PRE_NMS_LIMIT {pre_nms_limit}",
    "proposal_refinement": "its anchors ranked but their refined boxes miss it (best IoU "
                           "{best_refined_iou:.2f}, pre-NMS row {best_pre_nms})",
    "proposal_nms": "pre-NMS proposal {covering_pre_nms} covered it (IoU {covering_iou:.2f}) but "
                    "{suppressor}",
    "background": "ROI {roi} covers it (IoU {roi_iou:.2f}) but the head says background "
                  "(p={background_prob:.2f}; {gt_class} p={gt_class_prob:.2f})",
    "wrong_class": "ROI {roi} covers it (IoU {roi_iou:.2f}) but the head says {predicted} "
                   "(p={predicted_prob:.2f}; {gt_class} p={gt_class_prob:.2f})",
    "low_score": "ROI {roi} has the right class but scores {score:.2f} < "
                 "DETECTION_MIN_CONFIDENCE {min_confidence:.2f}",
    "box_regression": "ROI {roi} covers it (IoU {roi_iou:.2f}) but its refined box only reaches "
                      "IoU {refined_iou:.2f}",
    "detection_nms": "candidate {candidate} (score {score:.2f}) was suppressed by {suppressor}",
    "max_instances": "candidate {candidate} survived NMS at rank {rank_after_nms} but "
                     "DETECTION_MAX_INSTANCES is {max_instances}",
    "mask": "box found by detection {detection} but mask IoU {mask_iou:.2f} < {threshold:.2f}",
}
_DETECTION_TEXT = {
    "true_positive": "true positive for GT {gt} (IoU {box_iou:.2f})",
    "duplicate": "duplicate: GT {gt} was already found by a higher-scoring detection",
    "localization": "localization error: right class, IoU {box_iou:.2f} with GT {gt}",
    "wrong_class": "wrong class: IoU {box_iou:.2f} with GT {gt}, a {gt_class}",
    "both": "wrong class and poorly localized (IoU {box_iou:.2f} with GT {gt}, a {gt_class})",
    "background": "background: IoU <= 0.1 with every GT",
}


def explain_gt(verdict, class_names=None) -> str:
    """``"GT 2 (square, small): <why>"`` for a GTVerdict."""
    names = _names(class_names)
    values = {**verdict.details, "detection": verdict.detection, "box_iou": verdict.box_iou,
              "gt_class": names(verdict.class_id),
              "mask": "" if verdict.mask_iou is None else f", mask IoU {verdict.mask_iou:.2f}"}
    if verdict.cause == "wrong_class":
        values["predicted"] = names(verdict.details.get("predicted_class", 0))
    if verdict.cause in ("proposal_nms", "detection_nms"):
        values["suppressor"] = _suppressor(verdict)
    head = f"GT {verdict.index} ({names(verdict.class_id)}, {verdict.size})"
    return f"{head}: {_format(_GT_TEXT[verdict.cause], values, verdict.cause)}"


def explain_detection(verdict, gt_class_ids=None, class_names=None) -> str:
    """``"detection 3 (circle 0.97): <type>"`` for a DetectionVerdict."""
    names = _names(class_names)
    gt_class = (names(int(gt_class_ids[verdict.gt]))
                if gt_class_ids is not None and verdict.gt >= 0 else "?")
    values = {"gt": verdict.gt, "box_iou": verdict.box_iou, "gt_class": gt_class}
    head = f"detection {verdict.index} ({names(verdict.class_id)} {verdict.score:.2f})"
    return f"{head}: {_format(_DETECTION_TEXT[verdict.type], values, verdict.type)}"


def _suppressor(verdict) -> str:
    details = verdict.details
    if verdict.cause == "proposal_nms":
        if details.get("suppressed_by", -1) < 0:
            return "the proposal count (POST_NMS_ROIS_INFERENCE) cut it"
        return (f"NMS removed it for pre-NMS proposal {details['suppressed_by']} "
                f"(IoU {details.get('suppressor_iou', 0.0):.2f} > {details['nms_threshold']:.2f})")
    if details.get("suppressed_by", -1) < 0:
        return "per-class NMS"
    detection = details.get("suppressed_by_detection", -1)
    which = f"detection {detection}" if detection >= 0 else f"candidate {details['suppressed_by']}"
    return (f"{which} (IoU {details.get('suppressor_iou', 0.0):.2f} > "
            f"{details['nms_threshold']:.2f})")


def _names(class_names):
    def name(class_id):
        class_id = int(class_id)
        if class_names and 0 <= class_id < len(class_names):
            return str(class_names[class_id])
        return "background" if class_id == 0 else f"class {class_id}"
    return name


def _format(template, values, kind) -> str:
    try:
        return template.format(**values)
    except (KeyError, ValueError, TypeError):
        return kind.replace("_", " ")  # details from another version: say at least the verdict
