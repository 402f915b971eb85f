"""Keyboard shortcuts: the one list the window binds and the ``?`` dialog shows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

# (keys as shown, what they do). Menu actions carry the same keys (see MainWindow).
SHORTCUTS = (
    ("Ctrl+O", "Open image"),
    ("Ctrl+M", "Open model (weights + config, or the demo)"),
    ("Ctrl+T", "Open saved trace (.npz)"),
    ("Ctrl+D", "Open dataset (its first image opens; N / P walk it)"),
    ("Drag and drop", "Open an image or a .npz trace dropped on the window"),
    ("N  or  Ctrl+Right", "Next image: of the open dataset, else in the image's folder"),
    ("P  or  Ctrl+Left", "Previous image: of the open dataset, else in the image's folder"),
    ("Up / Down, PageUp / PageDown, Left / Right", "Previous / next pipeline stage"),
    ("Home / End", "First / last stage"),
    ("Click a box", "Select it (smallest box under the pointer); linked items follow"),
    ("Esc", "Clear the selection"),
    ("Mouse wheel, drag", "Zoom, pan the image"),
    ("F", "Fit the image in the view"),
    ("Ctrl+E", "Export the view as PNG"),
    ("Ctrl+S", "Save the trace (.npz)"),
    ("Ctrl+J", "Export detections (JSON)"),
    ("Ctrl+.", "Cancel loading / tracing"),
    ("Ctrl+Shift+A", "Analyze the open dataset with the open model (Errors browser)"),
    ("?  or  F1", "This list"),
    ("Ctrl+Q", "Quit"),
)


class ShortcutsDialog(QDialog):
    """A two-column table of SHORTCUTS."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(SHORTCUTS), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        for row, (keys, action) in enumerate(SHORTCUTS):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(action))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(620, 560)
        self.setWindowModality(Qt.WindowModality.NonModal)
