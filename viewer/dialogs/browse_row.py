"""A line edit with a Browse… button beside it: the row every file field of the dialogs uses."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget


def browse_row(edit: QLineEdit, browse) -> QWidget:
    """``edit`` and a Browse… button that calls ``browse()``, in one margin-less row."""
    button = QPushButton("Browse…")
    button.clicked.connect(lambda: browse())
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    box.addWidget(edit, 1)
    box.addWidget(button)
    return row
