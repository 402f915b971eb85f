"""One comparison window at a time (Train > Compare, the panel's Compare…), and the Training
dock shown at start when there are past runs to look at.

``CompareWindowSlot.open(key, make)``: the same comparison asked again raises the open window;
another one replaces it at the same place (its tracing cancelled by its closeEvent), so
comparing checkpoint after checkpoint never piles windows up.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, QTimer


class CompareWindowSlot:
    """Holds the one open comparison window."""

    def __init__(self):
        self.window = None
        self.key = None

    def current(self):
        """The open comparison window, or None (closed windows delete themselves)."""
        window = self.window
        if window is None or not shiboken6.isValid(window) or not window.isVisible():
            return None
        return window

    def open(self, key, make):
        """Show the comparison ``key`` (hashable: image and weights); ``make()`` builds its
        window when it is not the one already open. Returns the window shown."""
        current = self.current()
        if current is not None and key == self.key:
            window = current
        else:
            geometry = current.geometry() if current is not None else None
            if current is not None:
                current.close()
            window = make()
            if geometry is not None:
                window.setGeometry(geometry)
            self.window, self.key = window, key
            window.show()
        window.raise_()
        window.activateWindow()
        return window


class _OnFirstShow(QObject):
    """Calls ``callback`` once, on the event-loop turn after ``widget`` is first shown (when
    its geometry is final)."""

    def __init__(self, widget, callback):
        super().__init__(widget)
        self.callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, watched, event):
        if watched is self.parent() and event.type() == QEvent.Type.Show:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.callback)
        return False


def show_when_window_shows(window, show_dock) -> None:
    """Run ``show_dock()`` once ``window`` is on screen (dock sizes need its height)."""
    if window.isVisible():
        QTimer.singleShot(0, show_dock)
    else:
        _OnFirstShow(window, show_dock)
