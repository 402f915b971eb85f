"""The main window's export actions: the view as PNG, the trace as .npz, detections as JSON.

``ExportActions`` takes what it works on (the session, the view to grab, the parent of its file
dialogs); failures go to ``session.report_error``, notes to ``session.set_status``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from viewer.export import export_detections_json, export_trace, export_widget_png

TRACE_FILTER = "Traces (*.npz);;All files (*)"


class ExportActions:
    """File > Export view / Save trace / Export detections of ``session`` and ``view``."""

    def __init__(self, session, view, dialog_parent=None):
        self.session = session
        self.view = view                    # the widget "Export view" grabs
        self.dialog_parent = dialog_parent  # parent of the save-file dialogs

    def _save_path(self, title, suffix, file_filter, path):
        if path:
            return os.fspath(path)
        stem = Path(self.session.image_path or "view").stem
        chosen, _ = QFileDialog.getSaveFileName(self.dialog_parent, title, f"{stem}{suffix}",
                                                file_filter)
        return chosen or None

    def export_view_png(self, path=None):
        """Write the view as shown to ``path`` (asks when None); returns the path or None."""
        path = self._save_path("Export view as PNG", ".png", "PNG (*.png)", path)
        if not path:
            return None
        try:
            return export_widget_png(self.view, path)
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def save_trace(self, path=None):
        """Write the session's trace as .npz to ``path`` (asks when None); the path or None."""
        if self.session.trace is None:
            self.session.set_status("Nothing to save: open an image and a model, or a trace.")
            return None
        path = self._save_path("Save trace", ".npz", TRACE_FILTER, path)
        if not path:
            return None
        try:
            return export_trace(self.session.trace, path)
        except OSError as error:
            self._export_failed(error)
            return None

    def export_detections(self, path=None):
        """Write the detections at or above the threshold as JSON; the path or None."""
        trace = self.session.trace
        if trace is None or "detections" not in trace:
            self.session.set_status("No detections to export: trace an image with a model "
                                    "first.")
            return None
        path = self._save_path("Export detections", ".json", "JSON (*.json)", path)
        if not path:
            return None
        try:
            return export_detections_json(trace, path, self.session.score_threshold)
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def _export_failed(self, error):
        self.session.report_error("Export failed", f"{error}\n\nWhat to do: choose a folder you "
                                                   "can write to, with free space.")
