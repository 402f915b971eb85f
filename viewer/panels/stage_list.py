"""Stage stepper: the viewer stages with item counts and time per stage; keyboard stepping.

Up/Down, PageUp/PageDown and Left/Right move one stage (``Session.step_stage``), Home/End jump to
the first/last available stage. Stages the trace cannot show are listed greyed out, with a
tooltip saying which trace data they need.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QLabel, QListWidget, QListWidgetItem,
                               QVBoxLayout, QWidget)

from viewer.stages import EXTRA_TIMINGS, VIEW_STAGES, stage_seconds, total_seconds

_BACK_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_PageUp, Qt.Key.Key_Left)
_FORWARD_KEYS = (Qt.Key.Key_Down, Qt.Key.Key_PageDown, Qt.Key.Key_Right)


def stage_label(stage, trace) -> str:
    """'Title — count · ms' for the list (count and time only where the trace has them)."""
    parts = [stage.title]
    if trace is not None:
        counts = trace.meta.get("counts") or trace.counts()
        if stage.count_key in counts:
            parts.append(f"{counts[stage.count_key]:,}")
        seconds = stage_seconds(stage.key, trace.meta.get("timings") or {})
        if seconds is not None:
            parts.append(f"{seconds * 1000:.0f} ms")
    return "  ·  ".join(parts)


def total_label(trace) -> str:
    """'Total 1,839 ms (50 ms of it GT targets)' under the list; "" without timings."""
    timings = (trace.meta.get("timings") or {}) if trace is not None else {}
    if not timings:
        return ""
    text = f"Total {total_seconds(timings) * 1000:,.0f} ms"
    extra = [f"{float(timings[k]) * 1000:,.0f} ms of it {name}" for k, name in
             EXTRA_TIMINGS.items() if timings.get(k) is not None]
    return text + (f" ({'; '.join(extra)})" if extra else "")


class _StageListWidget(QListWidget):
    """A list whose navigation keys step the session instead of moving the current row."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session

    def keyPressEvent(self, event):
        key = event.key()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            event.ignore()  # Ctrl+Left/Right belong to the window (previous/next image)
            return
        if key in _BACK_KEYS:
            self.session.step_stage(-1)
        elif key in _FORWARD_KEYS:
            self.session.step_stage(1)
        elif key == Qt.Key.Key_Home:
            self.session.step_stage(-len(VIEW_STAGES))
        elif key == Qt.Key.Key_End:
            self.session.step_stage(len(VIEW_STAGES))
        else:
            super().keyPressEvent(event)
            return
        event.accept()


class StageListPanel(QWidget):
    """List of the ten viewer stages; follows ``Session.stage``, clicking sets it."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.list = _StageListWidget(session)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAlternatingRowColors(True)
        self.list.setMinimumWidth(200)
        for stage in VIEW_STAGES:
            item = QListWidgetItem(stage.title)
            item.setData(Qt.ItemDataRole.UserRole, stage.key)
            self.list.addItem(item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        # The whole pass, apart from the stages (it is no stage's time).
        self.total = QLabel()
        self.total.setContentsMargins(6, 2, 6, 2)
        self.total.setWordWrap(True)
        self.total.setToolTip("Time of the whole traced pass; the Timings tab splits it")
        layout.addWidget(self.total)
        self.list.currentItemChanged.connect(self._on_current)
        session.traceChanged.connect(self._on_trace)
        session.stageChanged.connect(self._on_stage)
        self._on_trace(session.trace)

    def setFocus(self, *args):  # focus goes to the list, where the keys are handled
        self.list.setFocus(*args)

    def item_for(self, key: str) -> QListWidgetItem:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                return item
        raise KeyError(key)

    def _on_trace(self, trace):
        available = set(self.session.stage_keys())
        for stage in VIEW_STAGES:
            item = self.item_for(stage.key)
            item.setText(stage_label(stage, trace))
            enabled = stage.key in available
            flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled if enabled \
                else Qt.ItemFlag.NoItemFlags
            item.setFlags(flags)
            tip = stage.tooltip
            if not enabled:
                tip += "\n\nNot in this trace: needs " + ", ".join(stage.needs) + "."
            item.setToolTip(tip)
        self.total.setText(total_label(trace))
        self.total.setVisible(bool(self.total.text()))
        self._on_stage(self.session.stage)

    def _on_stage(self, key: str):
        item = self.item_for(key)
        if self.list.currentItem() is not item:
            self.list.blockSignals(True)
            self.list.setCurrentItem(item)
            self.list.blockSignals(False)
        self.list.scrollToItem(item)

    def _on_current(self, item, _previous=None):
        if item is not None and item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.session.set_stage(item.data(Qt.ItemDataRole.UserRole))
