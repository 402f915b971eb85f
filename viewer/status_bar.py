"""What the main window and the comparison window share: a status bar (a message, an
indeterminate busy bar and a Cancel button for the job in flight) and a screen-fitted size."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QProgressBar, QPushButton

# Short names of the trace meta's "precision" (the model's COMPUTE_DTYPE).
PRECISION_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def screen_fitted_size(window, size) -> tuple[int, int]:
    """``size`` (width, height), shrunk to 94% of the screen's free area (1280x800 laptops)."""
    width, height = size
    screen = window.screen() or QApplication.primaryScreen()
    if screen is not None:
        free = screen.availableGeometry()
        width = min(width, int(free.width() * 0.94))
        height = min(height, int(free.height() * 0.94))
    return width, height


def build_busy_status_bar(window, cancel, cancel_tip: str):
    """Fill ``window``'s status bar; returns (message label, busy bar, cancel button)."""
    bar = window.statusBar()
    label = QLabel()
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    busy = QProgressBar()
    busy.setRange(0, 0)  # indeterminate: the steps have no known length
    busy.setMaximumWidth(140)
    busy.setMaximumHeight(16)
    button = QPushButton("Cancel")
    button.setToolTip(cancel_tip)
    button.clicked.connect(cancel)
    bar.addWidget(label, 1)
    bar.addPermanentWidget(busy)
    bar.addPermanentWidget(button)
    return label, busy, button


def add_precision_label(window, session) -> QLabel:
    """A permanent status-bar label with the precision of the shown trace (from its meta:
    traces saved before precisions existed are float32); empty without a trace."""
    label = QLabel()
    label.setToolTip("Compute precision of the model that made this trace "
                     "(File > Open model > Precision)")

    def show(trace):
        if trace is None:
            label.setText("")
            return
        precision = trace.meta.get("precision", "float32")
        label.setText(f"Precision: {PRECISION_NAMES.get(precision, precision)}")

    session.traceChanged.connect(show)
    window.statusBar().insertPermanentWidget(0, label)
    return label
