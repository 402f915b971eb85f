"""Diagnosis panel: why each GT object of the current image was missed, what each detection is.

For a trace with ground truth (a dataset image, the demo sample, a trace saved by ``mrcnn
analyze --save-traces``) it lists every GT object with its verdict (``detected`` or the first
stage that lost it) and every detection with its type (true positive or TIDE's false-positive
types). Clicking a GT object selects it and jumps to the stage that lost it; the canvas then
draws that verdict's evidence (``viewer.panels.verdict_layer``). Clicking a detection selects it
as the Detections table does. The diagnosis comes from ``viewer.diagnosis_view.diagnosis_of``.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QFrame, QHeaderView, QLabel, QScrollArea,
                               QSplitter, QTableView, QVBoxLayout, QWidget)

from mrcnn.diagnose import explain_detection, explain_gt
from viewer.diagnosis_view import (diagnosis_of, evidence_lines, summary_text, verdict_colour,
                                   verdict_title, view_stage_of)
from viewer.export import export_widget_png
from viewer.panels.kit import Column, ColumnTableModel, SessionPanel, read_only_rows
from viewer.stages import stage_by_key

HINT = ("No diagnosis: this trace has no ground truth.\nOpen a dataset image (File > Open "
        "dataset…) to see why each object was found or missed, stage by stage.")


def _name(names, class_id) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


def _tint(rgb) -> QBrush:
    return QBrush(QColor(*rgb, 70))


class DiagnosisPanel(SessionPanel):
    """GT verdicts and detection verdicts of the session's trace, linked to its selection."""

    def __init__(self, session, parent=None):
        super().__init__(session, HINT, parent)
        self.diagnosis = None
        self._names: list = []
        self._following = False   # True while the tables copy the session's selection
        self.set_content(self._build())
        self.follow(session.traceChanged, self._on_trace, lambda: session.trace)
        session.selectionChanged.connect(self._on_selection)
        self.sync()

    # ---- widgets -------------------------------------------------------------------------

    def _build(self) -> QWidget:
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setContentsMargins(4, 4, 4, 2)
        self.gt_model = ColumnTableModel(self._gt_columns(), [], self)
        self.det_model = ColumnTableModel(self._det_columns(), [], self)
        self.gt_view = self._table(self.gt_model, self._on_gt_clicked)
        self.det_view = self._table(self.det_model, self._on_det_clicked)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setContentsMargins(4, 2, 4, 4)
        # Scrolls: a verdict with several evidence items is longer than the pane.
        detail_area = QScrollArea()
        detail_area.setWidget(self.detail)
        detail_area.setWidgetResizable(True)
        detail_area.setFrameShape(QFrame.Shape.NoFrame)
        detail_area.setMinimumHeight(90)
        splitter = QSplitter(Qt.Orientation.Vertical)
        for title, widget in (("Ground-truth objects <small>(click a miss: where it was "
                               "lost)</small>", self.gt_view),
                              ("Detections <small>(TIDE's error types)</small>", self.det_view)):
            box = QWidget()
            layout = QVBoxLayout(box)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(1)
            label = QLabel(f"<b>{title}</b>")
            label.setWordWrap(True)
            label.setContentsMargins(4, 2, 4, 0)
            layout.addWidget(label)
            layout.addWidget(widget)
            splitter.addWidget(box)
        splitter.addWidget(detail_area)
        splitter.setSizes([300, 300, 170])
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        return page

    def _table(self, model, on_click) -> QTableView:
        view = QTableView()
        view.setModel(model)
        read_only_rows(view)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        view.selectionModel().selectionChanged.connect(lambda *_: on_click())
        return view

    def _gt_columns(self):
        return (
            Column("#", lambda v: str(v.index), sort=lambda v: v.index, right=True),
            Column("Class", lambda v: _name(self._names, v.class_id)),
            Column("Size", lambda v: v.size),
            Column("Verdict", lambda v: verdict_title(v.cause),
                   background=lambda v: _tint(verdict_colour(v.cause)),
                   tooltip=lambda v: explain_gt(v, self._names)),
            Column("IoU", lambda v: f"{v.box_iou:.2f}" if v.detection >= 0 else "–", right=True),
            Column("Lost at", lambda v: "" if v.detected else stage_by_key(
                view_stage_of(v.cause)).title, tooltip=lambda v: explain_gt(v, self._names)),
        )

    def _det_columns(self):
        return (
            Column("#", lambda v: str(v.index), sort=lambda v: v.index, right=True),
            Column("Class", lambda v: _name(self._names, v.class_id)),
            Column("Score", lambda v: f"{v.score:.2f}", sort=lambda v: v.score, right=True),
            Column("Verdict", lambda v: verdict_title(v.type, detection=True),
                   background=lambda v: _tint(verdict_colour(v.type, detection=True)),
                   tooltip=lambda v: self._explain_detection(v)),
            Column("GT", lambda v: str(v.gt) if v.gt >= 0 else "–", right=True),
            Column("IoU", lambda v: f"{v.box_iou:.2f}" if v.gt >= 0 else "–", right=True),
        )

    def _explain_detection(self, verdict) -> str:
        trace = self.session.trace
        gt_ids = trace["gt"]["class_ids"] if trace is not None and "gt" in trace else None
        return explain_detection(verdict, gt_ids, self._names)

    # ---- session -> view -----------------------------------------------------------------

    def _on_trace(self, trace) -> None:
        self.diagnosis = diagnosis_of(trace)
        self.show_content(self.diagnosis is not None)
        self._names = list(trace.class_names) if self.diagnosis is not None else []
        self.gt_model.set_rows(list(self.diagnosis.gt) if self.diagnosis else [])
        self.det_model.set_rows(list(self.diagnosis.detections) if self.diagnosis else [])
        self.summary.setText(summary_text(self.diagnosis) if self.diagnosis else "")
        self._on_selection(self.session.selection)

    def _on_selection(self, selection) -> None:
        self._following = True
        try:
            for kind, view in (("gt", self.gt_view), ("detection", self.det_view)):
                row = selection.index if selection is not None and selection.kind == kind \
                    else None
                if row is not None and 0 <= row < view.model().rowCount():
                    index = view.model().index(row, 0)
                    view.selectionModel().select(
                        index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                        | QItemSelectionModel.SelectionFlag.Rows)
                    view.scrollTo(index)
                else:
                    view.clearSelection()
        finally:
            self._following = False
        self._show_detail(selection)

    def _show_detail(self, selection) -> None:
        verdict, text = None, ""
        if self.diagnosis is not None and selection is not None:
            if selection.kind == "gt" and selection.index < len(self.diagnosis.gt):
                verdict = self.diagnosis.gt[selection.index]
                text = explain_gt(verdict, self._names)
            elif selection.kind == "detection" and \
                    selection.index < len(self.diagnosis.detections):
                verdict = self.diagnosis.detections[selection.index]
                text = self._explain_detection(verdict)
        if verdict is None:
            self.detail.setText("Select a GT object or a detection to see why.")
            return
        lines = "".join(f"<br>• {line}" for line in evidence_lines(verdict, self._names))
        self.detail.setText(f"<b>{text}</b>{lines}")

    # ---- user -> session -----------------------------------------------------------------

    def _clicked_row(self, view):
        rows = view.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _on_gt_clicked(self) -> None:
        row = self._clicked_row(self.gt_view)
        if self._following or row is None:
            return
        self.select_gt(row)

    def _on_det_clicked(self) -> None:
        row = self._clicked_row(self.det_view)
        if self._following or row is None:
            return
        self.session.select("detection", row)

    def select_gt(self, row: int) -> None:
        """Select GT ``row`` and, when it was missed, show the stage that lost it."""
        verdict = self.diagnosis.gt[row]
        stage = view_stage_of(verdict.cause)
        if not verdict.detected and stage in self.session.stage_keys():
            self.session.set_stage(stage)
        self.session.select("gt", row)

    def export_png(self, path):
        """Write the panel as shown to ``path`` (PNG)."""
        return export_widget_png(self, path)
