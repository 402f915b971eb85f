"""The panel kit: ``SessionPanel`` (hint page / content page over a Session) and
``ColumnTableModel`` (a table whose columns say how to show one row).

A new panel subclasses ``SessionPanel``, builds its content widget, calls ``set_content`` and
``follow(signal, slot, current)`` for each Session signal it draws from, then ``sync()``; its
slots call ``show_content(bool)`` to switch between the hint and the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel, QStackedWidget, QVBoxLayout, QWidget

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # the value a QSortFilterProxyModel sorts on
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def read_only_rows(view, row_height: int | None = 22):
    """Set up a table view as the viewer's tables are: whole rows, one at a time, no editing,
    no row-number column; ``row_height`` px rows (None: Qt's default)."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().setVisible(False)
    if row_height is not None:
        view.verticalHeader().setDefaultSectionSize(row_height)
    return view


class SessionPanel(QWidget):
    """A dock panel over ``session``: ``hint`` (a QLabel saying what to open) while there is
    nothing to show, else the content widget; ``stack`` holds the two pages."""

    def __init__(self, session, hint: str, parent=None):
        super().__init__(parent)
        self.session = session
        self._followers: list[tuple[Callable, Callable]] = []
        self.hint = QLabel(hint)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.panel_layout = QVBoxLayout(self)  # subclasses may add bars above / below the stack
        self.panel_layout.setContentsMargins(0, 0, 0, 0)
        self.panel_layout.addWidget(self.stack, 1)

    def set_content(self, widget: QWidget) -> QWidget:
        """The page shown while there is something to show."""
        self.stack.addWidget(widget)
        return widget

    def show_content(self, shown: bool) -> None:
        """The content page (True) or the hint (False)."""
        self.stack.setCurrentIndex(1 if shown else 0)

    def follow(self, signal, slot, current: Callable[[], Any] | None = None) -> None:
        """Call ``slot`` on every ``signal``; ``sync()`` also calls it with ``current()``
        (the session's present value), so a panel built after a trace opened shows it."""
        signal.connect(slot)
        if current is not None:
            self._followers.append((slot, current))

    def sync(self) -> None:
        """Bring the panel up to the session's present state."""
        for slot, current in self._followers:
            slot(current())


@dataclass(frozen=True)
class Column:
    """How one column shows a row item: its text, and optionally sort value, alignment,
    tooltip, background brush and icon (each a function of the item)."""

    title: str
    text: Callable[[Any], str]
    sort: Callable[[Any], Any] | None = None    # SORT_ROLE value; default: the text
    right: bool = False                          # right-aligned (numbers)
    tooltip: Callable[[Any], Any] | None = None
    background: Callable[[Any], Any] | None = None
    icon: Callable[[Any], Any] | None = None


class ColumnTableModel(QAbstractTableModel):
    """Read-only table of ``rows`` (any items: dicts, trace rows, dataset rows), one ``Column``
    each. ``UserRole`` gives the row item itself."""

    def __init__(self, columns, rows=(), parent=None):
        super().__init__(parent)
        self.columns = tuple(columns)
        self.rows = rows

    def set_rows(self, rows) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def refresh_columns(self, first: int, last: int) -> None:
        """The text of columns ``first``..``last`` changed for every row (repaint them)."""
        if self.rowCount():
            self.dataChanged.emit(self.index(0, first), self.index(self.rowCount() - 1, last))

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item, column = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(item)
        if role == SORT_ROLE:
            return (column.sort or column.text)(item)
        if role == Qt.ItemDataRole.UserRole:
            return item
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if column.right else None
        hook = {Qt.ItemDataRole.ToolTipRole: column.tooltip,
                Qt.ItemDataRole.BackgroundRole: column.background,
                Qt.ItemDataRole.DecorationRole: column.icon}.get(role)
        return hook(item) if hook is not None else None
