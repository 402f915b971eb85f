"""What the canvas draws at each stage: one ``Overlay`` per stage, built from the trace.

A mixin of ``CanvasPanel`` (it reads ``self.session``, ``self.level``, ``self.anchor_mode`` and
uses the panel's ``_heat_map`` / ``_molded_rect``); the panel applies the overlay to its items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_BOXES = 1000          # per style; more are dropped lowest score first (noted in the info line)
ANCHOR_SAMPLE = 300       # anchors drawn per level in "sample" mode
ANCHOR_ALL_LIMIT = 50000  # "all" mode cap: P2 of a 1024 image has ~200k anchors
RPN_TOP_ANCHORS = 50      # best anchors of the level outlined (and clickable) over the heat map
CLASS_COLOURS = [(255, 99, 71), (60, 220, 120), (255, 215, 0), (80, 160, 255), (255, 105, 200),
                 (0, 230, 230), (255, 160, 40), (170, 120, 255), (190, 240, 60), (255, 255, 255)]
_MATCH_STYLES = {1: "positive", -1: "negative", 0: "neutral"}


def class_colour(class_id: int) -> tuple:
    return CLASS_COLOURS[(int(class_id) - 1) % len(CLASS_COLOURS)]


@dataclass
class Overlay:
    """What one stage draws (plain data; ``CanvasPanel.redraw`` applies it)."""

    boxes: dict = field(default_factory=dict)     # style -> [N, 4]; "class:<id>" for detections
    pick: tuple | None = None                     # (selection kind, rows [N], boxes [N, 4])
    labels: list = field(default_factory=list)    # (box [4], text, rgb)
    heat: tuple | None = None                     # (rgba [h, w, 4], QRectF in image pixels)
    masks: str = ""                               # "full", "raw" or "" (none)
    mask_rows: np.ndarray | None = None           # detections whose masks are drawn
    base: str = "image"                           # "image" or "molded"
    note: str = ""


class StagePlans:
    """``_plan_<stage>(trace) -> Overlay`` for every viewer stage."""

    def _plan_input(self, trace) -> Overlay:
        meta = trace.meta.get("image_meta", {})
        note = "Input image"
        if meta:
            note = (f"Molded {meta.get('molded_shape', ['?'])[:2]} from original "
                    f"{meta.get('original_shape', ['?'])[:2]}, scale {meta.get('scale', 1):.3f}, "
                    f"window {meta.get('window')} (dash-dot: where the image lies in the padding)")
        return Overlay(base="molded", note=note)

    def _plan_anchors(self, trace) -> Overlay:
        anchors = trace["anchors"]
        rows = np.flatnonzero(anchors["levels"] == self.level)
        total = len(rows)
        match = trace["targets/rpn"]["match"] if "targets/rpn" in trace else None
        limit = ANCHOR_SAMPLE if self.anchor_mode == "sample" else ANCHOR_ALL_LIMIT
        if total > limit:
            rng = np.random.default_rng(self.level)
            sample = np.sort(rng.choice(rows, limit, replace=False))
            if match is not None:  # never sample the positives away: they are the point
                sample = np.union1d(sample, rows[match[rows] == 1])
            rows = sample
        boxes = anchors["boxes"][rows]
        overlay = Overlay(pick=("anchor", rows, boxes))
        if match is None:
            overlay.boxes["anchor"] = boxes
        else:
            for state, style in _MATCH_STYLES.items():
                overlay.boxes[style] = boxes[match[rows] == state]
        overlay.note = (f"P{self.level}: showing {len(rows)} of {total} anchors"
                        + ("; green positive, red negative, grey neutral (RPN targets)"
                           if match is not None else ""))
        if match is not None and not np.any(match[anchors["levels"] == self.level] == 1):
            # Say where the positives are, or the user hunts for green boxes that are not here.
            levels = anchors["levels"][match == 1]
            where = ", ".join(f"P{int(level)}: {int(np.sum(levels == level))}"
                              for level in np.unique(levels)) or "none at any level"
            overlay.note += f". No positive anchor at P{self.level} (positives {where})"
        return overlay

    def _plan_rpn_scores(self, trace) -> Overlay:
        heat = self._heat_map(trace, self.level)
        rows = np.flatnonzero(trace["anchors"]["levels"] == self.level)
        scores = trace["rpn/scores"]["scores"][rows]
        top = rows[np.argsort(-scores, kind="stable")[:RPN_TOP_ANCHORS]]
        boxes = trace["anchors"]["boxes"][top]
        overlay = Overlay(heat=heat, pick=("anchor", top, boxes), boxes={"dotted": boxes})
        overlay.note = (f"P{self.level}: objectness, max over anchors per cell "
                        f"(max {scores.max() if len(scores) else 0:.2f}); dotted: the "
                        f"{len(top)} best anchors of the level" if heat else
                        f"P{self.level}: level shape unknown, no heat map")
        return overlay

    def _plan_refined_anchors(self, trace) -> Overlay:
        pre = trace["proposals/pre_nms"]
        rows, dropped = self._above(pre["scores"])
        anchors = trace["anchors"]["boxes"][pre["anchor_indices"][rows]]
        return Overlay(boxes={"dotted": anchors, "dashed": pre["unclipped"][rows],
                              "solid": pre["boxes"][rows]},
                       pick=("pre_nms", rows, pre["boxes"][rows]),
                       note=f"{len(rows)} of {len(pre['scores'])} refined anchors{dropped}; "
                            "dotted anchor, dashed refined, solid clipped")

    def _plan_proposals(self, trace) -> Overlay:
        pre, post = trace["proposals/pre_nms"], trace["proposals/post_nms"]
        pre_rows, _ = self._above(pre["scores"])
        rows, dropped = self._above(post["scores"])
        return Overlay(boxes={"faint": pre["boxes"][pre_rows], "solid": post["boxes"][rows]},
                       pick=("proposal", rows, post["boxes"][rows]),
                       note=f"{len(rows)} of {len(post['scores'])} proposals after NMS{dropped} "
                            f"(faint: {len(pre_rows)} before NMS)")

    def _plan_roi_refinement(self, trace) -> Overlay:
        probs = trace["heads/class_probs"]["probs"]
        class_ids = np.argmax(probs, axis=1)
        scores = probs[np.arange(len(probs)), class_ids]
        rows, dropped = self._above(np.where(class_ids > 0, scores, -1.0))
        rois = trace["proposals/post_nms"]["boxes"][rows]
        refined = trace["heads/refined"]["boxes"][rows, class_ids[rows]]
        return Overlay(boxes={"dotted": rois, "solid": refined},
                       pick=("proposal", np.concatenate([rows, rows]),
                             np.concatenate([refined, rois])),
                       note=f"{len(rows)} foreground ROIs of {len(probs)}{dropped}; "
                            "dotted ROI, solid refined for its most likely class")

    def _plan_detections(self, trace) -> Overlay:
        overlay = self._detection_overlay(trace, labels=True)
        pre = trace["detections/pre_nms"]
        pre_rows, _ = self._above(pre["scores"])
        overlay.boxes["faint"] = pre["boxes"][pre_rows]
        overlay.note += f" (faint: {len(pre_rows)} before per-class NMS)"
        return overlay

    def _plan_raw_masks(self, trace) -> Overlay:
        overlay = self._detection_overlay(trace, labels=True)
        overlay.masks = "raw"
        overlay.note += "; 28x28 mask probabilities stretched into each box, grid at right"
        return overlay

    def _plan_masks(self, trace) -> Overlay:
        overlay = self._detection_overlay(trace, labels=False)
        overlay.masks = "full"
        return overlay

    def _plan_composite(self, trace) -> Overlay:
        overlay = self._detection_overlay(trace, labels=True)
        overlay.masks = "full" if "masks" in trace else ""
        return overlay

    def _detection_overlay(self, trace, labels: bool) -> Overlay:
        det = trace["detections"]
        rows, _ = self._above(det["scores"])
        boxes = np.asarray(det["boxes"], np.float32).reshape(-1, 4)
        overlay = Overlay(pick=("detection", rows, boxes[rows]), mask_rows=rows)
        names = trace.class_names
        for class_id in np.unique(det["class_ids"][rows]):
            overlay.boxes[f"class:{int(class_id)}"] = boxes[rows[det["class_ids"][rows] == class_id]]
        if labels:
            for row in rows[:100]:
                class_id = int(det["class_ids"][row])
                name = names[class_id] if class_id < len(names) else f"class {class_id}"
                overlay.labels.append((boxes[row], f"{name} {float(det['scores'][row]):.2f}",
                                       class_colour(class_id)))
        overlay.note = (f"{len(rows)} of {len(boxes)} detections with score ≥ "
                        f"{self.session.score_threshold:.2f}")
        return overlay

    def _above(self, scores):
        """Rows with score >= threshold, best MAX_BOXES first-in-order; and a note on drops."""
        scores = np.asarray(scores)
        rows = np.flatnonzero(scores >= self.session.score_threshold)
        if len(rows) <= MAX_BOXES:
            return rows, ""
        best = np.sort(rows[np.argsort(-scores[rows], kind="stable")[:MAX_BOXES]])
        return best, f" (best {MAX_BOXES} of {len(rows)} shown)"
