"""The Training panel's log: the child's stderr without TensorFlow's start-up chatter, with a
"show all" switch that brings every line back.

A training process's stderr is mostly TensorFlow and Keras talking about themselves (absl /
glog lines such as ``I0000 00:00:... port.cc:153] oneDNN custom operations are on``, CPU
feature notes, Python warnings from inside keras). ``LogFilter`` recognises those; the run's own
log lines (``mrcnn.*``), the viewer's notes and tracebacks always stay. The full log is kept in
the run record either way, so switching "show all" on re-draws it whole.
"""

from __future__ import annotations

import re
from collections import deque

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy,
                               QVBoxLayout, QWidget)

KEPT_LINES = 5000  # as many as a run record keeps
# absl / glog lines of TensorFlow's C++ side: "I0000 00:00:1796.2003   14700 port.cc:153] ..."
# (I, W and E; an F line is fatal and stays).
GLOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] ")
NOISE_PREFIXES = (
    "WARNING: All log messages before absl::InitializeLog()",
    "To enable the following instructions:",  # the second line of cpu_feature_guard's note
    "WARNING:tensorflow:", "WARNING:absl:", "INFO:tensorflow:",
)
# Python warnings raised inside the libraries (logged by captureWarnings or printed raw).
LIBRARY_WARNING = re.compile(
    r"(py\.warnings WARNING: )?.*/(site-packages|dist-packages)/(tensorflow|keras|tf_keras|"
    r"absl|h5py|numpy|google)/.*:\d+: \w*Warning: ")


class LogFilter:
    """Tells TensorFlow / Keras noise from the run's own lines, one line at a time.

    Stateful: the indented lines following a noisy line (a warning's source line) are noise too,
    while a traceback's indented lines follow a kept ``Traceback`` line and stay.
    """

    def __init__(self):
        self._in_noise = False

    def is_noise(self, line: str) -> bool:
        if line[:1].isspace() and line.strip():
            return self._in_noise  # a continuation line: whatever its head was
        self._in_noise = bool(GLOG_LINE.match(line) or line.startswith(NOISE_PREFIXES)
                              or LIBRARY_WARNING.match(line))
        return self._in_noise


def filtered(lines) -> list[str]:
    """``lines`` without the noise (a fresh LogFilter)."""
    log_filter = LogFilter()
    return [line for line in lines if not log_filter.is_noise(line)]


class TrainingLog(QWidget):
    """Title, "show all" switch and the log text; ``set_lines`` / ``append`` feed it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.view.setMaximumBlockCount(5000)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlaceholderText("The training process's log (stderr) appears here.")
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.show_all = QCheckBox("show all")
        self.show_all.setToolTip("Also show TensorFlow's and Keras' own messages (start-up "
                                 "notes, library warnings), hidden by default")
        self.show_all.toggled.connect(lambda *_: self.set_lines(self._lines, self._placeholder))
        self.title_label = QLabel("<b>Log</b>")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title_label, 1)
        top.addWidget(self.show_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)
        self._placeholder = ""
        self._filter = LogFilter()
        self.hidden_count = 0

    def set_lines(self, lines, placeholder: str = "") -> None:
        """Show ``lines`` (the whole log so far), or ``placeholder`` when there are none."""
        self._lines = deque(lines, maxlen=KEPT_LINES)
        self._placeholder = placeholder
        self._filter = LogFilter()
        shown = self._lines if self.show_all.isChecked() else \
            [line for line in self._lines if not self._filter.is_noise(line)]
        self.hidden_count = len(self._lines) - len(shown)
        self.view.setPlainText("\n".join(shown) if self._lines else placeholder)
        self._update_title()
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def append(self, line: str) -> None:
        """One new line (kept; shown unless it is noise and "show all" is off)."""
        self._lines.append(line)
        if not self.show_all.isChecked() and self._filter.is_noise(line):
            self.hidden_count += 1
            self._update_title()
            return
        bar = self.view.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 2  # keep the tail in view unless scrolled up
        self.view.appendPlainText(line)
        if following:
            bar.setValue(bar.maximum())

    def _update_title(self) -> None:
        hidden = self.hidden_count if not self.show_all.isChecked() else 0
        self.title_label.setText(f"<b>Log</b> <span style='color: gray'>({hidden} TensorFlow "
                                 "lines hidden)</span>" if hidden else "<b>Log</b>")
