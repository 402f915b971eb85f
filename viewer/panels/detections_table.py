"""Detections table: class, score, box and mask area per detection, filtered by the threshold.

Selecting a row selects the detection in the Session; a selection made elsewhere (a detection,
or a proposal / anchor that became one) selects its row here.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, Qt
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout,
                               QWidget)

COLUMNS = ("#", "class", "score", "box [y1, x1, y2, x2]", "mask area")


class DetectionsModel(QAbstractTableModel):
    """Rows: detections of a trace with score >= threshold (``rows`` maps to trace rows)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.trace = None
        self.rows = np.zeros(0, int)
        self._areas = None

    def set_trace(self, trace, threshold: float) -> None:
        self.trace = trace
        self._areas = None
        if trace is not None and "masks" in trace and "detections" in trace:
            # [H, W, N] -> (N,): once per trace, not per repaint.
            masks = np.asarray(trace["masks"]["masks"])
            # Explicit pixel count: reshape(-1, 0) cannot infer -1 when there are no detections.
            pixels = int(np.prod(masks.shape[:-1])) if masks.ndim == 3 else 0
            self._areas = masks.reshape(pixels, masks.shape[-1]).sum(axis=0)
        self.set_threshold(threshold)

    def set_threshold(self, threshold: float) -> None:
        self.beginResetModel()
        if self.trace is None or "detections" not in self.trace:
            self.rows = np.zeros(0, int)
        else:
            self.rows = np.flatnonzero(self.trace["detections"]["scores"] >= threshold)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = int(self.rows[index.row()])
        det = self.trace["detections"]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return str(row)
            if column == 1:
                names = self.trace.class_names
                class_id = int(det["class_ids"][row])
                return names[class_id] if class_id < len(names) else f"class {class_id}"
            if column == 2:
                return f"{float(det['scores'][row]):.3f}"
            if column == 3:
                return ", ".join(f"{float(v):.0f}" for v in det["boxes"][row])
            if column == 4:
                return "" if self._areas is None else f"{int(self._areas[row]):,}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 2, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None

    def table_row_of(self, detection: int):
        hits = np.flatnonzero(self.rows == detection)
        return int(hits[0]) if len(hits) else None


class DetectionsTablePanel(QWidget):
    """QTableView of the detections; linked to the Session's selection and threshold."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.model = DetectionsModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setToolTip("Detections above the score threshold; click a row to select it")
        self.hint = QLabel()  # says why the table is empty; hidden while it has rows
        self.hint.setWordWrap(True)
        self.hint.setContentsMargins(6, 4, 6, 4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.hint)
        layout.addWidget(self.view, 1)
        self._updating = False
        self.model.modelReset.connect(self._update_hint)
        self.view.selectionModel().selectionChanged.connect(self._on_rows_selected)
        session.traceChanged.connect(self._on_trace)
        session.scoreThresholdChanged.connect(self._on_threshold)
        session.selectionChanged.connect(self._follow_selection)
        self._on_trace(session.trace)

    def _update_hint(self):
        trace = self.model.trace
        if self.model.rowCount():
            text = ""
        elif trace is None:
            text = "No detections yet: open an image and a model, or a saved trace."
        elif "detections" not in trace:
            text = "No detections: this image was opened without a model (Ctrl+M opens one)."
        elif len(trace["detections"]["scores"]):
            text = (f"No detections score ≥ {self.session.score_threshold:.2f}: lower the "
                    "score threshold above the image.")
        else:
            text = "The model found nothing in this image."
        self.hint.setText(text)
        self.hint.setVisible(bool(text))

    def _on_trace(self, trace):
        self._updating = True
        self.model.set_trace(trace, self.session.score_threshold)
        self._updating = False
        self._follow_selection()

    def _on_threshold(self, threshold):
        self._updating = True
        self.model.set_threshold(threshold)
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
        table_row = None if detection is None else self.model.table_row_of(detection)
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
