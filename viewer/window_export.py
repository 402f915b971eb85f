"""The main window's export actions: the view as PNG, the trace as .npz, detections as JSON.

``ExportActions`` takes what it works on (the session, the view to grab, the parent of its file
dialogs, the settings remembering the last folder, the caption of the view); failures go to
``session.report_error``, "Saved …" and other notes to ``session.set_status``. File names say
the image and, for pictures, the stage shown; dialogs start in the last folder used.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from viewer.dialog_folders import last_folder, remember_folder
from viewer.export import export_detections_json, export_trace
from viewer.export_caption import export_captioned_png

TRACE_FILTER = "Traces (*.npz);;All files (*)"


class ExportActions:
    """File > Export view / Save trace / Export detections of ``session`` and ``view``."""

    def __init__(self, session, view, dialog_parent=None, settings=None, caption=None):
        self.session = session
        self.view = view                    # the widget "Export view" grabs
        self.dialog_parent = dialog_parent  # parent of the save-file dialogs
        self.settings = settings            # QSettings: the last folder used
        self.caption = caption              # () -> rich-text lines under an exported view

    def default_name(self, suffix: str, with_stage: bool = False) -> str:
        """``<image stem>[_<stage key>]<suffix>``: pictures of different stages do not
        overwrite each other."""
        stem = Path(self.session.image_path or "view").stem
        return f"{stem}_{self.session.stage}{suffix}" if with_stage else f"{stem}{suffix}"

    def _save_path(self, title, suffix, file_filter, path, with_stage=False):
        if path:
            return os.fspath(path)
        image = self.session.image_path
        start = last_folder(self.settings, os.path.dirname(image) if image else None)
        chosen, _ = QFileDialog.getSaveFileName(
            self.dialog_parent, title, os.path.join(start, self.default_name(suffix, with_stage)),
            file_filter)
        if chosen:
            remember_folder(self.settings, chosen)
        return chosen or None

    def _saved(self, what: str, path):
        self.session.set_status(f"Saved {what} to {path}.")
        return path

    def export_view_png(self, path=None):
        """Write the view as shown, with its caption and legend below, to ``path`` (asks when
        None); returns the path or None."""
        path = self._save_path("Export view as PNG", ".png", "PNG (*.png)", path, True)
        if not path:
            return None
        try:
            written = export_captioned_png(self.view, path, self.caption() if self.caption else [])
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None
        return self._saved("the view", written)

    def save_trace(self, path=None):
        """Write the session's trace as .npz to ``path`` (asks when None); the path or None."""
        if self.session.trace is None:
            self.session.set_status("Nothing to save: open an image and a model, or a trace.")
            return None
        path = self._save_path("Save trace", ".npz", TRACE_FILTER, path)
        if not path:
            return None
        try:
            return self._saved("the trace", export_trace(self.session.trace, path))
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
            written = export_detections_json(trace, path, self.session.score_threshold)
            return self._saved("the detections", written)
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def _export_failed(self, error):
        self.session.report_error("Export failed", f"{error}\n\nWhat to do: choose a folder you "
                                                   "can write to, with free space.")
