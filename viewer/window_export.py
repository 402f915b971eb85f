"""The main window's export actions: the view as PNG, the trace as .npz, detections as JSON.

A mixin for ``MainWindow`` (it uses ``self.session``, ``self.canvas`` and ``self.show_error``),
kept apart so the window module stays about windows and docks.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

TRACE_FILTER = "Traces (*.npz);;All files (*)"


def optional_class(module: str, name: str):
    """``module.name`` or None when the module is missing or broken (said on stderr)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return None
    except Exception as error:  # a panel under construction must not stop the viewer
        print(f"mrcnn-viewer: {module}.{name} unavailable: {error}", file=sys.stderr)
        return None


class ExportActions:
    """File > Export view / Save trace / Export detections."""

    def _save_path(self, title, suffix, file_filter, path):
        if path:
            return os.fspath(path)
        stem = Path(self.session.image_path or "view").stem
        chosen, _ = QFileDialog.getSaveFileName(self, title, f"{stem}{suffix}", file_filter)
        return chosen or None

    def export_view_png(self, path=None):
        """Write the canvas as shown to ``path`` (asks when None); returns the path or None."""
        path = self._save_path("Export view as PNG", ".png", "PNG (*.png)", path)
        if not path:
            return None
        try:
            export = optional_class("viewer.export", "export_widget_png")
            if export is not None:
                return export(self.canvas.view, path)
            if not self.canvas.view.grab().save(path, "PNG"):
                raise OSError(f"cannot write PNG {path}")
            return path
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def save_trace(self, path=None):
        if self.session.trace is None:
            self.set_status("Nothing to save: open an image and a model, or a trace.")
            return None
        path = self._save_path("Save trace", ".npz", TRACE_FILTER, path)
        if not path:
            return None
        try:
            export = optional_class("viewer.export", "export_trace")
            return export(self.session.trace, path) if export else self.session.trace.save(path)
        except OSError as error:
            self._export_failed(error)
            return None

    def export_detections(self, path=None):
        trace = self.session.trace
        if trace is None or "detections" not in trace:
            self.set_status("No detections to export: trace an image with a model first.")
            return None
        path = self._save_path("Export detections", ".json", "JSON (*.json)", path)
        if not path:
            return None
        try:
            export = optional_class("viewer.export", "export_detections_json")
            if export is None:
                raise OSError("viewer.export is not installed")
            return export(trace, path, self.session.score_threshold)
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def _export_failed(self, error):
        self.show_error("Export failed", f"{error}\n\nWhat to do: choose a folder you can write "
                                         "to, with free space.")
