"""The selection and its lineage on the canvas, and the legend line saying which box is which.

Qt-free. ``plan_highlight`` turns the session's selection (its trace stage key and the rows of
every stage linked to it) into boxes per style - the selected item magenta, each stage of its
lineage in its own colour (``canvas_styles.STYLES["link:<key>"]``) - and one legend entry per
drawn box with its kind, row index, pyramid level and score. Boxes are original-image pixels
``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.panels.canvas_arrays import box_of, refined_box_of_roi

# Lineage order (anchor first) and what each linked box is called in the legend.
LINK_ORDER = ("anchors", "proposals/pre_nms", "proposals/post_nms", "refined",
              "detections/pre_nms", "detections", "gt")
LINK_TITLES = {
    "anchors": "anchor",
    "proposals/pre_nms": "refined anchor (before RPN NMS)",
    "proposals/post_nms": "proposal / ROI",
    "refined": "refined ROI",
    "detections/pre_nms": "detection before class NMS",
    "detections": "detection",
    "gt": "ground truth",
}
LINE_WORDS = {"dot": "dotted", "dash": "dashed", "solid": "solid", "dashdot": "dash-dot"}


@dataclass
class Highlight:
    """What the selection draws: boxes per style, legend entries, the selected anchor's level."""

    boxes: dict = field(default_factory=dict)     # style ("selected", "link:<key>") -> [N, 4]
    drawn: dict = field(default_factory=dict)     # trace stage key -> box [4] drawn
    entries: list = field(default_factory=list)   # (style, text), selected item first
    anchor_level: int | None = None               # pyramid level of the linked anchor


def plan_highlight(trace, own_key: str | None, linked: dict, stage: str) -> Highlight:
    """Highlight of the selection whose trace stage is ``own_key`` with ``linked``
    ({trace stage key: row}, ``Session.linked()``), in viewer stage ``stage``."""
    out = Highlight()
    if trace is None or own_key is None:
        return out
    rows = dict(linked)
    if stage == "roi_refinement":
        roi = rows.get("proposals/post_nms")
        if refined_box_of_roi(trace, roi) is not None:
            rows["refined"] = roi
    for key in sorted(rows, key=lambda k: LINK_ORDER.index(k) if k in LINK_ORDER else 99):
        box = (refined_box_of_roi(trace, rows[key]) if key == "refined"
               else box_of(trace, key, rows[key]))
        if box is None:
            continue
        style = "selected" if key == own_key else f"link:{key}"
        out.boxes.setdefault(style, []).append(np.asarray(box, np.float32))
        if key != "refined":
            out.drawn[key] = box
        entry = (style, describe_row(trace, key, rows[key]))
        out.entries.insert(0, entry) if style == "selected" else out.entries.append(entry)
    out.boxes = {style: np.stack(boxes) for style, boxes in out.boxes.items()}
    anchor = rows.get("anchors")
    if anchor is not None and "anchors" in trace and "levels" in trace["anchors"] \
            and 0 <= anchor < len(trace["anchors"]["levels"]):
        out.anchor_level = int(trace["anchors"]["levels"][anchor])
    return out


def describe_row(trace, key: str, row: int) -> str:
    """One legend phrase for row ``row`` of trace stage ``key`` ("refined": of ROI ``row``):
    its kind, index, level and score, e.g. "anchor #4051 · P3 · RPN score 0.91"."""
    row = int(row)
    title = f"{LINK_TITLES.get(key, key)} #{row}"
    if key == "anchors":
        parts = [title]
        if "levels" in trace["anchors"]:
            parts.append(f"P{int(trace['anchors']['levels'][row])}")
        if "rpn/scores" in trace:
            parts.append(f"RPN score {float(trace['rpn/scores']['scores'][row]):.2f}")
        return " · ".join(parts)
    if key in ("proposals/pre_nms", "proposals/post_nms"):
        return f"{title} · score {float(trace[key]['scores'][row]):.2f}"
    if key == "refined":
        probs = trace["heads/class_probs"]["probs"][row]
        class_id = int(np.argmax(probs))
        return (f"refined ROI of proposal #{row} · {class_name(trace, class_id)} "
                f"{float(probs[class_id]):.2f}")
    if key in ("detections", "detections/pre_nms"):
        stage = trace[key]
        class_id = int(stage["class_ids"][row])
        return f"{title} · {class_name(trace, class_id)} {float(stage['scores'][row]):.2f}"
    if key == "gt" and "class_ids" in trace["gt"]:
        return f"{title} · {class_name(trace, int(trace['gt']['class_ids'][row]))}"
    return title


def class_name(trace, class_id: int) -> str:
    names = trace.class_names
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"
