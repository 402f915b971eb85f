"""``mrcnn analyze`` from the viewer: a child process (like training), its progress and cancel.

``analyze_command(model_spec, dataset_spec, out_dir, limit)`` builds the command line (Qt-free);
``AnalyzeProcess`` runs it in a ``QProcess`` (TensorFlow stays out of the viewer), parses its
progress lines (``analyze [###...] 12/50 ...`` on stderr, one per image) and reports the end:
the report folder on success or after a cancel (Ctrl-C in the child writes a partial but valid
report), or the child's last error line.
"""

from __future__ import annotations

import os
import re
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from viewer.training.process import LineSplitter, child_environment

PROGRESS_LINE = re.compile(r"^analyze \[[#.]*\] (\d+)/(\d+)")
INTERRUPTED_EXIT = 130    # mrcnn.analyze_cli.EXIT_INTERRUPTED (not imported: it loads mrcnn.cli)
KILL_AFTER_MS = 15_000    # after a cancel, time for the partial report before a kill


class AnalyzeRequestError(ValueError):
    """The open model or dataset cannot be analysed (the message says what to open)."""


def analyze_command(model_spec, dataset_spec, out_dir, limit=None) -> list[str]:
    """[python, -m, mrcnn.analyze_cli, ...] analysing ``dataset_spec`` with ``model_spec``."""
    if model_spec is None or not model_spec.weights:
        raise AnalyzeRequestError("Open a model first (File > Open model…): the analysis runs "
                                  "it on every image of the dataset.")
    if dataset_spec is None:
        raise AnalyzeRequestError("Open a dataset first (File > Open dataset…): the analysis "
                                  "needs images with ground truth.")
    args = [sys.executable, "-m", "mrcnn.analyze_cli", "--weights", os.fspath(model_spec.weights)]
    if model_spec.config:
        args += ["--config", os.fspath(model_spec.config)]
    if dataset_spec.kind == "shapes":
        if dataset_spec.height != dataset_spec.width:
            raise AnalyzeRequestError(f"mrcnn analyze makes square shapes images; this dataset "
                                      f"is {dataset_spec.height}x{dataset_spec.width}")
        args += ["--dataset", "shapes", "--shapes-count", str(dataset_spec.count),
                 "--shapes-size", str(dataset_spec.height), "--seed", str(dataset_spec.seed)]
    else:
        args += ["--json", os.fspath(dataset_spec.annotations),
                 "--images", os.fspath(dataset_spec.image_dir)]
    if limit:
        args += ["--limit", str(int(limit))]
    return args + ["--out", os.fspath(out_dir), "--save-traces", "--progress-every", "1"]


class AnalyzeProcess(QObject):
    """One ``mrcnn analyze`` child; ``start(command, out_dir)``, ``cancel()``."""

    progress = Signal(int, int)          # images done, total
    line = Signal(str)                   # every output line (a log)
    finished = Signal(object, str)       # report folder (None: no report), one-line outcome

    def __init__(self, parent=None):
        super().__init__(parent)
        self.out_dir = None
        self.cancelled = False
        self.last_lines: list[str] = []
        self._split = LineSplitter()
        self._process = QProcess(self)
        self._process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self._process.readyReadStandardOutput.connect(self._read)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self, singleShot=True)
        self._kill_timer.timeout.connect(self._process.kill)

    def start(self, command: list[str], out_dir) -> None:
        self.out_dir, self.cancelled, self.last_lines = os.fspath(out_dir), False, []
        self._process.setProcessEnvironment(child_environment({}))
        self._process.start(command[0], command[1:])

    def is_running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Stop after the current image (SIGINT: the child writes a partial report)."""
        if not self.is_running():
            return
        self.cancelled = True
        pid = self._process.processId()
        if pid and hasattr(signal, "SIGINT") and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            self._process.terminate()
        self._kill_timer.start(KILL_AFTER_MS)

    def wait(self, ms: int = 30_000) -> bool:
        return self._process.waitForFinished(ms)

    def _read(self) -> None:
        for text in self._split.feed(self._process.readAllStandardOutput().data()):
            self._line(text)

    def _line(self, text: str) -> None:
        for part in text.split("\r"):  # a terminal-style bar redraws with carriage returns
            part = part.strip()
            if not part:
                continue
            self.line.emit(part)
            match = PROGRESS_LINE.match(part)
            if match:
                self.progress.emit(int(match.group(1)), int(match.group(2)))
            else:
                self.last_lines = (self.last_lines + [part])[-20:]

    def _on_finished(self, exit_code, _status) -> None:
        self._kill_timer.stop()
        for text in self._split.flush():
            self._line(text)
        report = os.path.join(self.out_dir or "", "report.json")
        has_report = os.path.isfile(report)
        if exit_code == 0 and has_report:
            self.finished.emit(self.out_dir, self.last_lines[-1] if self.last_lines else "done")
        elif has_report and (self.cancelled or exit_code == INTERRUPTED_EXIT):
            self.finished.emit(self.out_dir, "cancelled: a partial report of the images done")
        else:
            why = "cancelled" if self.cancelled else next(
                (ln for ln in reversed(self.last_lines) if "error" in ln.lower()),
                self.last_lines[-1] if self.last_lines else f"exit code {exit_code}")
            self.finished.emit(None, why)

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.finished.emit(None, f"could not start {self._process.program()}")
