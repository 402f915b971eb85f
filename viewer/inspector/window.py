"""DatasetInspector: a window to browse a dataset the way the network's training sees it.

Left: the image list (row, name, size, instances), filterable by class. Centre: tabs Image,
Molded, Augmentation, Anchors (per image) and Statistics (whole dataset, counted on a worker
thread). The toolbar exports the visible tab as PNG. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QCoreApplication, QSortFilterProxyModel, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHeaderView, QLabel,
                               QMainWindow, QMessageBox, QSplitter, QTableView, QTabWidget,
                               QVBoxLayout, QWidget)

from viewer.inspector.anchors_tab import AnchorsTab
from viewer.inspector.augment_tab import AugmentationTab
from viewer.inspector.data import InspectorData
from viewer.inspector.statistics_tab import StatisticsTab, StatisticsWorker
from viewer.inspector.tabs import ImageTab, MoldedTab
from viewer.panels.kit import Column, ColumnTableModel, read_only_rows

ALL_CLASSES = "All classes"
COLUMNS = ("#", "image", "size", "instances")


def image_list_columns(data, stats) -> tuple[Column, ...]:
    """The image list's columns over dataset rows: sizes and counts from ``stats()`` (the
    DatasetStatistics being counted, or None) once it has counted a row, else from image_info."""
    def counted(row):
        current = stats()
        return current if current is not None and current.heights[row] >= 0 else None

    def size(row):
        known = counted(row)
        size = ((int(known.heights[row]), int(known.widths[row])) if known is not None
                else data.stored_size(row))
        return f"{size[1]}×{size[0]}" if size else "…"

    def instances(row):
        known = counted(row)
        if known is not None:
            crowd = int(known.crowd[row])
            count = int(known.instances[row, 1:].sum())
            return f"{count} +{crowd} crowd" if crowd else str(count)
        count = data.annotated_count(row)
        return "…" if count is None else str(count)

    def path(row):
        info = data.dataset.image_info[data.image_id(row)]
        return str(info.get("path") or "generated image (no file)")

    return (Column(COLUMNS[0], str, right=True), Column(COLUMNS[1], data.name, tooltip=path),
            Column(COLUMNS[2], size, right=True), Column(COLUMNS[3], instances, right=True))


class ClassFilter(QSortFilterProxyModel):
    """Keeps the rows whose image holds a chosen class (all rows when none is chosen)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows = None  # set of source rows to keep, or None for all

    def set_rows(self, rows) -> None:
        # Qt 6.10 replaced invalidateRowsFilter() by begin/endFilterChange(); 6.6+ is supported.
        changing = hasattr(self, "beginFilterChange")
        if changing:
            self.beginFilterChange()
        self.rows = None if rows is None else {int(r) for r in rows}
        if changing:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row, source_parent):
        return self.rows is None or source_row in self.rows


class DatasetInspector(QMainWindow):
    """Browse ``dataset`` (a viewer LoadedDataset or a prepared mrcnn.data Dataset) with ``config``
    (default: ``viewer.inspector.data.default_config``): GT, molded input, augmentation, anchor
    matching and whole-dataset statistics."""

    def __init__(self, dataset, config=None, parent=None):
        super().__init__(parent)
        self.data = InspectorData(dataset, config)
        if parent is not None:
            self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"Dataset inspector — {self._describe(dataset)}")
        self.resize(1400, 900)
        self._build_list()
        self.tab_widget = QTabWidget()
        self.tabs = {tab.title: tab for tab in (ImageTab(self.data), MoldedTab(self.data),
                                                AugmentationTab(self.data), AnchorsTab(self.data))}
        self.statistics_tab = StatisticsTab(self.data)
        for title, tab in list(self.tabs.items()) + [("Statistics", self.statistics_tab)]:
            self.tab_widget.addTab(tab, title)
        self.tabs["Statistics"] = self.statistics_tab
        self.tab_widget.currentChanged.connect(self._on_tab)
        splitter = QSplitter()
        splitter.addWidget(self.list_panel)
        splitter.addWidget(self.tab_widget)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([320, 1080])
        self.setCentralWidget(splitter)
        self._build_toolbar()
        self.worker = StatisticsWorker(self.data, self)
        self.worker.advanced.connect(self._on_statistics)
        # A QThread destroyed while running aborts the process: stop it before the app's
        # final clean-up deletes this window with its parent.
        QCoreApplication.instance().aboutToQuit.connect(self.stop_statistics)
        self.worker.start()
        if len(self.data):
            self.select_row(0)
        self.statusBar().showMessage(f"{len(self.data)} images; counting statistics…")

    @staticmethod
    def _describe(dataset) -> str:
        spec = getattr(dataset, "spec", None)
        if spec is not None and hasattr(spec, "describe"):
            return spec.describe()
        return type(dataset).__name__

    # ---- widgets -------------------------------------------------------------------------

    def _build_list(self):
        self.class_filter = QComboBox()
        self.class_filter.addItems([ALL_CLASSES] + self.data.class_names[1:])
        self.class_filter.setToolTip("Show only images holding an instance of this class")
        self.class_filter.currentIndexChanged.connect(self._apply_filter)
        self._list_stats = None  # what the list's size / instance columns show, once counted
        self.list_model = ColumnTableModel(image_list_columns(self.data, lambda: self._list_stats),
                                           range(len(self.data)), self)
        self.proxy = ClassFilter(self)
        self.proxy.setSourceModel(self.list_model)
        self.list = QTableView()
        self.list.setModel(self.proxy)
        read_only_rows(self.list)
        header = self.list.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.list.selectionModel().currentRowChanged.connect(self._on_current)
        self.list_count = QLabel()
        self.list_panel = QWidget()
        layout = QVBoxLayout(self.list_panel)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.class_filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.list_count)
        self._update_count()

    def _build_toolbar(self):
        bar = self.addToolBar("Inspector")
        bar.setObjectName("inspector-toolbar")
        self.export_action = QAction("Export view as PNG…", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.setToolTip("Save the visible tab as a PNG image")
        self.export_action.triggered.connect(lambda: self.export_png())
        self.previous_action = QAction("Previous image", self)
        self.previous_action.setShortcut(QKeySequence(Qt.Key.Key_PageUp))
        self.previous_action.triggered.connect(lambda: self._step(-1))
        self.next_action = QAction("Next image", self)
        self.next_action.setShortcut(QKeySequence(Qt.Key.Key_PageDown))
        self.next_action.triggered.connect(lambda: self._step(1))
        for action in (self.export_action, self.previous_action, self.next_action):
            bar.addAction(action)

    # ---- rows ----------------------------------------------------------------------------

    @property
    def current_row(self) -> int | None:
        return self.tabs["Image"].row

    def select_row(self, row: int) -> None:
        """Select dataset row ``row`` in the list (clearing a filter that hides it)."""
        index = self.proxy.mapFromSource(self.list_model.index(row, 0))
        if not index.isValid():
            self.class_filter.setCurrentIndex(0)
            index = self.proxy.mapFromSource(self.list_model.index(row, 0))
        self.list.setCurrentIndex(index)
        self.list.scrollTo(index)

    def _step(self, delta: int) -> None:
        current = self.list.currentIndex()
        row = (current.row() if current.isValid() else -1) + delta
        if 0 <= row < self.proxy.rowCount():
            self.list.setCurrentIndex(self.proxy.index(row, 0))

    def _on_current(self, current, _previous=None) -> None:
        if not current.isValid():
            return
        row = self.proxy.mapToSource(current).row()
        for tab in self.tabs.values():
            if hasattr(tab, "set_row"):
                tab.set_row(row)
        self._refresh_current()

    def show_tab(self, title: str):
        """Raise tab ``title`` (drawing it if needed); returns the tab."""
        tab = self.tabs[title]
        self.tab_widget.setCurrentWidget(tab)
        self._refresh_current()
        return tab

    def _on_tab(self, _index) -> None:
        self._refresh_current()

    def _refresh_current(self) -> None:
        tab = self.tab_widget.currentWidget()
        if getattr(tab, "stale", False):
            tab.refresh()

    # ---- statistics and filter -----------------------------------------------------------

    @property
    def statistics(self):
        """The DatasetStatistics being counted (``complete`` when done)."""
        return self.worker.stats

    def _on_statistics(self, done: int, total: int) -> None:
        stats = self.worker.stats
        self._list_stats = stats
        self.list_model.refresh_columns(2, 3)
        self.statistics_tab.show_statistics(stats)
        if self.class_filter.currentIndex() > 0:
            self._apply_filter()
        if stats.complete:
            errors = f", {len(stats.errors)} failed to load" if stats.errors else ""
            self.statusBar().showMessage(f"{total} images counted{errors}.", 8000)

    def _apply_filter(self, *_) -> None:
        class_id = self.class_filter.currentIndex()
        current = self.current_row
        self.proxy.set_rows(None if class_id == 0 else self.statistics.rows_with_class(class_id))
        self._update_count()
        if current is not None:
            index = self.proxy.mapFromSource(self.list_model.index(current, 0))
            if index.isValid():
                self.list.setCurrentIndex(index)

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), len(self.data)
        text = f"{shown} of {total} images"
        stats = getattr(getattr(self, "worker", None), "stats", None)
        if self.class_filter.currentIndex() > 0 and stats is not None and not stats.complete:
            text += f" (filtering the {stats.done} counted so far)"
        self.list_count.setText(text)

    # ---- export --------------------------------------------------------------------------

    def export_png(self, path=None):
        """Write the visible tab as PNG to ``path`` (asks when None); returns the path or None."""
        from viewer.export import export_widget_png

        tab = self.tab_widget.currentWidget()
        if path is None:
            row = self.current_row
            stem = f"{self.data.name(row) if row is not None else 'dataset'}-{tab.export_name()}"
            path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG",
                                                  f"{os.path.splitext(stem)[0]}.png", "PNG (*.png)")
            if not path:
                return None
        try:
            written = export_widget_png(tab.export_widget(), path)
        except (OSError, ValueError) as error:
            QMessageBox.critical(self, "Export failed", f"{error}\n\nWhat to do: choose a folder "
                                                        "you can write to, with free space.")
            return None
        self.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    # ---- closing -------------------------------------------------------------------------

    def stop_statistics(self, timeout_ms: int = 10000) -> None:
        """Stop the statistics worker and wait for it (the window can then be destroyed)."""
        self.worker.stop()
        self.worker.wait(timeout_ms)

    def closeEvent(self, event):
        self.stop_statistics()
        super().closeEvent(event)
