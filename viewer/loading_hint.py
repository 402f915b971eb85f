"""The canvas's empty-view hint while something loads: "Loading…" and the step under way (the
status line: "Loading TensorFlow…", "Building model…"), not "Open an image and a model" - which
told a user waiting for the demo model to open something that was already opening."""

from __future__ import annotations

from PySide6.QtCore import QObject

LOADING_TITLE = "Loading…"


class LoadingHint(QObject):
    """Keeps ``label`` (the canvas's empty-view hint) saying what loads while ``session`` is busy
    and has no trace to show; its own text (what to open) otherwise."""

    def __init__(self, session, label, parent=None):
        super().__init__(parent)
        self.session = session
        self.label = label
        self.idle_text = label.text()
        self.busy = False
        self.step = ""
        session.busyChanged.connect(self._on_busy)
        session.statusChanged.connect(self._on_status)
        session.traceChanged.connect(lambda _trace: self._update())

    def _on_busy(self, busy: bool) -> None:
        self.busy = bool(busy)
        self._update()

    def _on_status(self, text: str) -> None:
        self.step = text
        self._update()

    def loading(self) -> bool:
        return self.busy and self.session.trace is None

    def _update(self) -> None:
        if self.loading():
            step = self.step if self.step.endswith("…") else ""
            self.label.setText(f"{LOADING_TITLE}\n{step}" if step else LOADING_TITLE)
        else:
            self.label.setText(self.idle_text)
