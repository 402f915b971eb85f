"""Why one missed GT object was lost: the first stage, in pipeline order, that lost it.

An object is *covered* by a box when their box IoU >= ``cover_iou``. Walking the pipeline:

* no pre-NMS proposal covers it -> the RPN lost it:
  ``no_anchor`` if no anchor reaches ``rpn_positive_iou`` (details: best anchor IoU, its scale /
  ratio, the scale / ratio the object needs and the nearest configured ones); else ``rpn_rank``
  if none of those anchors is among the PRE_NMS_LIMIT best by objectness (best rank and score);
  else ``proposal_refinement`` (their refined boxes miss it);
* a pre-NMS proposal covers it but no post-NMS one -> ``proposal_nms`` (the covering row and the
  row that suppressed it; ``suppressed_by`` -1 when it was cut by the proposal count instead);
* covering ROIs exist but none has the GT class as its best class -> ``wrong_class`` if one of
  them has another foreground class, else ``background``;
* right class but every such ROI scores below DETECTION_MIN_CONFIDENCE -> ``low_score``;
* right class and score, but no refined box covers it -> ``box_regression`` (a refined box that
  covers it but whose detection was matched to another GT does not count);
* a good candidate (``detections/pre_nms``) exists: ``max_instances`` if one survived NMS but was
  cut by DETECTION_MAX_INSTANCES, else ``detection_nms`` (with the suppressing candidate and its
  row in ``detections``).

Each function returns ``(cause, details, evidence)``.
"""

from __future__ import annotations

import numpy as np

from mrcnn.diagnose.geometry import DetectionNmsReplay, box_iou, proposal_suppressor
from mrcnn.diagnose.records import Evidence


class ImageContext:
    """Per-image arrays shared by every GT's walk (IoUs computed once, lazily)."""

    def __init__(self, trace, thresholds, gt_match):
        self.trace = trace
        self.t = thresholds
        self.gt_boxes = np.asarray(trace["gt"]["boxes"], np.float64).reshape(-1, 4)
        self.gt_class_ids = np.asarray(trace["gt"]["class_ids"])
        self.gt_match = gt_match
        self.config = trace.meta.get("config", {})
        self._cache = {}
        self._replay = None

    def iou(self, stage, name="boxes"):
        """[rows, G] box IoU of a stage's boxes with every GT."""
        key = (stage, name)
        if key not in self._cache:
            self._cache[key] = box_iou(self.trace[stage][name], self.gt_boxes)
        return self._cache[key]

    def replay(self):
        if self._replay is None:
            self._replay = DetectionNmsReplay(self.trace, self.t.detection_nms,
                                              self.t.max_instances)
        return self._replay


def rpn_cause(ctx, g):
    """Cause for a GT no pre-NMS proposal covers: no_anchor, rpn_rank or proposal_refinement."""
    anchor_iou = ctx.iou("anchors")[:, g]
    matching = np.flatnonzero(anchor_iou >= ctx.t.rpn_positive_iou)
    if len(matching) == 0:
        return _no_anchor(ctx, g, anchor_iou)
    scores = ctx.trace["rpn/scores"]["scores"]
    pre = ctx.trace["proposals/pre_nms"]
    ranked = np.isin(matching, pre["anchor_indices"])
    if not ranked.any():
        # Rank as top_k orders them: higher score first, ties to the lower anchor index.
        ranks = np.array([int(np.sum(scores > scores[a]) + np.sum(scores[:a] == scores[a]))
                          for a in matching])
        best = int(np.argmin(ranks))
        details = {"best_rank": int(ranks[best]), "best_score": float(scores[matching[best]]),
                   "best_anchor": int(matching[best]), "pre_nms_limit": int(len(pre["scores"])),
                   "cutoff_score": float(pre["scores"][-1]) if len(pre["scores"]) else None,
                   "matching_anchors": int(len(matching))}
        evidence = [Evidence("rpn/scores", matching.tolist(), "matching_anchors",
                             {"score": scores[matching].tolist(), "rank": ranks.tolist(),
                              "iou": anchor_iou[matching].tolist()})]
        return "rpn_rank", details, evidence
    rows = np.flatnonzero(np.isin(pre["anchor_indices"], matching[ranked]))
    refined_iou = ctx.iou("proposals/pre_nms")[rows, g]
    best = int(np.argmax(refined_iou))
    details = {"best_pre_nms": int(rows[best]), "best_refined_iou": float(refined_iou[best]),
               "anchor_iou": float(anchor_iou[pre["anchor_indices"][rows[best]]]),
               "ranked_anchors": int(ranked.sum())}
    evidence = [Evidence("proposals/pre_nms", rows.tolist(), "refined_from_matching_anchors",
                         {"iou": refined_iou.tolist(),
                          "anchor": pre["anchor_indices"][rows].tolist()})]
    return "proposal_refinement", details, evidence


def _no_anchor(ctx, g, anchor_iou):
    best = int(np.argmax(anchor_iou)) if len(anchor_iou) else -1
    anchors = ctx.trace["anchors"]
    scale = float(ctx.trace.meta.get("image_meta", {}).get("scale", 1.0))
    y1, x1, y2, x2 = ctx.gt_boxes[g]
    height, width = max(y2 - y1, 1e-3) * scale, max(x2 - x1, 1e-3) * scale  # molded pixels
    scales = [float(s) for s in ctx.config.get("RPN_ANCHOR_SCALES", [])]
    ratios = [float(r) for r in ctx.config.get("RPN_ANCHOR_RATIOS", [])]
    needed_scale, needed_ratio = float(np.sqrt(height * width)), float(width / height)
    details = {"best_anchor": best, "best_iou": float(anchor_iou[best]) if best >= 0 else 0.0,
               "rpn_positive_iou": ctx.t.rpn_positive_iou,
               "needed_scale": needed_scale, "needed_ratio": needed_ratio,
               "nearest_scale": _nearest(scales, needed_scale),
               "nearest_ratio": _nearest(ratios, needed_ratio)}
    values = {"iou": [details["best_iou"]]}
    if best >= 0:
        ab = anchors["boxes"][best]
        ah, aw = (ab[2] - ab[0]) * scale, (ab[3] - ab[1]) * scale
        details.update(best_anchor_level=int(anchors["levels"][best]),
                       best_anchor_scale=float(np.sqrt(ah * aw)), best_anchor_ratio=float(aw / ah))
        values["level"] = [details["best_anchor_level"]]
    evidence = [Evidence("anchors", [best] if best >= 0 else [], "best_anchor", values)]
    return "no_anchor", details, evidence


def _nearest(options, value):
    """Option closest to ``value`` on a log scale (anchor sizes and ratios are geometric)."""
    if not options:
        return None
    return min(options, key=lambda o: abs(np.log(o / value)))


def proposal_nms_cause(ctx, g, covering_pre):
    """proposal_nms: the best-scoring covering pre-NMS row and what suppressed it."""
    row = int(covering_pre[0])  # pre-NMS rows are in score order
    by = proposal_suppressor(ctx.trace, row, ctx.t.proposal_nms)
    pre = ctx.trace["proposals/pre_nms"]
    post_indices = ctx.trace["proposals/post_nms"]["indices"]
    by_post = np.flatnonzero(post_indices == by)
    details = {"covering_pre_nms": row, "covering_iou": float(ctx.iou("proposals/pre_nms")[row, g]),
               "suppressed_by": by, "suppressed_by_post_nms": int(by_post[0]) if len(by_post) else -1,
               "nms_threshold": ctx.t.proposal_nms, "covering_rows": int(len(covering_pre))}
    if by >= 0:
        details["suppressor_iou"] = float(box_iou(pre["boxes"][[row]], pre["boxes"][[by]])[0, 0])
    else:
        details["reason"] = "cut by the proposal count (POST_NMS_ROIS_INFERENCE)"
    evidence = [Evidence("proposals/pre_nms", [row], "suppressed",
                         {"score": [float(pre["scores"][row])], "iou": [details["covering_iou"]]})]
    if by >= 0:
        evidence.append(Evidence("proposals/pre_nms", [by], "suppressed_by",
                                 {"score": [float(pre["scores"][by])]}))
    return "proposal_nms", details, evidence


def head_cause(ctx, g, covering_rois):
    """background / wrong_class / low_score / box_regression / detection_nms / max_instances."""
    probs = ctx.trace["heads/class_probs"]["probs"]
    gt_class = int(ctx.gt_class_ids[g])
    roi_iou = ctx.iou("proposals/post_nms")[:, g]
    best_class = np.argmax(probs[covering_rois], axis=1)
    right = covering_rois[best_class == gt_class]
    if len(right) == 0:
        return _classification_cause(ctx, g, covering_rois, best_class, probs, roi_iou)
    scores = probs[right, gt_class]
    confident = right[scores >= ctx.t.min_confidence]
    if len(confident) == 0:
        best = int(right[np.argmax(scores)])
        details = {"roi": best, "score": float(probs[best, gt_class]),
                   "min_confidence": ctx.t.min_confidence}
        return "low_score", details, [Evidence("heads/class_probs", right.tolist(), "right_class",
                                               {"score": scores.tolist()})]
    return _candidate_cause(ctx, g, confident, roi_iou)


def _classification_cause(ctx, g, rois, best_class, probs, roi_iou):
    gt_class = int(ctx.gt_class_ids[g])
    foreground = best_class > 0
    cause = "wrong_class" if foreground.any() else "background"
    pool = rois[foreground] if foreground.any() else rois
    roi = int(pool[np.argmax(roi_iou[pool])])
    predicted = int(np.argmax(probs[roi]))
    details = {"roi": roi, "roi_iou": float(roi_iou[roi]), "predicted_class": predicted,
               "predicted_prob": float(probs[roi, predicted]),
               "gt_class_prob": float(probs[roi, gt_class]), "background_prob": float(probs[roi, 0]),
               "covering_rois": int(len(rois))}
    evidence = [Evidence("heads/class_probs", [roi], "roi", {"probs": [probs[roi].tolist()]}),
                Evidence("proposals/post_nms", rois.tolist(), "covering_rois",
                         {"iou": roi_iou[rois].tolist()})]
    return cause, details, evidence


def _candidate_cause(ctx, g, confident, roi_iou):
    gt_class = int(ctx.gt_class_ids[g])
    refined = ctx.trace["heads/refined"]["boxes"][confident, gt_class]
    refined_iou = box_iou(refined, ctx.gt_boxes[[g]])[:, 0]
    pre = ctx.trace["detections/pre_nms"]
    candidate_of = {int(r): m for m, r in enumerate(pre["roi_indices"])}
    # A refined box whose detection another GT took does not count as found for this one.
    taken = _taken_rois(ctx, g)
    good = [(int(r), candidate_of[int(r)]) for r, iou in zip(confident, refined_iou)
            if iou >= ctx.t.cover_iou and int(r) in candidate_of and int(r) not in taken]
    if not good:
        best = int(np.argmax(refined_iou))
        details = {"roi": int(confident[best]), "roi_iou": float(roi_iou[confident[best]]),
                   "refined_iou": float(refined_iou[best]),
                   "taken_by_gt": sorted(taken.get(r, -1) for r in confident.tolist() if r in taken)}
        return "box_regression", details, [Evidence(
            "heads/refined", confident.tolist(), "refined_boxes",
            {"class_id": [gt_class] * len(confident), "iou": refined_iou.tolist(),
             "roi_iou": roi_iou[confident].tolist()})]
    return _nms_cause(ctx, good)


def _nms_cause(ctx, good):
    """max_instances if a good candidate survived NMS only to be cut, else detection_nms."""
    pre = ctx.trace["detections/pre_nms"]
    replay = ctx.replay()
    fates = [(roi, m, replay.fate_of(m)) for roi, m in good]
    cut = [f for f in fates if f[2][0] == "cut"]
    if cut:
        roi, m, (_, rank) = cut[0]
        details = {"candidate": m, "roi": roi, "rank_after_nms": rank,
                   "max_instances": ctx.t.max_instances,
                   "score": float(pre["scores"][m])}
        return "max_instances", details, [Evidence("detections/pre_nms", [m], "cut",
                                                   {"rank": [rank]})]
    suppressed = [f for f in fates if f[2][0] == "suppressed"]
    roi, m, (_, by) = (suppressed or fates)[0]
    by = by if suppressed else -1
    det_rows = np.flatnonzero(ctx.trace["detections"].get("pre_nms_indices", np.zeros(0)) == by)
    details = {"candidate": m, "roi": roi, "score": float(pre["scores"][m]), "suppressed_by": by,
               "suppressed_by_detection": int(det_rows[0]) if len(det_rows) else -1,
               "nms_threshold": ctx.t.detection_nms}
    if by >= 0:
        details["suppressor_iou"] = float(box_iou(pre["boxes"][[m]], pre["boxes"][[by]])[0, 0])
    evidence = [Evidence("detections/pre_nms", [m], "suppressed", {"score": [details["score"]]})]
    if by >= 0:
        evidence.append(Evidence("detections/pre_nms", [by], "suppressed_by",
                                 {"score": [float(pre["scores"][by])]}))
    return "detection_nms", details, evidence


def _taken_rois(ctx, g) -> dict:
    """{ROI row: GT row} of final detections matched to GTs other than ``g``."""
    det = ctx.trace["detections"]
    out = {}
    for other, d in enumerate(ctx.gt_match):
        if d >= 0 and other != g:
            out[int(det["roi_indices"][d])] = other
    return out
