"""One model's half of the compare window: its Session, canvas and a title that tells its state.

A ``CompareSide`` is waiting, tracing, done, failed or cancelled; while it has no trace, the
canvas's empty-view hint says why (red with the error when it failed). No TensorFlow here.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from viewer.panels.canvas import CanvasPanel
from viewer.session import Session
from viewer.workers import ModelSpec

DEFAULT_STAGE = "composite"
# The canvas's empty-view hint, red while it explains a failure (no banner: it would make this
# view shorter than the other, and the linked views would no longer line up).
ERROR_HINT_STYLE = "background: rgb(30, 30, 34); color: rgb(255, 150, 150);"


class CompareSide:
    """One model's half of the window: its Session, canvas and title (state or failure)."""

    def __init__(self, name: str, label: str, spec: ModelSpec, parent):
        self.name, self.label, self.spec = name, label, spec
        self.trace = None
        self.error: tuple[str, str] | None = None   # (title, message) when this side failed
        self.state = "waiting"                      # waiting, tracing, done, failed, cancelled
        self.session = Session(parent)
        self.session.set_stage(DEFAULT_STAGE)
        self.canvas = CanvasPanel(self.session)
        self._hint_style = self.canvas.empty_hint.styleSheet()
        self.title = QLabel()
        self.title.setContentsMargins(6, 2, 6, 2)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, 1)
        self.set_state("waiting")

    @property
    def heading(self) -> str:
        return f"{self.name} · {self.label}"

    def set_state(self, state: str, text: str = "") -> None:
        """Show ``state`` in the title and, while there is no trace, in the canvas."""
        self.state = state
        failed = state == "failed" and self.error is not None
        detail = {"waiting": "waiting for A" if self.name == "B" else "waiting",
                  "tracing": text or "tracing…", "cancelled": "cancelled",
                  "failed": f"failed: {self.error[0]}" if failed else "failed",
                  "done": self.summary()}[state]
        colour = "rgb(220, 60, 60)" if failed else "gray"
        self.title.setText(f"<b>{self.name}</b> · {self.label} — {self.spec.describe()}"
                           f" <span style='color: {colour}'>({html.escape(detail)})</span>")
        self.title.setToolTip(self.error[1] if failed else "")
        if state != "done":
            hint = (f"{self.name} ({self.label}) failed: {self.error[0]}\n\n{self.error[1]}"
                    if failed else f"{self.heading}\n\n{detail[:1].upper()}{detail[1:]}")
            self.canvas.empty_hint.setText(hint)
            self.canvas.empty_hint.setStyleSheet(ERROR_HINT_STYLE if failed else self._hint_style)

    def fail(self, title: str, message: str) -> None:
        """Show why this side has no trace (title and message as from describe_error)."""
        self.error = (title, message)
        self.set_state("failed")

    def show_trace(self, trace, image_path) -> None:
        self.trace = trace
        self.session.set_trace(trace, image_path=image_path)
        self.set_state("done")

    def summary(self) -> str:
        """'N detections, T ms' for the title and status bar, or 'no trace'."""
        if self.trace is None:
            return "no trace"
        count = len(self.trace["detections"]["scores"]) if "detections" in self.trace else 0
        total = self.trace.meta.get("timings", {}).get("total")
        return f"{count} detections" + (f", {total * 1000:.0f} ms" if total else "")
