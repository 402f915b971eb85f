"""Weights panel: a sortable, filterable table of weight statistics and the selected histogram.

Statistics come from ``Session.weight_stats`` (plain dicts from ``mrcnn.stats``' ``to_dict``);
the panel only formats them. Dead and exploding weights are coloured, carry an icon, and explain
the flag in their tooltip, so a broken checkpoint stands out in a list of hundreds of tensors.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QSplitter, QStyle, QTableView, QVBoxLayout, QWidget)

from mrcnn.stats import DEAD_THRESHOLD, EXPLODING_THRESHOLD  # numpy-only; for the tooltips
from viewer.export import export_widget_png
from viewer.panels.kit import SORT_ROLE, Column, ColumnTableModel, SessionPanel
from viewer.panels.table_fit import ColumnFitter

COLUMNS = ("Layer", "Weight", "Shape", "Mean", "Std", "Min", "Max", "Zeros %", "Flags")
# Which columns a narrow dock keeps first (viewer.panels.table_fit); the others hide, and the
# selected weight's line below the table shows every value.
COLUMN_PRIORITY = tuple(COLUMNS.index(name) for name in (
    "Layer", "Weight", "Mean", "Std", "Max", "Flags", "Min", "Shape", "Zeros %"))
LAYER_MIN_WIDTH = 115  # pixels: "res2a_branch2a" whole; a further column waits for more room
DEAD_COLOUR = QColor(205, 215, 245)
EXPLODING_COLOUR = QColor(250, 200, 195)
FLAG_TOOLTIPS = {
    "dead": (f"Dead: every value is below {DEAD_THRESHOLD:g} in magnitude, or all values are "
             f"equal (std < {DEAD_THRESHOLD:g}). The layer passes no signal: check that the "
             "weights were loaded and initialised."),
    "exploding": (f"Exploding: a value exceeds {EXPLODING_THRESHOLD:g} in magnitude, or some "
                  "values are NaN / Inf. Training probably diverged: lower the learning rate "
                  "or clip gradients."),
}


def normalise_stat(stat) -> dict:
    """One weight statistic as a dict with the panel's keys, from a dict or a ``WeightStat``.

    Accepts both key spellings (``zeros`` / ``zero_fraction``, ``hist_edges`` / ``bin_edges``);
    None (NaN in JSON) becomes NaN.
    """
    if not isinstance(stat, dict):
        stat = stat.to_dict()

    def number(key):
        value = stat.get(key)
        return float("nan") if value is None else float(value)

    zeros = stat.get("zeros", stat.get("zero_fraction", 0.0))
    edges = stat.get("hist_edges", stat.get("bin_edges", []))
    flags = [flag for flag in ("dead", "exploding") if stat.get(flag)]
    return {"layer": str(stat.get("layer", "")), "name": str(stat.get("name", "")),
            "shape": tuple(int(v) for v in stat.get("shape", ())),
            "mean": number("mean"), "std": number("std"), "min": number("min"),
            "max": number("max"), "zeros": 0.0 if zeros is None else float(zeros),
            "hist_counts": np.asarray(stat.get("hist_counts", []), dtype=np.float64),
            "hist_edges": np.asarray(edges, dtype=np.float64),
            "nonfinite": int(stat.get("nonfinite") or 0), "flags": flags}


def _format_number(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:+.{digits}g}"


def _table_number(value: float) -> str:
    # Three digits: the numbers columns then fit a narrow dock; the detail line has four.
    return _format_number(value, 3)


def _sort_number(value: float) -> float:
    # NaN sorts last whatever the direction of the sort should say: treat it as +inf.
    return math.inf if math.isnan(value) else value


def _flag_brush(row: dict):
    if not row["flags"]:
        return None
    return QBrush(EXPLODING_COLOUR if "exploding" in row["flags"] else DEAD_COLOUR)


def _flag_tooltip(row: dict):
    if not row["flags"]:
        return None
    text = "\n\n".join(FLAG_TOOLTIPS[flag] for flag in row["flags"])
    if row["nonfinite"]:
        text += f"\n\n{row['nonfinite']} non-finite values (left out of the statistics)."
    return text


def weight_columns(icons: dict) -> tuple[Column, ...]:
    """The table's columns over normalised statistics rows (``normalise_stat``); flagged rows
    are coloured and explain their flag in every column's tooltip."""
    def column(title, text, sort=None, right=False, icon=None):
        return Column(title, text, sort, right, tooltip=_flag_tooltip, background=_flag_brush,
                      icon=icon)

    def number(title, key):
        return column(title, lambda row: _table_number(row[key]),
                      lambda row: _sort_number(row[key]), right=True)

    def flag_icon(row):
        if not row["flags"]:
            return None
        return icons["exploding" if "exploding" in row["flags"] else "dead"]

    # The flag's icon shows beside the layer too: the Flags column is the first to go when
    # the dock is narrow, the coloured row and its icon stay.
    return (column("Layer", lambda row: row["layer"], icon=flag_icon),
            column("Weight", lambda row: row["name"]),
            column("Shape", lambda row: " x ".join(map(str, row["shape"])) or "scalar",
                   lambda row: int(np.prod(row["shape"])) if row["shape"] else 1),
            number("Mean", "mean"), number("Std", "std"), number("Min", "min"),
            number("Max", "max"),
            column("Zeros %", lambda row: f"{100.0 * row['zeros']:.1f}",
                   lambda row: 100.0 * row["zeros"], right=True),
            column("Flags", lambda row: ", ".join(row["flags"]), lambda row: len(row["flags"]),
                   icon=flag_icon))


def weight_detail(row: dict) -> str:
    """One line with every statistic of a weight (normalised row), the flags last."""
    shape = " x ".join(map(str, row["shape"])) or "scalar"
    text = (f"{row['layer']}/{row['name']} [{shape}]: mean {_format_number(row['mean'])}, "
            f"std {_format_number(row['std'])}, min {_format_number(row['min'])}, "
            f"max {_format_number(row['max'])}, zeros {100.0 * row['zeros']:.1f} %")
    return text + (f" · {', '.join(row['flags'])}" if row["flags"] else "")


class WeightFilterProxy(QSortFilterProxyModel):
    """Keeps rows whose ``layer/name`` contains the filter text, optionally only flagged ones."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = ""
        self.only_flagged = False
        self.setSortRole(SORT_ROLE)

    def set_filter(self, text: str, only_flagged: bool) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.text, self.only_flagged = text.strip().lower(), bool(only_flagged)
            self.endFilterChange()
        else:
            self.text, self.only_flagged = text.strip().lower(), bool(only_flagged)
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row, source_parent):
        row = self.sourceModel().rows[source_row]
        if self.only_flagged and not row["flags"]:
            return False
        return not self.text or self.text in f"{row['layer']}/{row['name']}".lower()


class WeightsPanel(SessionPanel):
    """Weight statistics of the session's model: table, filter, and the selected histogram."""

    def __init__(self, session, parent=None):
        super().__init__(session, "No weight statistics yet.\nLoad a model (or a weights file) "
                                  "to inspect its weight histograms.", parent)
        style = self.style()
        icons = {"dead": style.standardIcon(QStyle.SP_MessageBoxWarning),
                 "exploding": style.standardIcon(QStyle.SP_MessageBoxCritical)}
        self.model = ColumnTableModel(weight_columns(icons), [], self)
        self.proxy = WeightFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.selected_row: int | None = None  # row of self.model shown in the histogram
        self.set_content(self._build())
        self.follow(session.weightStatsChanged, self._on_stats_changed,
                    lambda: session.weight_stats)
        self.sync()

    def _build(self) -> QWidget:
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by layer or weight name (e.g. res4, bn, kernel)")
        self.filter_edit.setClearButtonEnabled(True)
        self.flagged_check = QCheckBox("only flagged")
        self.flagged_check.setToolTip("Show only dead or exploding weights")
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.flagged_check.toggled.connect(self._apply_filter)
        self.summary_label = QLabel()  # its own line: beside the filter it was cut off
        self.summary_label.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.filter_edit, 1)
        controls.addWidget(self.flagged_check)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.AscendingOrder)  # keep layer order until the user sorts
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 6)  # compact: more rows show
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
        self.hidden_columns: list[str] = []
        self.fitter = ColumnFitter(self.table, COLUMN_PRIORITY, stretch=COLUMNS.index("Layer"),
                                   stretch_min=LAYER_MIN_WIDTH, on_fit=self._on_columns_fitted)
        self.detail_label = QLabel()  # every value of the selected weight, hidden columns too
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "weight value")
        self.plot.setLabel("left", "count")
        self.histogram_curve = self.plot.plot(stepMode="center", fillLevel=0,
                                              brush=(80, 140, 220, 150), pen=(40, 90, 180))
        self.plot.setTitle("Select a weight to see its histogram")

        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addLayout(controls)
        table_layout.addWidget(self.summary_label)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.detail_label)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(table_box)
        splitter.addWidget(self.plot)
        splitter.setSizes([420, 200])  # the table first: it is what one scans
        return splitter

    # ---- session -> view -----------------------------------------------------------------

    def _on_stats_changed(self, stats) -> None:
        rows = [normalise_stat(stat) for stat in (stats or [])]
        self.model.set_rows(rows)
        self._show_histogram(None)
        self.show_content(bool(rows))
        self.fitter.fit()
        self._update_summary()
        if rows:  # an empty histogram plot reads as broken: show the first weight's at once
            self.table.selectRow(0)

    # ---- user -> view --------------------------------------------------------------------

    def _apply_filter(self, *_args) -> None:
        self.proxy.set_filter(self.filter_edit.text(), self.flagged_check.isChecked())
        self._update_summary()

    def _on_columns_fitted(self, hidden) -> None:
        self.hidden_columns = [COLUMNS[c] for c in hidden]
        self._update_summary()

    def _update_summary(self) -> None:
        flagged = sum(1 for row in self.model.rows if row["flags"])
        text = f"{self.proxy.rowCount()} of {len(self.model.rows)} shown · {flagged} flagged"
        if self.hidden_columns:
            text += (f" · {', '.join(self.hidden_columns)}: widen the panel, or see the "
                     "selected weight below")
        self.summary_label.setText(text)

    def visible_rows(self) -> list[dict]:
        """Rows that pass the filter, in displayed order."""
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
                for r in range(self.proxy.rowCount())]

    def _on_current_row(self, current, _previous=None) -> None:
        source = self.proxy.mapToSource(current) if current.isValid() else QModelIndex()
        self._show_histogram(source.row() if source.isValid() else None)

    def select_weight(self, layer: str, name: str) -> None:
        """Select the visible row of ``layer``/``name`` (shows its histogram)."""
        for r in range(self.proxy.rowCount()):
            row = self.model.rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
            if row["layer"] == layer and row["name"] == name:
                self.table.selectRow(r)
                self.table.setCurrentIndex(self.proxy.index(r, 0))
                return
        raise KeyError(f"no visible weight {layer}/{name}")

    def _show_histogram(self, source_row: int | None) -> None:
        self.selected_row = source_row
        if source_row is None:
            self.histogram_curve.clear()
            self.plot.setTitle("Select a weight to see its histogram")
            self.detail_label.setText("")
            return
        row = self.model.rows[source_row]
        self.detail_label.setText(weight_detail(row))
        counts, edges = row["hist_counts"], row["hist_edges"]
        if len(edges) == len(counts) + 1 and len(counts):
            self.histogram_curve.setData(edges, counts, stepMode="center", fillLevel=0)
        else:
            self.histogram_curve.clear()
        flags = f"  [{', '.join(row['flags'])}]" if row["flags"] else ""
        self.plot.setTitle(f"{row['layer']}/{row['name']}{flags}")

    def export_png(self, path):
        """Write the panel as shown to ``path`` (PNG)."""
        return export_widget_png(self, path)
