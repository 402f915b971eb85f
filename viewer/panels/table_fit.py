"""Fit a table's columns to its width, so a narrow dock never scrolls sideways.

``ColumnFitter`` shows a table's columns in priority order while their content fits the
viewport, hides the rest (the panel says which, and shows their values elsewhere), and gives
what is left to one stretch column, which elides its text when it must. It refits when the
viewport is resized and when the rows change.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QHeaderView

PADDING = 6        # pixels beside a column's widest cell (its size hint has the margins)
HEADER_EXTRA = 24  # pixels beside a header's title: margins and the sort arrow


class ColumnFitter(QObject):
    """Keeps ``table``'s columns within its viewport.

    ``priority``: column indices, most important first (columns not listed are shown last).
    ``stretch``: the column that takes the spare width and elides down to ``stretch_min``
    pixels. ``on_fit(hidden)`` is called with the hidden column indices after each fit.
    """

    def __init__(self, table, priority, stretch: int, stretch_min: int = 80, on_fit=None):
        super().__init__(table)
        self.table = table
        self.priority = list(priority)
        self.stretch = stretch
        self.stretch_min = stretch_min
        self.on_fit = on_fit
        self.hidden: list[int] = []
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        table.viewport().installEventFilter(self)
        model = table.model()
        for signal in (model.modelReset, model.layoutChanged, model.rowsInserted,
                       model.rowsRemoved):
            signal.connect(lambda *_: self.fit())

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def preferred_width(self, column: int) -> int:
        """The width that shows ``column``'s header and every cell's text unelided."""
        header = self.table.horizontalHeader()
        title = str(self.table.model().headerData(column, Qt.Orientation.Horizontal) or "")
        # Measured, not header.sectionSizeHint: that is 0 for a section hidden until now.
        title_width = header.fontMetrics().horizontalAdvance(title) + HEADER_EXTRA
        return max(self.table.sizeHintForColumn(column), title_width) + PADDING

    def _order(self, count: int) -> list[int]:
        listed = [c for c in self.priority if c < count]
        return listed + [c for c in range(count) if c not in listed]

    def fit(self) -> None:
        """Show the columns that fit, by priority; the stretch column takes the rest."""
        count = self.table.model().columnCount()
        if not count:
            return
        available = self.table.viewport().width()
        for column in range(count):  # a hidden column has no size hint: measure them shown
            self.table.setColumnHidden(column, False)
        widths = {c: self.preferred_width(c) for c in range(count)}
        shown, used = [], 0
        for column in self._order(count):
            need = min(widths[column], self.stretch_min) if column == self.stretch else \
                widths[column]
            if not shown or used + need <= available:
                shown.append(column)
                used += need
        self.hidden = [c for c in range(count) if c not in shown]
        for column in range(count):
            self.table.setColumnHidden(column, column in self.hidden)
        others = sum(widths[c] for c in shown if c != self.stretch)
        for column in shown:
            self.table.setColumnWidth(column, widths[column] if column != self.stretch else
                                      max(available - others, min(self.stretch_min,
                                                                  widths[column])))
        if self.on_fit is not None:
            self.on_fit(self.hidden)
