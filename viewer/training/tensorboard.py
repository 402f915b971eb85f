"""A TensorBoard server for a run's folder (``TensorBoardProcess``), found in the viewer's
environment (``find_tensorboard``); started and stopped from the Training panel."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from viewer.training.process import LineSplitter

INSTALL_TENSORBOARD = ("TensorBoard is not installed in the viewer's environment. Install it "
                       "with:\n    {python} -m pip install tensorboard\nthen press TensorBoard "
                       "again.")


def find_tensorboard() -> list[str] | None:
    """Command prefix that runs TensorBoard: the script next to this interpreter, one on PATH,
    or the importable module; None when none is installed."""
    name = "tensorboard.exe" if sys.platform == "win32" else "tensorboard"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    on_path = shutil.which("tensorboard")
    if on_path:
        return [on_path]
    if importlib.util.find_spec("tensorboard") is not None:
        return [sys.executable, "-m", "tensorboard.main"]
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class TensorBoardProcess(QObject):
    """One TensorBoard server (a QProcess) on a free localhost port for one log directory."""

    ready = Signal(str)            # its address, once it says it is serving
    stopped = Signal(str)          # why it is no longer running ("" when stopped on purpose)
    outputLine = Signal(str)

    HOST = "127.0.0.1"

    def __init__(self, parent=None, finder=find_tensorboard):
        super().__init__(parent)
        self.finder = finder
        self.logdir = ""
        self.url = ""
        self._stopping = False
        self._lines = LineSplitter()
        self._tail: deque[str] = deque(maxlen=20)
        self._process = QProcess(self)
        self._process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self._process.readyReadStandardOutput.connect(self._read)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)

    def is_running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def start(self, logdir) -> str:
        """Serve ``logdir``; returns the address. RuntimeError (with the install command) when
        TensorBoard is not installed."""
        command = self.finder()
        if command is None:
            raise RuntimeError(INSTALL_TENSORBOARD.format(python=sys.executable))
        self.stop()
        port = free_port(self.HOST)
        self.logdir = str(logdir)
        self.url = f"http://{self.HOST}:{port}/"
        self._stopping = False
        self._tail.clear()
        self._process.start(command[0], [*command[1:], "--logdir", self.logdir, "--host",
                                         self.HOST, "--port", str(port)])
        return self.url

    def stop(self, wait_ms: int = 3000) -> None:
        if not self.is_running():
            return
        self._stopping = True
        self._process.terminate()
        if not self._process.waitForFinished(wait_ms):
            self._process.kill()
            self._process.waitForFinished(1000)

    def _read(self) -> None:
        for line in self._lines.feed(self._process.readAllStandardOutput().data()):
            self._tail.append(line)
            self.outputLine.emit(line)
            # "TensorBoard 2.x at http://127.0.0.1:PORT/ (Press CTRL+C to quit)"; other lines
            # (warnings) carry other addresses.
            if self.url and self.url.rstrip("/") in line:
                self.ready.emit(self.url)

    def _on_finished(self, *_):
        self._read()
        reason = "" if self._stopping else ("TensorBoard exited:\n" + "\n".join(self._tail))
        self.url = ""
        self.stopped.emit(reason)

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.url = ""
            self.stopped.emit(f"could not start TensorBoard: {self._process.errorString()}")
