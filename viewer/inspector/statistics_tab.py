"""The "Statistics" tab: instances per class, instances per image and image sizes of the whole
dataset, computed on a worker thread (``StatisticsWorker``) with a progress bar.

The worker fills one ``DatasetStatistics`` in place; the GUI redraws from it every few tenths
of a second while it runs (a row read mid-write only makes that interim picture a row behind)
and once more when it is done, so the final numbers are exact.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QProgressBar, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from viewer.inspector.dataset_stats import DatasetStatistics, compute_statistics
from viewer.inspector.graphics import TEXT_COLOUR, instance_colour, make_view

PROGRESS_INTERVAL_S = 0.25
SIZE_BARS = 12  # distinct image sizes shown as bars; more become a histogram of the long side
HISTOGRAM_BINS = 20


class StatisticsWorker(QThread):
    """Counts every image of ``data`` into ``stats``; ``advanced(done, total)`` reports progress."""

    advanced = Signal(int, int)

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        self.stats = DatasetStatistics.empty(len(data), data.class_names)
        self._stop = False
        self._last = 0.0

    def run(self) -> None:
        compute_statistics(self.data.dataset, self.data.class_names, stats=self.stats,
                           progress=self._progress, should_stop=lambda: self._stop)
        self.advanced.emit(self.stats.done, self.stats.total)

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self.advanced.emit(done, total)

    def stop(self) -> None:
        """Ask the loop to end after the current image (then ``wait()``)."""
        self._stop = True


class StatisticsTab(QWidget):
    """Bar charts and a table of the dataset's counts; follows a StatisticsWorker."""

    title = "Statistics"

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        self.stats: DatasetStatistics | None = None
        self.progress = QProgressBar()
        self.progress.setFormat("counting images: %v / %m")
        self.view = make_view()
        self.heading = self.view.addLabel("", row=0, col=0, colspan=3, color=TEXT_COLOUR)
        self.class_plot = self._plot(1, 0, "instances per class", "instances")
        self.count_plot = self._plot(1, 1, "instances per image", "images")
        self.size_plot = self._plot(1, 2, "image sizes", "images")
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["class", "instances", "images", "% of instances"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setContentsMargins(6, 2, 6, 2)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        lower = QHBoxLayout()
        lower.addWidget(self.table, 3)
        lower.addWidget(self.summary, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.progress)
        layout.addWidget(self.view, 3)
        layout.addLayout(lower, 1)

    def _plot(self, row, col, title, left) -> pg.PlotItem:
        plot = self.view.addPlot(row=row, col=col, title=title)
        plot.setLabel("left", left)
        plot.showGrid(y=True, alpha=0.25)
        plot.setMouseEnabled(x=True, y=False)
        plot.setMenuEnabled(False)
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)  # "(x0.001)" on a 1-bar chart
        return plot

    def export_widget(self) -> QWidget:
        return self  # charts and the table together

    def export_name(self) -> str:
        return "statistics"

    # ---- drawing -----------------------------------------------------------------------

    def show_statistics(self, stats: DatasetStatistics) -> None:
        """Draw ``stats`` (partial while counting: ``done`` < ``total``)."""
        self.stats = stats
        self.progress.setRange(0, max(stats.total, 1))
        self.progress.setValue(stats.done)
        self.progress.setVisible(not stats.complete)
        self._draw_classes(stats)
        self._draw_counts(stats)
        self._draw_sizes(stats)
        self._fill_table(stats)
        self._fill_summary(stats)
        state = "" if stats.complete else f" (counting: {stats.done} of {stats.total} images)"
        self.heading.setText(f"{len(self.data)} images, {len(self.data.class_names) - 1} classes"
                             + state)

    def _set_bars(self, plot, key, x, heights, brushes, width=0.8) -> None:
        bar = self.bars.get(key)
        if bar is None:
            bar = pg.BarGraphItem(x=[0], height=[0], width=width)
            plot.addItem(bar)
            self.bars[key] = bar
        x = np.asarray(x, float)
        # One pen for all bars: pyqtgraph 0.14 fails on an empty per-bar pen list.
        bar.setOpts(x=x, height=np.asarray(heights, float), width=width, pen=pg.mkPen(None),
                    brushes=list(brushes) if len(x) else None)
        plot.enableAutoRange(axis="y")
        if len(x):
            # At least three bars' room, so one bar never fills the whole plot.
            low, high = float(x.min()) - width, float(x.max()) + width
            room = max(0.0, 3 * width - (high - low)) / 2
            plot.setXRange(low - room, high + room, padding=0.02)

    def _draw_classes(self, stats) -> None:
        per_class = stats.per_class()[1:]
        x = np.arange(1, len(per_class) + 1)
        brushes = [pg.mkBrush(*instance_colour(i)) for i in x]
        self._set_bars(self.class_plot, "classes", x, per_class, brushes)
        # Names under the bars while they fit; many classes keep numeric ticks (names in the table).
        axis = self.class_plot.getAxis("bottom")
        if len(x) <= 20:
            axis.setTicks([[(float(i), self.data.class_names[i]) for i in x]])
        else:
            axis.setTicks(None)

    def _draw_counts(self, stats) -> None:
        seen = stats.heights >= 0
        counts = stats.instances_per_image()[seen]
        top = int(counts.max()) if counts.size else 0
        histogram = np.bincount(counts, minlength=top + 1) if counts.size else np.zeros(1)
        self._set_bars(self.count_plot, "counts", np.arange(len(histogram)), histogram,
                       [pg.mkBrush(120, 170, 255)] * len(histogram))
        self.count_plot.setLabel("bottom", "instances in the image")

    def _draw_sizes(self, stats) -> None:
        sizes = stats.size_counts()
        axis = self.size_plot.getAxis("bottom")
        if len(sizes) <= SIZE_BARS:
            x = np.arange(len(sizes))
            self._set_bars(self.size_plot, "sizes", x, [n for _, n in sizes],
                           [pg.mkBrush(255, 190, 90)] * len(sizes))
            axis.setTicks([[(float(i), f"{w}×{h}") for i, ((h, w), _) in zip(x, sizes)]])
            self.size_plot.setLabel("bottom", "width × height")
            return
        seen = stats.heights >= 0
        longest = np.maximum(stats.heights[seen], stats.widths[seen])
        histogram, edges = np.histogram(longest, bins=HISTOGRAM_BINS)
        centres = 0.5 * (edges[:-1] + edges[1:])
        self._set_bars(self.size_plot, "sizes", centres, histogram,
                       [pg.mkBrush(255, 190, 90)] * len(histogram),
                       width=float(edges[1] - edges[0]))
        axis.setTicks(None)
        self.size_plot.setLabel("bottom", "longest side (pixels)")

    def _fill_table(self, stats) -> None:
        per_class, images = stats.per_class(), stats.images_with_class()
        total = max(int(per_class[1:].sum()), 1)
        self.table.setRowCount(len(per_class) - 1)
        for row, class_id in enumerate(range(1, len(per_class))):
            values = [self.data.class_names[class_id], str(int(per_class[class_id])),
                      str(int(images[class_id])), f"{100.0 * per_class[class_id] / total:.1f}"]
            for column, value in enumerate(values):
                item = self.table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, column, item)
                item.setText(value)
        self.table.resizeColumnsToContents()

    def _fill_summary(self, stats) -> None:
        s = stats.summary()
        lines = [f"<b>{s['images']}</b> of {stats.total} images counted",
                 f"<b>{s['instances']}</b> instances, {s['crowd']} crowd regions",
                 f"instances per image: mean {s['mean_per_image']:.2f}, max {s['max_per_image']}",
                 f"images without instances: {s['empty_images']}"]
        if s["height_range"] is not None:
            (h0, h1), (w0, w1) = s["height_range"], s["width_range"]
            lines.append(f"heights {h0}..{h1} px, widths {w0}..{w1} px")
        if s["errors"]:
            first = next(iter(stats.errors.items()))
            lines.append(f"<span style='color:#ff6060'>{s['errors']} images failed to load, "
                         f"e.g. row {first[0]}: {first[1]}</span>")
        self.summary.setText("<br>".join(lines))
