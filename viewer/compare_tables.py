"""Small table helpers of the compare window: read-only row-selecting tables and their cells."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


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
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(22)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch_column % len(columns), QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(56)
    table.setToolTip(tip)
    return table
