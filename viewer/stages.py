"""The viewer's pipeline stages: what each shows, which trace stages it needs, its tooltip.

Qt-free and TensorFlow-free, so it can be tested and reused by any front end. A viewer stage is a
step of the stepper; it draws from one or more trace stages (``mrcnn.trace_data`` keys).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewStage:
    key: str            # stable id used by the stepper, shortcuts and tests
    title: str          # short label in the stage list
    needs: tuple        # trace stage keys this view draws from (all must be present)
    tooltip: str        # what the stage shows, in one or two sentences
    count_key: str = "" # trace stage whose item count is shown next to the title


VIEW_STAGES = (
    ViewStage("input", "Input & resize", ("input",),
              "The original image and the molded (resized and padded) image the network sees; "
              "the window marks where the image lies inside the padding.", "input"),
    ViewStage("anchors", "Anchors", ("anchors",),
              "Pyramid anchors per FPN level (P2-P6). With ground truth, anchors are coloured by "
              "RPN match state: positive, negative, neutral.", "anchors"),
    ViewStage("rpn_scores", "RPN scores", ("rpn/scores", "anchors"),
              "Objectness (foreground probability) heat map per pyramid level, the maximum over "
              "the anchors at each location.", "rpn/scores"),
    ViewStage("refined_anchors", "Refined anchors", ("proposals/pre_nms", "anchors"),
              "Top PRE_NMS_LIMIT anchors by score moved by their RPN deltas: dotted before "
              "refinement, dashed before clipping, solid after clipping to the image.",
              "proposals/pre_nms"),
    ViewStage("proposals", "Proposals (NMS)", ("proposals/pre_nms", "proposals/post_nms"),
              "Refined anchors before (faint) and after (solid) RPN non-max suppression at "
              "RPN_NMS_THRESHOLD; these are the ROIs fed to the heads.", "proposals/post_nms"),
    ViewStage("roi_refinement", "ROI refinement", ("proposals/post_nms", "heads/refined",
                                                  "heads/class_probs"),
              "Each ROI (dotted) and its class-specific refined box (solid) for its most likely "
              "class; background ROIs are hidden unless selected.", "heads/class_probs"),
    ViewStage("detections", "Detections (NMS)", ("detections/pre_nms", "detections"),
              "Detections after background and confidence filtering (faint) and after per-class "
              "non-max suppression (solid).", "detections"),
    ViewStage("raw_masks", "Raw masks 28x28", ("masks/raw", "detections"),
              "The mask head's 28x28 probability map for each detection's class, before it is "
              "resized into the box.", "masks/raw"),
    ViewStage("masks", "Full-size masks", ("masks", "detections"),
              "Each raw mask resized to its box, thresholded at 0.5 and pasted into the image.",
              "masks"),
    ViewStage("composite", "Final result", ("detections", "masks"),
              "Boxes, masks, class names and scores above the score threshold: what detect() "
              "returns.", "detections"),
)

STAGE_KEYS = tuple(stage.key for stage in VIEW_STAGES)


def stage_by_key(key: str) -> ViewStage:
    for stage in VIEW_STAGES:
        if stage.key == key:
            return stage
    raise KeyError(f"unknown viewer stage {key!r}; known: {', '.join(STAGE_KEYS)}")


def available_stages(trace) -> list[ViewStage]:
    """Viewer stages whose trace data are all present in ``trace`` (None -> none)."""
    if trace is None:
        return []
    return [stage for stage in VIEW_STAGES if all(key in trace for key in stage.needs)]


# ---- timings: one naming for the stage list and the Timings tab ------------------------------

# Trace timing keys (``Trace.meta["timings"]``, seconds, from mrcnn.trace) charged to each
# viewer stage. The proposal layer refines anchors and runs NMS in one step, so its time goes
# to "Proposals (NMS)" alone; "Final result" costs nothing beyond the stages before it.
STAGE_TIMINGS = {
    "input": ("mold",),
    "anchors": (),
    "rpn_scores": ("features", "rpn"),
    "refined_anchors": (),
    "proposals": ("proposals",),
    "roi_refinement": ("classifier",),
    "detections": ("detection",),
    "raw_masks": ("mask",),
    "masks": ("postprocess",),
    "composite": (),
}
# Timed work that is no stage of the list: the ground-truth targets (only with GT).
EXTRA_TIMINGS = {"targets": "GT targets (RPN + ROI)"}
TOTAL_TIMING = "total"  # the whole pass: shown apart, never as a stage


def stage_seconds(stage_key: str, timings: dict) -> float | None:
    """Seconds charged to viewer stage ``stage_key``, None when the trace timed none of it."""
    keys = [k for k in STAGE_TIMINGS.get(stage_key, ()) if timings.get(k) is not None]
    return sum(float(timings[k]) for k in keys) if keys else None


def timing_stages(timings: dict) -> list[tuple[str, float, str]]:
    """[(name, seconds, trace keys)] of ``timings`` ({trace key: seconds}) named as the stage
    list names them, in pipeline order; then the GT targets; then any key no stage claims (a
    trace from another version), by its own name. The total is not a row."""
    rows, claimed = [], {TOTAL_TIMING}
    for stage in VIEW_STAGES:
        seconds = stage_seconds(stage.key, timings)
        claimed.update(STAGE_TIMINGS.get(stage.key, ()))
        if seconds is not None:
            keys = [k for k in STAGE_TIMINGS[stage.key] if timings.get(k) is not None]
            rows.append((stage.title, seconds, " + ".join(keys)))
    for key, name in EXTRA_TIMINGS.items():
        claimed.add(key)
        if timings.get(key) is not None:
            rows.append((name, float(timings[key]), key))
    rows += [(str(k), float(v), str(k)) for k, v in timings.items()
             if k not in claimed and v is not None]
    return rows


def total_seconds(timings: dict) -> float:
    """The whole pass: ``timings["total"]`` when timed, else the sum of the rest."""
    if timings.get(TOTAL_TIMING) is not None:
        return float(timings[TOTAL_TIMING])
    return sum(float(v) for k, v in timings.items() if v is not None)
