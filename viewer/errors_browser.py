"""The Errors browser: every miss and false positive of an ``mrcnn analyze`` report, filtered
by cause, false-positive type, class and size; clicking a row opens that image at the stage that
lost the object (``viewer.errors_actions`` does the opening).

A window of its own (a dataset's errors are a list to work through beside the pipeline view).
It also shows a running analysis' progress with a Cancel button.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QHBoxLayout, QHeaderView,
                               QLabel, QProgressBar, QPushButton, QTableView, QVBoxLayout)

from mrcnn.diagnose import FP_TYPES, GT_VERDICTS, SIZES
from viewer.diagnosis_view import verdict_colour, verdict_title
from viewer.errors_data import (SHOW_ALL, SHOW_ERRORS, SHOW_FALSE_POSITIVES, SHOW_MISSES,
                                filter_rows)
from viewer.panels.kit import Column, ColumnTableModel, read_only_rows

SHOW_CHOICES = (("Misses and false positives", SHOW_ERRORS), ("Missed GT objects", SHOW_MISSES),
                ("False positives", SHOW_FALSE_POSITIVES), ("Everything", SHOW_ALL))
ANY = "any"


def _tint(rgb):
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(*rgb, 70))


def _combo(items, tip) -> QComboBox:
    """A combo of (text, value) items."""
    box = QComboBox()
    for text, value in items:
        box.addItem(text, value)
    box.setToolTip(tip)
    return box


class ErrorsBrowser(QDialog):
    """Rows of ``report`` (an ``ErrorsReport``) with filters; ``rowActivated(ErrorRow)``."""

    rowActivated = Signal(object)
    openReportRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Errors — mrcnn analyze")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setModal(False)
        self.resize(980, 560)
        self.report = None
        self.rows: list = []
        self._build()

    # ---- widgets -------------------------------------------------------------------------

    def _build(self) -> None:
        self.title = QLabel("No report: Train > Analyze dataset… or Train > Open analysis "
                            "report…")
        self.title.setWordWrap(True)
        open_button = QPushButton("Open report…")
        open_button.clicked.connect(self.openReportRequested)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(open_button)

        self.progress = QProgressBar()
        self.progress.setFormat("Analysing %v / %m images")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current image; the images done are "
                                      "reported")
        self.cancel_button.clicked.connect(self.cancelRequested)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        self.set_running(False)
        self._running = running

        self.show_box = _combo(SHOW_CHOICES, "Which rows to list")
        self.cause_box = _combo([("any cause", None)] + [(verdict_title(c), c)
                                                         for c in GT_VERDICTS],
                                "GT objects lost at this stage (or detected)")
        self.type_box = _combo([("any FP type", None)] + [
            (verdict_title(t, detection=True), t) for t in ("true_positive",) + FP_TYPES],
            "Detections of this type (TIDE's false-positive types)")
        self.class_box = _combo([("any class", None)], "Class of the GT object / detection")
        self.size_box = _combo([("any size", None)] + [(s, s) for s in SIZES],
                               "COCO size: small < 32², medium < 96², large")
        self.count = QLabel()
        filters = QHBoxLayout()
        for widget in (self.show_box, self.cause_box, self.type_box, self.class_box,
                       self.size_box):
            widget.currentIndexChanged.connect(self.apply_filters)
            filters.addWidget(widget)
        filters.addStretch(1)
        filters.addWidget(self.count)

        self.model = ColumnTableModel(self._columns(), [], self)
        self.view = QTableView()
        self.view.setModel(self.model)
        read_only_rows(self.view)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.view.clicked.connect(self._activate)
        self.view.activated.connect(self._activate)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(running)
        layout.addLayout(filters)
        layout.addWidget(self.view, 1)

    def _columns(self):
        return (
            Column("Image", lambda r: str(r.image_id), sort=lambda r: r.image_id, right=True,
                   tooltip=lambda r: r.reference),
            Column("AP50", lambda r: f"{r.ap50:.2f}", sort=lambda r: r.ap50, right=True),
            Column("Item", lambda r: f"{'GT' if r.kind == 'gt' else 'det'} {r.index}"),
            Column("Class", lambda r: r.class_name),
            Column("Size", lambda r: r.size),
            Column("Verdict", lambda r: verdict_title(r.verdict, r.kind == "detection"),
                   background=lambda r: _tint(verdict_colour(r.verdict, r.kind == "detection"))),
            Column("IoU", lambda r: "–" if r.iou is None else f"{r.iou:.2f}", right=True),
            Column("Score", lambda r: "" if r.score is None else f"{r.score:.2f}", right=True),
            Column("Why", lambda r: r.explanation.split(": ", 1)[-1],
                   tooltip=lambda r: r.explanation),
        )

    # ---- report and filters --------------------------------------------------------------

    def set_report(self, report) -> None:
        """Show ``report`` (an ``ErrorsReport``); filters keep their values where they can."""
        self.report = report
        self.title.setText(f"<b>{report.path}</b><br>{report.summary()}")
        current = self.class_box.currentData()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("any class", None)
        for name in report.class_names[1:]:
            self.class_box.addItem(name, name)
        index = self.class_box.findData(current)
        self.class_box.setCurrentIndex(max(index, 0))
        self.class_box.blockSignals(False)
        self.apply_filters()

    def set_filters(self, show=None, cause=ANY, fp_type=ANY, class_name=ANY, size=ANY) -> None:
        """Set the filter boxes by value (``ANY`` leaves one as it is; None means any)."""
        for box, value in ((self.cause_box, cause), (self.type_box, fp_type),
                           (self.class_box, class_name), (self.size_box, size)):
            if value != ANY:
                box.setCurrentIndex(box.findData(value))
        if show is not None:
            self.show_box.setCurrentIndex(self.show_box.findData(show))
        self.apply_filters()

    def apply_filters(self, *_) -> None:
        all_rows = self.report.rows if self.report is not None else []
        self.rows = filter_rows(all_rows, show=self.show_box.currentData(),
                                cause=self.cause_box.currentData(),
                                fp_type=self.type_box.currentData(),
                                class_name=self.class_box.currentData(),
                                size=self.size_box.currentData())
        self.model.set_rows(self.rows)
        self.count.setText(f"{len(self.rows)} of {len(all_rows)} rows")

    def _activate(self, index) -> None:
        if index.isValid():
            self.rowActivated.emit(self.rows[index.row()])

    # ---- a running analysis --------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first image is done

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
