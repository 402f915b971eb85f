"""What the compare window tabulates, computed from two traces: no Qt, no TensorFlow, numpy only.

``pair_detections`` matches A's detections to B's (same class name, IoU >= 0.5, highest IoU
first, each detection in at most one pair) into ``DetectionPair`` rows; ``count_rows`` lists the
per-stage item counts and per-step times of both traces; ``detections_above`` picks a trace's
detections at or above a score threshold, with their trace rows, for the pairing.
Boxes are pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrcnn.boxes import compute_overlaps
from mrcnn.trace_data import STAGE_ORDER

IOU_THRESHOLD = 0.5         # same-class detections at or above this IoU are one object
ONLY_A, ONLY_B = "only A", "only B"
COUNTLESS_STAGES = ("input",)  # its "count" is the image height
TIME_PREFIX = "time: "


@dataclass(frozen=True)
class DetectionPair:
    """One row of the detections table: rows ``a`` / ``b`` of each trace's ``detections`` stage
    (None where that side has no partner), their scores and IoU (None when unpaired)."""

    class_name: str
    a: int | None
    b: int | None
    score_a: float | None
    score_b: float | None
    iou: float | None

    @property
    def status(self) -> str:
        if self.a is None:
            return ONLY_B
        return ONLY_A if self.b is None else "paired"


def pair_detections(boxes_a, names_a, scores_a, boxes_b, names_b, scores_b,
                    rows_a=None, rows_b=None, threshold=IOU_THRESHOLD) -> list[DetectionPair]:
    """Pair A's and B's detections: same class name and IoU >= ``threshold``, highest IoU first,
    each detection in at most one pair. Boxes [N, 4] pixels ``[y1, x1, y2, x2]``.

    ``rows_a`` / ``rows_b`` (default 0..N-1) are the trace rows reported in the pairs. Order:
    A's detections in their order (paired or "only A"), then B's unpaired ones ("only B").
    """
    names_a, names_b = np.asarray(names_a, object), np.asarray(names_b, object)
    rows_a = np.arange(len(names_a)) if rows_a is None else np.asarray(rows_a)
    rows_b = np.arange(len(names_b)) if rows_b is None else np.asarray(rows_b)
    iou = compute_overlaps(boxes_a, boxes_b)                       # (Na, Nb)
    same_class = names_a[:, None] == names_b[None, :]
    candidates = np.argwhere(same_class & (iou >= threshold))
    order = np.lexsort((candidates[:, 1], candidates[:, 0], -iou[tuple(candidates.T)])) \
        if len(candidates) else []
    partner_of_a, taken_b = {}, set()
    for i, j in candidates[order]:
        if i not in partner_of_a and j not in taken_b:
            partner_of_a[int(i)] = int(j)
            taken_b.add(int(j))
    pairs = []
    for i in range(len(names_a)):
        j = partner_of_a.get(i)
        pairs.append(DetectionPair(
            str(names_a[i]), int(rows_a[i]), None if j is None else int(rows_b[j]),
            float(scores_a[i]), None if j is None else float(scores_b[j]),
            None if j is None else float(iou[i, j])))
    pairs += [DetectionPair(str(names_b[j]), None, int(rows_b[j]), None, float(scores_b[j]), None)
              for j in range(len(names_b)) if j not in taken_b]
    return pairs


def stage_counts(trace) -> dict:
    """{trace stage key: item count} of ``trace`` (its saved counts, else computed)."""
    if trace is None:
        return {}
    return dict(trace.meta.get("counts") or trace.counts())


def count_rows(trace_a, trace_b) -> list[tuple]:
    """[(name, A, B)] per-stage counts then per-stage times (ms, "time: ..." names); None where a
    trace is missing or lacks the stage. Stages in pipeline order; activations left out."""
    counts = [stage_counts(trace_a), stage_counts(trace_b)]
    keys = [k for k in STAGE_ORDER if k not in COUNTLESS_STAGES and any(k in c for c in counts)]
    rows = [(k, counts[0].get(k), counts[1].get(k)) for k in keys]
    timings = [dict(t.meta.get("timings", {})) if t is not None else {} for t in (trace_a, trace_b)]
    names = list(dict.fromkeys([*timings[0], *timings[1]]))
    names.sort(key=lambda name: name == "total")  # the total last, stages in trace order
    for name in names:
        a, b = (1000.0 * float(t[name]) if t.get(name) is not None else None for t in timings)
        rows.append((TIME_PREFIX + name, a, b))
    return rows


def detections_above(trace, threshold) -> tuple:
    """(trace rows [N], boxes [N, 4] pixels, class names [N], scores [N]) of the detections of
    ``trace`` scoring >= ``threshold``; an unknown class id is named "class <id>"."""
    det = trace["detections"]
    rows = np.flatnonzero(np.asarray(det["scores"]) >= threshold)
    names = trace.class_names
    ids = np.asarray(det["class_ids"])[rows]
    return (rows, np.asarray(det["boxes"], np.float64).reshape(-1, 4)[rows],
            [names[i] if 0 <= i < len(names) else f"class {i}" for i in ids.tolist()],
            np.asarray(det["scores"])[rows])
