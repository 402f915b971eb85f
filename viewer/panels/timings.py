"""Timings panel: how long each stage of the traced image took, and how many items it produced.

Reads ``Trace.meta["timings"]`` (seconds per stage) and ``Trace.meta["counts"]`` (items per stage;
``Trace.counts()`` when the trace carries none). A horizontal bar chart shows where the time goes;
the tables give exact milliseconds, share of the total and the counts.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from mrcnn.trace_data import ACTIVATION_PREFIX
from viewer.export import export_widget_png
from viewer.panels.kit import SessionPanel
from viewer.stages import timing_stages, total_seconds

# Stages whose "count" is an image height, not a number of items.
COUNTLESS_STAGES = ("input",)
BAR_BRUSH = (80, 140, 220)


def timing_rows(timings: dict) -> tuple[list[tuple[str, float, float]], float]:
    """([(stage, ms, percent of total)], total ms) from {trace key: seconds}: the stages named
    as the stage list names them (``viewer.stages.timing_stages``), the total apart.

    The total is ``timings["total"]`` when present, else the sum of the stages.
    """
    stages = [(name, 1000.0 * seconds) for name, seconds, _ in timing_stages(timings)]
    total = 1000.0 * total_seconds(timings) if timings else 0.0
    return [(name, ms, 100.0 * ms / total if total > 0 else 0.0) for name, ms in stages], total


def _numeric_item(text: str, value: float) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setData(Qt.UserRole, value)
    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


class TimingsPanel(SessionPanel):
    """Per-stage timings (bar chart + table with ms and %) and per-stage counts of the trace."""

    def __init__(self, session, parent=None):
        super().__init__(session, "No timings: open or trace an image to see how long each "
                                  "stage took.", parent)
        self.rows: list[tuple[str, float, float]] = []  # derived from the trace, for tests/export
        self.total_ms = 0.0
        self.set_content(self._build())
        self.follow(session.traceChanged, self._on_trace_changed, lambda: session.trace)
        self.sync()

    def _build(self) -> QWidget:
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "time (ms)")
        # Values are already milliseconds: an SI prefix would label 1500 ms as "1.5 kms".
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.6, width=[], brush=BAR_BRUSH)
        self.plot.addItem(self.bars)

        self.timing_table = self._table(("Stage", "ms", "% of total"))
        self.count_table = self._table(("Stage", "Items"))
        self.total_label = QLabel()

        tables = QSplitter(Qt.Vertical)  # the panel docks in a narrow column
        tables.addWidget(self.timing_table)
        tables.addWidget(self.count_table)
        content = QSplitter(Qt.Vertical)
        content.addWidget(self.plot)
        content.addWidget(tables)
        content.setSizes([220, 260])
        content_box = QWidget()
        content_layout = QVBoxLayout(content_box)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(content, 1)
        content_layout.addWidget(self.total_label)
        return content_box

    @staticmethod
    def _table(headers) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(list(headers))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        return table

    # ---- session -> view -----------------------------------------------------------------

    def _on_trace_changed(self, trace) -> None:
        timings = trace.timings if trace is not None else {}
        counts = {}
        if trace is not None:
            counts = {key: value for key, value in (trace.meta.get("counts") or trace.counts())
                      .items() if key not in COUNTLESS_STAGES
                      and not key.startswith(ACTIVATION_PREFIX)}
        self.rows, self.total_ms = timing_rows(timings)
        self._fill_timings()
        self._fill_counts(counts)
        self.show_content(bool(self.rows or counts))

    def _fill_timings(self) -> None:
        names = [name for name, _, _ in self.rows]
        widths = np.array([ms for _, ms, _ in self.rows], dtype=np.float64)
        # The first stage at the top: positions count down (invertY hides some tick labels).
        positions = np.arange(len(names))[::-1].astype(np.float64)
        self.bars.setOpts(x0=np.zeros(len(names)), y=positions, width=widths, height=0.6)
        axis = self.plot.getAxis("left")
        axis.setTicks([list(zip(positions.tolist(), names))])
        # The axis grows to its labels only after a first paint, which skips labels that do not
        # fit yet; size it up front so every stage name shows (and shows in exports).
        metrics = QFontMetrics(axis.style.get("tickFont") or axis.font())
        axis.setWidth(max([metrics.horizontalAdvance(name) for name in names] + [20]) + 16)
        if names:
            self.plot.setYRange(-0.5, len(names) - 0.5, padding=0.02)
            self.plot.setXRange(0, max(float(widths.max()), 1e-3), padding=0.05)
        self.plot.setTitle(f"total {self.total_ms:.1f} ms" if names else "no timings")

        table = self.timing_table
        table.setRowCount(0)
        table.setRowCount(len(self.rows) + (1 if self.rows else 0))
        for r, (name, ms, percent) in enumerate(self.rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, _numeric_item(f"{ms:.2f}", ms))
            table.setItem(r, 2, _numeric_item(f"{percent:.1f}", percent))
        if self.rows:
            bold = QFont()
            bold.setBold(True)
            total_items = (QTableWidgetItem("Total"), _numeric_item(f"{self.total_ms:.2f}",
                                                                   self.total_ms),
                           _numeric_item("100.0", 100.0))
            for c, item in enumerate(total_items):
                item.setFont(bold)
                table.setItem(len(self.rows), c, item)
        self.total_label.setText(f"{len(self.rows)} timed stages, total {self.total_ms:.1f} ms"
                                 if self.rows else "This trace carries no timings.")

    def _fill_counts(self, counts: dict) -> None:
        table = self.count_table
        table.setRowCount(0)
        table.setRowCount(len(counts))
        for r, (name, count) in enumerate(counts.items()):
            table.setItem(r, 0, QTableWidgetItem(str(name)))
            table.setItem(r, 1, _numeric_item(f"{int(count):,}", int(count)))

    def export_png(self, path):
        """Write the panel as shown to ``path`` (PNG)."""
        return export_widget_png(self, path)
