"""The Training panel's TensorBoard controls: a start/stop button, the server's address as a
link (or why it could not start), and a Copy button; one TensorBoardProcess behind them."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QPushButton, QToolButton

from viewer.training.tensorboard import TensorBoardProcess


class TensorBoardControls(QObject):
    """Serves ``logdir()`` (the selected run's tb/ folder, or None) on a button press."""

    def __init__(self, logdir, parent=None, process=None):
        super().__init__(parent)
        self.logdir = logdir
        self.process = process or TensorBoardProcess(self)
        self.button = QPushButton("TensorBoard")
        self.button.setToolTip("Serve this run's tb/ folder with TensorBoard")
        self.button.clicked.connect(self.toggle)
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.label.setOpenExternalLinks(True)
        self.copy_button = QToolButton(text="Copy")
        self.copy_button.setToolTip("Copy TensorBoard's address")
        self.copy_button.clicked.connect(self.copy_url)
        self.copy_button.hide()
        self.process.ready.connect(self._on_ready)
        self.process.stopped.connect(self._on_stopped)

    def update_button(self) -> None:
        """Enabled with a run selected; "Stop TensorBoard" while it serves that run."""
        logdir = self.logdir()
        self.button.setEnabled(logdir is not None)
        serving = logdir is not None and self.process.is_running() and \
            self.process.logdir == logdir
        self.button.setText("Stop TensorBoard" if serving else "TensorBoard")

    def toggle(self) -> None:
        """Serve the selected run's tb/ (or stop serving it)."""
        logdir = self.logdir()
        if logdir is None:
            return
        if self.process.is_running() and self.process.logdir == logdir:
            self.process.stop()
            return
        try:
            url = self.process.start(logdir)
        except RuntimeError as error:
            self.label.setText(str(error).replace("\n", " ").replace("    ", ""))
            self.label.setToolTip(str(error))
            self.label.setWordWrap(True)
            self.copy_button.hide()
            return
        self.label.setText(f'<a href="{url}">{url}</a> (starting…)')
        self.label.setToolTip(f"TensorBoard on {logdir}")
        self.copy_button.show()
        self.update_button()

    def _on_ready(self, url: str) -> None:
        self.label.setText(f'TensorBoard: <a href="{url}">{url}</a>')

    def _on_stopped(self, reason: str) -> None:
        self.label.setText(reason.splitlines()[0] if reason else "")
        self.label.setToolTip(reason)
        self.copy_button.hide()
        self.update_button()

    def copy_url(self) -> None:
        if self.process.url:
            QGuiApplication.clipboard().setText(self.process.url)
