"""Session: the viewer's state (trace, stage, selection, threshold, overlays) with change signals.

No widgets and no TensorFlow here. Panels read the session and subscribe to its signals; user
actions in any panel call the setters, and every other panel follows through the signals
(napari's model/view split). The Session never draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from viewer.diagnosis_view import gt_links
from viewer.stages import STAGE_KEYS, available_stages

# Kinds of selectable items and the trace stage whose rows they index.
SELECTION_STAGES = {
    "detection": "detections",
    "proposal": "proposals/post_nms",
    "pre_nms": "proposals/pre_nms",
    "anchor": "anchors",
    "gt": "gt",
}

DEFAULT_OVERLAYS = {"boxes": True, "masks": True, "labels": True, "gt": True, "window": True}


@dataclass(frozen=True)
class Selection:
    """One selected item: ``kind`` (a SELECTION_STAGES key) and its row in that stage."""

    kind: str
    index: int


class Session(QObject):
    """Holds what the viewer shows; emits a signal whenever a piece of it changes."""

    traceChanged = Signal(object)          # Trace or None
    stageChanged = Signal(str)             # viewer stage key
    selectionChanged = Signal(object)      # Selection or None
    scoreThresholdChanged = Signal(float)
    overlaysChanged = Signal(dict)
    weightStatsChanged = Signal(object)    # list of mrcnn.stats.WeightStat dicts, or None
    statusChanged = Signal(str)            # one-line status for the status bar
    busyChanged = Signal(bool)             # inference / loading in progress
    errorRaised = Signal(str, str)         # title, message (the window shows a dialog)
    datasetChanged = Signal(object)        # viewer.datasets.LoadedDataset or None
    datasetRowChanged = Signal(object)     # row of the shown dataset image, or None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.trace = None
        self.stage = STAGE_KEYS[0]
        self.selection: Selection | None = None
        self.score_threshold = 0.0
        self.overlays = dict(DEFAULT_OVERLAYS)
        self.weight_stats = None
        # What the shown trace is of, for titles and export file names: the image file, the
        # trace file, or a dataset image's name. Which file a model re-traces is the
        # Document's (``Document.image_file``).
        self.image_path = None
        self.dataset = None
        self.dataset_row: int | None = None

    # ---- trace and stages ----------------------------------------------------------------

    def set_trace(self, trace, image_path=None) -> None:
        """Show ``trace``; keeps the current stage when the new trace has it, clears selection."""
        self.trace = trace
        if image_path is not None:
            self.image_path = image_path
        self.selection = None
        keys = self.stage_keys()
        if keys and self.stage not in keys:
            self.stage = keys[-1] if "composite" in keys else keys[0]
        self.traceChanged.emit(trace)
        self.selectionChanged.emit(None)
        self.stageChanged.emit(self.stage)

    def stage_keys(self) -> list[str]:
        """Viewer stages the current trace can show, in pipeline order."""
        return [stage.key for stage in available_stages(self.trace)]

    def set_stage(self, key: str) -> None:
        if key not in STAGE_KEYS:
            raise KeyError(f"unknown viewer stage {key!r}")
        if key != self.stage:
            self.stage = key
            self.stageChanged.emit(key)

    def step_stage(self, delta: int) -> None:
        """Move ``delta`` stages forward (negative: back), clamped to the available ones."""
        keys = self.stage_keys()
        if not keys:
            return
        index = keys.index(self.stage) if self.stage in keys else 0
        self.set_stage(keys[max(0, min(len(keys) - 1, index + delta))])

    # ---- selection -----------------------------------------------------------------------

    def select(self, kind: str | None, index: int | None = None) -> None:
        """Select row ``index`` of ``kind`` (see SELECTION_STAGES); None clears the selection."""
        selection = None
        if kind is not None:
            if kind not in SELECTION_STAGES:
                raise KeyError(f"unknown selection kind {kind!r}")
            selection = Selection(kind, int(index))
        if selection != self.selection:
            self.selection = selection
            self.selectionChanged.emit(selection)

    def linked(self) -> dict:
        """Rows of every stage linked to the selection: {trace stage key: row}.

        A detection links back to its pre-NMS detection, proposal, pre-NMS box and anchor; a
        proposal to its pre-NMS box and anchor, and forward to the detection it became (if any);
        a GT object to its detection, or to the rows its diagnosis names (``gt_links``).
        """
        trace, selection = self.trace, self.selection
        if trace is None or selection is None:
            return {}
        out = {SELECTION_STAGES[selection.kind]: selection.index}
        if selection.kind == "detection":
            out.update(trace.lineage(selection.index))
        elif selection.kind == "proposal":
            out.update(_proposal_lineage(trace, selection.index))
        elif selection.kind == "gt":  # its detection, or the rows its diagnosis names
            out.update(gt_links(trace, selection.index))
        elif selection.kind == "pre_nms" and "proposals/pre_nms" in trace:
            out["anchors"] = int(trace["proposals/pre_nms"]["anchor_indices"][selection.index])
        return out

    # ---- display options -----------------------------------------------------------------

    def set_score_threshold(self, value: float) -> None:
        value = float(min(max(value, 0.0), 1.0))
        if value != self.score_threshold:
            self.score_threshold = value
            self.scoreThresholdChanged.emit(value)

    def set_overlay(self, name: str, visible: bool) -> None:
        if self.overlays.get(name) != bool(visible):
            self.overlays[name] = bool(visible)
            self.overlaysChanged.emit(dict(self.overlays))

    def set_weight_stats(self, stats) -> None:
        self.weight_stats = stats
        self.weightStatsChanged.emit(stats)

    # ---- dataset -------------------------------------------------------------------------

    def set_dataset(self, dataset) -> None:
        """Browse ``dataset`` (a LoadedDataset, or None); no image of it is shown yet."""
        self.dataset = dataset
        self.dataset_row = None
        self.datasetChanged.emit(dataset)
        self.datasetRowChanged.emit(None)

    def set_dataset_row(self, row: int | None) -> None:
        """The dataset image now shown (None: the shown image is not from the dataset)."""
        row = None if row is None else int(row)
        if row != self.dataset_row:
            self.dataset_row = row
            self.datasetRowChanged.emit(row)

    # ---- status --------------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        self.statusChanged.emit(text)

    def set_busy(self, busy: bool) -> None:
        self.busyChanged.emit(bool(busy))

    def report_error(self, title: str, message: str) -> None:
        self.errorRaised.emit(title, message)


def _proposal_lineage(trace, proposal: int) -> dict:
    out = {}
    post = trace.get("proposals/post_nms")
    pre = trace.get("proposals/pre_nms")
    if post is not None and 0 <= proposal < len(post["indices"]):
        pre_row = int(post["indices"][proposal])
        out["proposals/pre_nms"] = pre_row
        if pre is not None and pre_row >= 0:
            out["anchors"] = int(pre["anchor_indices"][pre_row])
    det = trace.get("detections")
    if det is not None:
        hits = [i for i, roi in enumerate(det["roi_indices"]) if int(roi) == proposal]
        if hits:
            out["detections"] = hits[0]
    return out
