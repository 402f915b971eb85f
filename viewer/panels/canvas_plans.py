"""What the canvas draws at each stage: ``plan(stage, trace, view) -> Overlay``, pure and Qt-free.

Each ``plan_<stage>(trace, view)`` reads only its arguments and returns plain arrays; the canvas
(``viewer.panels.canvas``) applies the overlay to its pyqtgraph items. Boxes are original-image
pixels ``[y1, x1, y2, x2]``. Tests call these without Qt (tests/viewer/test_canvas_plans.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE
from mrcnn.trace_views import level_cell_shape, max_score_per_cell
from viewer.panels.canvas_arrays import heat_rect
from viewer.panels.canvas_filters import (DEFAULT_TOP_N, cell_grid_lines, filter_rows,
                                          post_nms_levels, pre_nms_levels)
from viewer.panels.canvas_selection import class_name
from viewer.panels.canvas_styles import CLASS_COLOURS, class_colour
from viewer.stages import stage_by_key

__all__ = ["CLASS_COLOURS", "Overlay", "ViewState", "class_colour", "plan"]

MAX_BOXES = 1000          # per style; more are dropped lowest score first (noted in the info line)
ANCHOR_SAMPLE = 300       # anchors drawn per level in "sample" mode
ANCHOR_ALL_LIMIT = 50000  # "all" mode cap: P2 of a 1024 image has ~200k anchors
RPN_TOP_ANCHORS = 50      # best anchors of the level outlined (and clickable) over the heat map
MATCH_STYLES = {POSITIVE: "positive", NEGATIVE: "negative", NEUTRAL: "neutral"}
NO_DATA_NOTE = "This trace has no data for this stage."


@dataclass(frozen=True)
class ViewState:
    """The view options a plan depends on (everything else comes from the trace)."""

    level: int = 2                      # pyramid level of the anchors / RPN scores stages
    top_n: int = DEFAULT_TOP_N          # refined anchors / proposals: best N drawn (0: all)
    box_level: int = 0                  # refined anchors / proposals: only this level (0: all)
    anchor_mode: str = "sample"         # "sample" or "all"
    score_threshold: float = 0.0        # boxes scoring below are hidden
    overlays: dict = field(default_factory=dict)  # name -> shown (missing: shown)

    def shows(self, name: str) -> bool:
        return bool(self.overlays.get(name, True))


@dataclass
class Overlay:
    """What one stage draws, as plain data (``CanvasPanel.redraw`` applies it)."""

    boxes: dict = field(default_factory=dict)     # style -> [N, 4]; "class:<id>" for detections
    pick: tuple | None = None                     # (selection kind, rows [N], boxes [N, 4])
    labels: list = field(default_factory=list)    # (box [4], text, rgb)
    heat: tuple | None = None                     # (values [h, w] in 0..1, (x, y, width, height))
    masks: str = ""                               # "full", "raw" or "" (none)
    mask_rows: np.ndarray | None = None           # detections whose masks are drawn
    base: str = "image"                           # "image" or "molded"
    note: str = ""
    legend: list = field(default_factory=list)    # (style or "class:<id>", text) explained
    colour_bar: tuple | None = None               # (label, low, high) of the heat map


def plan(stage: str, trace, view: ViewState) -> Overlay:
    """The overlay of viewer stage ``stage`` for ``trace``, plus ground truth and window boxes."""
    planner = PLANS.get(stage)
    try:
        needs_ok = all(key in trace for key in stage_by_key(stage).needs)
    except KeyError:
        needs_ok = False
    overlay = planner(trace, view) if planner is not None and needs_ok else Overlay(
        note=NO_DATA_NOTE)
    if view.shows("gt") and "gt" in trace and len(trace["gt"]["boxes"]):
        overlay.boxes["gt"] = trace["gt"]["boxes"]
        if overlay.pick is None:
            overlay.pick = ("gt", np.arange(len(trace["gt"]["boxes"])), trace["gt"]["boxes"])
    if view.shows("window") and stage in ("input", "anchors", "rpn_scores"):
        height, width = trace.image.shape[:2]
        overlay.boxes["window"] = np.array([[0, 0, height, width]], np.float32)
    return overlay


def plan_input(trace, view: ViewState) -> Overlay:
    meta = trace.meta.get("image_meta", {})
    note = "Input image"
    if meta:
        note = (f"Molded {meta.get('molded_shape', ['?'])[:2]} from original "
                f"{meta.get('original_shape', ['?'])[:2]}, scale {meta.get('scale', 1):.3f}, "
                f"window {meta.get('window')} (dash-dot: where the image lies in the padding)")
    return Overlay(base="molded", note=note)


def sample_anchor_rows(levels, level: int, mode: str, match=None) -> np.ndarray:
    """Rows of the level's anchors to draw: all up to the mode's limit, else a seeded sample
    that always keeps the positives (they are the point of the stage)."""
    rows = np.flatnonzero(np.asarray(levels) == level)
    limit = ANCHOR_SAMPLE if mode == "sample" else ANCHOR_ALL_LIMIT
    if len(rows) <= limit:
        return rows
    sample = np.sort(np.random.default_rng(level).choice(rows, limit, replace=False))
    if match is not None:
        sample = np.union1d(sample, rows[match[rows] == POSITIVE])
    return sample


def plan_anchors(trace, view: ViewState) -> Overlay:
    anchors, level = trace["anchors"], view.level
    total = int(np.sum(anchors["levels"] == level))
    match = trace["targets/rpn"]["match"] if "targets/rpn" in trace else None
    rows = sample_anchor_rows(anchors["levels"], level, view.anchor_mode, match)
    boxes = anchors["boxes"][rows]
    overlay = Overlay(pick=("anchor", rows, boxes))
    if match is None:
        overlay.boxes["anchor"] = boxes
    else:
        for state, style in MATCH_STYLES.items():
            overlay.boxes[style] = boxes[match[rows] == state]
    overlay.note = (f"P{level}: showing {len(rows)} of {total} anchors"
                    + ("; coloured by RPN target" if match is not None else ""))
    overlay.legend = ([("positive", "positive"), ("negative", "negative"),
                       ("neutral", "neutral (ignored by the RPN loss)")]
                      if match is not None else [("anchor", "anchor")])
    if match is not None and not np.any(match[anchors["levels"] == level] == POSITIVE):
        # Say where the positives are, or the user hunts for green boxes that are not here.
        levels = anchors["levels"][match == POSITIVE]
        where = ", ".join(f"P{int(lv)}: {int(np.sum(levels == lv))}"
                          for lv in np.unique(levels)) or "none at any level"
        overlay.note += f". No positive anchor at P{level} (positives {where})"
    return overlay


def plan_rpn_scores(trace, view: ViewState) -> Overlay:
    level = view.level
    peak = max_score_per_cell(trace, level)
    rect = heat_rect(trace, level)
    heat = None if peak is None or rect is None else (np.clip(peak, 0.0, 1.0), rect)
    rows = np.flatnonzero(trace["anchors"]["levels"] == level)
    scores = trace["rpn/scores"]["scores"][rows]
    top = rows[np.argsort(-scores, kind="stable")[:RPN_TOP_ANCHORS]]
    boxes = trace["anchors"]["boxes"][top]
    overlay = Overlay(heat=heat, pick=("anchor", top, boxes), boxes={"dotted": boxes})
    if heat is None:
        overlay.note = f"P{level}: level shape unknown, no heat map"
        return overlay
    cells = level_cell_shape(trace, level)
    grid = cell_grid_lines(rect, cells)
    half = rect[2] / cells[1] / 2
    overlay.boxes["grid"] = grid
    overlay.colour_bar = ("objectness", 0.0, 1.0)
    overlay.note = (f"P{level}: objectness, the max over each cell's anchors (best "
                    f"{scores.max() if len(scores) else 0:.2f}). Cell (i, j) is centred on its "
                    f"anchors' centre (i·stride, j·stride), matterport's convention, so the map "
                    f"starts half a cell ({half:.0f} px) above and left of the image"
                    + ("" if len(grid) else f"; {cells[0]}x{cells[1]} cells, grid not drawn"))
    overlay.legend = [("dotted", f"the {len(top)} best anchors of P{level}")] + \
        ([("grid", "feature cells")] if len(grid) else [])
    return overlay


def plan_refined_anchors(trace, view: ViewState) -> Overlay:
    pre = trace["proposals/pre_nms"]
    rows, kept = filter_rows(pre["scores"], pre_nms_levels(trace), view.score_threshold,
                             view.top_n, view.box_level)
    rows, dropped = cap_rows(rows, pre["scores"])
    anchors = trace["anchors"]["boxes"][pre["anchor_indices"][rows]]
    return Overlay(boxes={"dotted": anchors, "dashed": pre["unclipped"][rows],
                          "solid": pre["boxes"][rows]},
                   pick=("pre_nms", rows, pre["boxes"][rows]),
                   note=f"Refined anchors: {kept} by score{dropped}{in_all(kept, pre['scores'])}",
                   legend=[("dotted", "anchor"), ("dashed", "refined by the RPN deltas"),
                           ("solid", "clipped to the image")])


def plan_proposals(trace, view: ViewState) -> Overlay:
    pre, post = trace["proposals/pre_nms"], trace["proposals/post_nms"]
    rows, kept = filter_rows(post["scores"], post_nms_levels(trace), view.score_threshold,
                             view.top_n, view.box_level)
    rows, dropped = cap_rows(rows, post["scores"])
    # Before NMS: the same filters, so the faint boxes stay as readable as the solid ones.
    pre_rows, _ = filter_rows(pre["scores"], pre_nms_levels(trace), view.score_threshold,
                              view.top_n, view.box_level)
    pre_rows, _ = cap_rows(pre_rows, pre["scores"])
    return Overlay(boxes={"faint": pre["boxes"][pre_rows], "solid": post["boxes"][rows]},
                   pick=("proposal", rows, post["boxes"][rows]),
                   note=f"Proposals after NMS: {kept} by score{dropped}"
                        f"{in_all(kept, post['scores'])}",
                   legend=[("solid", "proposal (kept by NMS)"),
                           ("faint", f"{len(pre_rows)} best before NMS")])


def plan_roi_refinement(trace, view: ViewState) -> Overlay:
    probs = trace["heads/class_probs"]["probs"]
    class_ids = np.argmax(probs, axis=1)
    scores = probs[np.arange(len(probs)), class_ids]
    rows, dropped = rows_above(np.where(class_ids > 0, scores, -1.0), view.score_threshold)
    rois = trace["proposals/post_nms"]["boxes"][rows]
    refined = trace["heads/refined"]["boxes"][rows, class_ids[rows]]
    return Overlay(boxes={"dotted": rois, "solid": refined},
                   pick=("proposal", np.concatenate([rows, rows]),
                         np.concatenate([refined, rois])),
                   note=f"{len(rows)} foreground ROIs of {len(probs)}{dropped}",
                   legend=[("dotted", "ROI (proposal)"),
                           ("solid", "refined box for its most likely class")])


def plan_detections(trace, view: ViewState) -> Overlay:
    overlay = detection_overlay(trace, view, labels=True)
    pre = trace["detections/pre_nms"]
    pre_rows, _ = rows_above(pre["scores"], view.score_threshold)
    overlay.boxes["faint"] = pre["boxes"][pre_rows]
    overlay.note += f" (faint: {len(pre_rows)} before per-class NMS)"
    return overlay


def plan_raw_masks(trace, view: ViewState) -> Overlay:
    overlay = detection_overlay(trace, view, labels=True)
    overlay.masks = "raw"
    overlay.note += "; 28x28 mask probabilities stretched into each box, grid at right"
    return overlay


def plan_masks(trace, view: ViewState) -> Overlay:
    overlay = detection_overlay(trace, view, labels=False)
    overlay.masks = "full"
    return overlay


def plan_composite(trace, view: ViewState) -> Overlay:
    overlay = detection_overlay(trace, view, labels=True)
    overlay.masks = "full" if "masks" in trace else ""
    return overlay


def detection_overlay(trace, view: ViewState, labels: bool) -> Overlay:
    """Detections at or above the threshold, one box style per class, a legend of the classes
    drawn, and labels for the best 100 (best score first: they are placed first)."""
    det = trace["detections"]
    rows, _ = rows_above(det["scores"], view.score_threshold)
    boxes = np.asarray(det["boxes"], np.float32).reshape(-1, 4)
    overlay = Overlay(pick=("detection", rows, boxes[rows]), mask_rows=rows)
    class_ids = np.asarray(det["class_ids"]).reshape(-1)
    for class_id in np.unique(class_ids[rows]):
        overlay.boxes[f"class:{int(class_id)}"] = boxes[rows[class_ids[rows] == class_id]]
        overlay.legend.append((f"class:{int(class_id)}", class_name(trace, class_id)))
    if labels:
        best = rows[np.argsort(-np.asarray(det["scores"])[rows], kind="stable")[:100]]
        for row in best:
            class_id = int(class_ids[row])
            overlay.labels.append((boxes[row], f"{class_name(trace, class_id)} "
                                               f"{float(det['scores'][row]):.2f}",
                                   class_colour(class_id)))
    overlay.note = (f"{len(rows)} of {len(boxes)} detections with score ≥ "
                    f"{view.score_threshold:.2f}")
    return overlay


def in_all(kept: str, scores) -> str:
    """The " (N in all)" of a filter note that does not end with the total already, and a hint
    on how to see more."""
    total = len(scores)
    return ("" if kept.endswith(f" {total}") else f" ({total} in all)") + \
        "; Top, Level and Score ≥ choose which"


def cap_rows(rows, scores) -> tuple[np.ndarray, str]:
    """``rows`` cut to the MAX_BOXES best by score (in row order), and a note on drops."""
    if len(rows) <= MAX_BOXES:
        return rows, ""
    scores = np.asarray(scores)
    best = np.sort(rows[np.argsort(-scores[rows], kind="stable")[:MAX_BOXES]])
    return best, f" (best {MAX_BOXES} of {len(rows)} shown)"


def rows_above(scores, threshold: float) -> tuple[np.ndarray, str]:
    """Rows with score >= threshold (at most the MAX_BOXES best, in row order); a note on drops."""
    scores = np.asarray(scores)
    rows = np.flatnonzero(scores >= threshold)
    if len(rows) <= MAX_BOXES:
        return rows, ""
    best = np.sort(rows[np.argsort(-scores[rows], kind="stable")[:MAX_BOXES]])
    return best, f" (best {MAX_BOXES} of {len(rows)} shown)"


PLANS = {"input": plan_input, "anchors": plan_anchors, "rpn_scores": plan_rpn_scores,
         "refined_anchors": plan_refined_anchors, "proposals": plan_proposals,
         "roi_refinement": plan_roi_refinement, "detections": plan_detections,
         "raw_masks": plan_raw_masks, "masks": plan_masks, "composite": plan_composite}
