"""Matplotlib figures of each stage of a ``Trace`` (``stage_figure``), split from visualize.py.

Same conventions as ``mrcnn.visualize``: each function returns a new Figure without touching
pyplot's global state. Boxes are original-image pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mrcnn.visualize import (MAX_DRAWN_BOXES, _figure, _mark_empty, _show_image,
                             display_activations, display_instances, draw_boxes)


def stage_figure(trace, stage_key: str) -> Figure:
    """A figure for one stage of a ``Trace`` (every key of ``mrcnn.trace_data`` is supported)."""
    from mrcnn.trace_data import ACTIVATION_PREFIX

    stage = trace[stage_key]
    if stage_key.startswith(ACTIVATION_PREFIX):
        return display_activations(stage["values"], title=stage_key)
    draw = _STAGE_FIGURES.get(stage_key)
    if draw is None:
        known = ", ".join([*_STAGE_FIGURES, ACTIVATION_PREFIX + "<layer>"])
        raise ValueError(f"stage_figure: unknown stage {stage_key!r}; expected one of {known}")
    fig = draw(trace, stage)
    if not fig._suptitle:
        fig.suptitle(stage_key)
    return fig


def _top(scores, limit=MAX_DRAWN_BOXES):
    return np.argsort(-np.asarray(scores), kind="stable")[:limit]


def _input_figure(trace, stage):
    fig, axes = _figure(1, 2, 5.0)
    _show_image(axes[0, 0], stage["image"], f"original {stage['image'].shape[:2]}")
    _show_image(axes[0, 1], stage["molded"], f"molded {stage['molded'].shape[:2]}")
    return fig


def _anchors_figure(trace, stage):
    """The anchors of the cell nearest the image centre, one colour per pyramid level."""
    boxes, levels = stage["boxes"], stage["levels"]
    height, width = trace.image.shape[:2]
    centers = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    distance = np.abs(centers - [height / 2, width / 2]).sum(axis=1)
    chosen = []
    for level in np.unique(levels):
        members = np.flatnonzero(levels == level)
        nearest = distance[members].min()
        chosen.extend(members[distance[members] <= nearest + 1e-3])
    captions = [f"P{levels[i]}" for i in chosen]
    fig = draw_boxes(trace.image, refined_boxes=boxes[chosen], captions=captions,
                     title=f"{len(boxes)} anchors; central cell of each level")
    return fig


def _rpn_scores_figure(trace, stage):
    """Max foreground score per feature cell, one heat map per pyramid level."""
    from mrcnn.trace_views import max_score_per_cell  # local: one call site, shared with the viewer

    scores, levels = stage["scores"], trace["anchors"]["levels"]
    unique = np.unique(levels)
    fig, axes = _figure(1, len(unique), 3.0, "RPN foreground score (max over anchors per cell)")
    for ax, level in zip(axes.ravel(), unique):
        level_scores = max_score_per_cell(trace, int(level))
        if level_scores is None:  # shape unknown: the level's scores as one row
            level_scores = scores[levels == level][None]
        image = ax.imshow(level_scores, cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"P{level}")
        ax.axis("off")
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.7)
    return fig


def _rpn_deltas_figure(trace, stage):
    deltas = stage["deltas"]
    fig, axes = _figure(1, 4, 3.0, "RPN deltas (times RPN_BBOX_STD_DEV), all anchors")
    for i, (ax, name) in enumerate(zip(axes.ravel(), ("dy", "dx", "log dh", "log dw"))):
        ax.hist(deltas[:, i], bins=50, color="tab:blue")
        ax.set_title(name)
    return fig


def _pre_nms_figure(trace, stage):
    top = np.arange(min(len(stage["boxes"]), 50))
    anchors = trace["anchors"]["boxes"][stage["anchor_indices"][top]]
    return draw_boxes(trace.image, boxes=anchors, refined_boxes=stage["boxes"][top],
                      title=f"top {len(top)} of {len(stage['boxes'])} anchors: "
                            "dotted before, solid after refinement")


def _post_nms_figure(trace, stage):
    top = np.arange(min(len(stage["boxes"]), 50))
    return draw_boxes(trace.image, refined_boxes=stage["boxes"][top],
                      captions=[f"{s:.2f}" for s in stage["scores"][top]],
                      title=f"top {len(top)} of {len(stage['boxes'])} proposals after NMS")


def _targets_rpn_figure(trace, stage):
    from mrcnn.targets import NEGATIVE

    anchors = trace["anchors"]["boxes"]
    positive = stage["positive_indices"][:MAX_DRAWN_BOXES]
    negative = np.flatnonzero(stage["match"] == NEGATIVE)[:20]
    boxes = np.concatenate([anchors[positive], anchors[negative]])
    visibilities = np.array([2] * len(positive) + [1] * len(negative))
    return draw_boxes(trace.image, refined_boxes=boxes, visibilities=visibilities,
                      title=f"RPN targets: {len(stage['positive_indices'])} positive (colour), "
                            f"{int(np.sum(stage['match'] == NEGATIVE))} negative (grey, 20 shown)")


def _targets_rois_figure(trace, stage):
    class_ids = stage["class_ids"]
    names = trace.class_names
    visibilities = np.where(class_ids > 0, 2, 1)[:MAX_DRAWN_BOXES]
    captions = [names[c] if 0 < c < len(names) else "" for c in class_ids]
    return draw_boxes(trace.image, refined_boxes=stage["boxes"], captions=captions,
                      visibilities=visibilities,
                      title=f"training ROIs: {int(np.sum(class_ids > 0))} positive, "
                            f"{int(np.sum(class_ids == 0))} negative")


def _class_probs_figure(trace, stage):
    probs = stage["probs"]
    fig, axes = _figure(1, 1, 6.0, "class probabilities per proposal")
    ax = axes[0, 0]
    image = ax.imshow(probs if probs.size else np.zeros((1, 1)), aspect="auto", cmap="viridis",
                      vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("class")
    ax.set_ylabel("proposal")
    fig.colorbar(image, ax=ax)
    return fig


def _refined_figure(trace, stage):
    probs = trace["heads/class_probs"]["probs"]
    rois = trace["proposals/post_nms"]["boxes"]
    class_ids = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    scores = probs[np.arange(len(probs)), class_ids]
    top = [i for i in _top(scores) if class_ids[i] > 0][:50]
    names = trace.class_names
    return draw_boxes(trace.image, boxes=rois[top], refined_boxes=stage["boxes"][top, class_ids[top]],
                      captions=[f"{names[class_ids[i]] if class_ids[i] < len(names) else class_ids[i]}"
                                f" {scores[i]:.2f}" for i in top],
                      title="proposals (dotted) refined for their best class (solid)")


def _detections_pre_nms_figure(trace, stage):
    top = _top(stage["scores"], 50)
    names = trace.class_names
    return draw_boxes(trace.image, refined_boxes=stage["boxes"][top],
                      captions=[f"{names[c] if c < len(names) else c} {s:.2f}" for c, s in
                                zip(stage["class_ids"][top], stage["scores"][top])],
                      title=f"{len(stage['boxes'])} detections before per-class NMS (top 50)")


def _detections_figure(trace, stage):
    masks = trace["masks"]["masks"] if "masks" in trace else None
    return display_instances(trace.image, stage["boxes"], masks, stage["class_ids"],
                             trace.class_names, stage["scores"], show_mask=False,
                             title=f"{len(stage['boxes'])} detections")


def _raw_masks_figure(trace, stage):
    masks = stage["masks"]
    if not len(masks):
        fig, axes = _figure(1, 1, 4.0)
        _show_image(axes[0, 0], trace.image)
        _mark_empty(axes[0, 0], "detections")
        return fig
    return display_activations(np.moveaxis(masks, 0, -1), max_channels=25, cmap="gray",
                               title=f"raw {masks.shape[1]}x{masks.shape[2]} masks")


def _masks_figure(trace, stage):
    det = trace["detections"]
    return display_instances(trace.image, det["boxes"], stage["masks"], det["class_ids"],
                             trace.class_names, det["scores"], title="masks")


def _gt_figure(trace, stage):
    return display_instances(trace.image, stage["boxes"], stage.get("masks"), stage["class_ids"],
                             trace.class_names, title=f"ground truth ({len(stage['boxes'])})")


_STAGE_FIGURES = {
    "input": _input_figure, "anchors": _anchors_figure, "rpn/scores": _rpn_scores_figure,
    "rpn/deltas": _rpn_deltas_figure, "proposals/pre_nms": _pre_nms_figure,
    "proposals/post_nms": _post_nms_figure, "targets/rpn": _targets_rpn_figure,
    "targets/rois": _targets_rois_figure, "heads/class_probs": _class_probs_figure,
    "heads/refined": _refined_figure, "detections/pre_nms": _detections_pre_nms_figure,
    "detections": _detections_figure, "masks/raw": _raw_masks_figure, "masks": _masks_figure,
    "gt": _gt_figure,
}
