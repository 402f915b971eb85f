"""Detections table: class, score, box and mask area per detection, filtered by the threshold.

Selecting a row selects the detection in the Session; a selection made elsewhere (a detection,
or a proposal / anchor that became one) selects its row here.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QHeaderView, QTableView

from viewer.panels.kit import Column, ColumnTableModel, SessionPanel, read_only_rows

NO_TRACE_HINT = "No detections yet: open an image and a model, or a saved trace."


def detection_rows(trace, threshold: float) -> np.ndarray:
    """Trace rows of the detections scoring >= ``threshold`` (none without a trace / detections)."""
    if trace is None or "detections" not in trace:
        return np.zeros(0, int)
    return np.flatnonzero(trace["detections"]["scores"] >= threshold)


def mask_areas(trace):
    """[N] pixel count of each detection's full-size mask, or None without masks."""
    if trace is None or "masks" not in trace or "detections" not in trace:
        return None
    masks = np.asarray(trace["masks"]["masks"])  # [H, W, N]
    # Explicit pixel count: reshape(-1, 0) cannot infer -1 when there are no detections.
    pixels = int(np.prod(masks.shape[:-1])) if masks.ndim == 3 else 0
    return masks.reshape(pixels, masks.shape[-1]).sum(axis=0)


class DetectionsTablePanel(SessionPanel):
    """QTableView of the detections; linked to the Session's selection and threshold."""

    def __init__(self, session, parent=None):
        super().__init__(session, NO_TRACE_HINT, parent)
        self.trace = None
        self._areas = None  # once per trace, not per repaint
        self.model = ColumnTableModel(self._columns(), np.zeros(0, int), self)
        self.view = QTableView()
        self.view.setModel(self.model)
        read_only_rows(self.view, row_height=None)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setToolTip("Detections above the score threshold; click a row to select it")
        self.hint.setContentsMargins(6, 4, 6, 4)
        self.set_content(self.view)
        self._updating = False
        self.model.modelReset.connect(self._update_hint)
        self.view.selectionModel().selectionChanged.connect(self._on_rows_selected)
        self.follow(session.traceChanged, self._on_trace, lambda: session.trace)
        session.scoreThresholdChanged.connect(self._on_threshold)
        session.selectionChanged.connect(self._follow_selection)
        self.sync()

    def _columns(self):
        def det(key):
            return self.trace["detections"][key]

        def class_name(row):
            names, class_id = self.trace.class_names, int(det("class_ids")[row])
            return names[class_id] if class_id < len(names) else f"class {class_id}"

        return (Column("#", str, right=True),
                Column("class", class_name),
                Column("score", lambda row: f"{float(det('scores')[row]):.3f}", right=True),
                Column("box [y1, x1, y2, x2]",
                       lambda row: ", ".join(f"{float(v):.0f}" for v in det("boxes")[row])),
                Column("mask area", lambda row: "" if self._areas is None
                       else f"{int(self._areas[row]):,}", right=True))

    def table_row_of(self, detection: int):
        """Table row showing trace detection ``detection``, or None (filtered out)."""
        hits = np.flatnonzero(self.model.rows == detection)
        return int(hits[0]) if len(hits) else None

    def _update_hint(self):
        trace = self.trace
        if self.model.rowCount():
            text = ""
        elif trace is None:
            text = NO_TRACE_HINT
        elif "detections" not in trace:
            text = "No detections: this image was opened without a model (Ctrl+M opens one)."
        elif len(trace["detections"]["scores"]):
            text = (f"No detections score ≥ {self.session.score_threshold:.2f}: lower the "
                    "score threshold above the image.")
        else:
            text = "The model found nothing in this image."
        self.hint.setText(text)
        self.show_content(not text)

    def _on_trace(self, trace):
        self.trace, self._areas = trace, mask_areas(trace)
        self._on_threshold(self.session.score_threshold)

    def _on_threshold(self, threshold):
        self._updating = True
        self.model.set_rows(detection_rows(self.trace, threshold))
        self._updating = False
        self._follow_selection()

    def selected_detection(self):
        """Trace row of the detection selected in the table, or None."""
        rows = self.view.selectionModel().selectedRows()
        return int(self.model.rows[rows[0].row()]) if rows else None

    def _on_rows_selected(self, *_):
        if self._updating:
            return
        detection = self.selected_detection()
        if detection is not None:
            self.session.select("detection", detection)

    def _follow_selection(self, *_):
        detection = self.session.linked().get("detections")
        table_row = None if detection is None else self.table_row_of(detection)
        self._updating = True
        try:
            selection = self.view.selectionModel()
            if table_row is None:
                selection.clearSelection()
            else:
                index = self.model.index(table_row, 0)
                selection.select(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                 | QItemSelectionModel.SelectionFlag.Rows)
                self.view.scrollTo(index)
        finally:
            self._updating = False
