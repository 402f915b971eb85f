"""Small table helpers of the compare window: read-only row-selecting tables and their cells."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from viewer.compare_data import IOU_THRESHOLD, TIME_PREFIX
from viewer.panels.kit import read_only_rows

ONLY_TINT = QColor(255, 160, 40, 60)  # a detection only one side has
DASH = "—"


def table_item(text, align_right=False, tint=None, tip="") -> QTableWidgetItem:
    """A table cell: ``text``, right-aligned for numbers, optionally tinted and with a tip."""
    item = QTableWidgetItem(text)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tint is not None:
        item.setBackground(tint)
    if tip:
        item.setToolTip(tip)
    return item


def read_only_table(columns, tip, stretch_column=-1) -> QTableWidget:
    """A read-only, row-selecting table; ``stretch_column`` takes the spare width."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    read_only_rows(table)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch_column % len(columns), QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(56)
    table.setToolTip(tip)
    return table


def fill_counts_table(table, rows) -> None:
    """Per-stage (name, A, B) rows with B - A; times in ms, differences in bold."""
    table.setRowCount(len(rows))
    for row, (name, a, b) in enumerate(rows):
        is_time = name.startswith(TIME_PREFIX)
        fmt = (lambda v: f"{v:.1f} ms") if is_time else (lambda v: f"{v:,}")
        diff = None if a is None or b is None else b - a
        cells = (name, DASH if a is None else fmt(a), DASH if b is None else fmt(b),
                 DASH if diff is None else ("+" if diff > 0 else "") + fmt(diff))
        for column, text in enumerate(cells):
            item = table_item(text, align_right=column > 0)
            if column == 3 and diff:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            table.setItem(row, column, item)


def fill_pair_row(table, row, pair) -> None:
    """One ``DetectionPair`` row; a detection only one side has is tinted and explained."""
    only = pair.status != "paired"
    tint = ONLY_TINT if only else None
    match = pair.status if only else f"A{pair.a} ↔ B{pair.b}"
    tip = (f"{pair.status}: no {pair.class_name} detection on the other side with IoU ≥ "
           f"{IOU_THRESHOLD}" if only else "")
    cells = (pair.class_name,
             DASH if pair.score_a is None else f"{pair.score_a:.3f}",
             DASH if pair.score_b is None else f"{pair.score_b:.3f}",
             DASH if pair.iou is None else f"{pair.iou:.2f}", match)
    for column, text in enumerate(cells):
        table.setItem(row, column, table_item(text, column in (1, 2, 3), tint, tip))
