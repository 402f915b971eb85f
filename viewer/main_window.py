"""The main window: canvas in the centre, docks around it, menus, status bar, keyboard, drops.

It owns no view state (that is the Session) and runs no model code: images are read and models
loaded and traced by a TraceWorker on a worker thread (``viewer.workers``); saved traces load here
with numpy alone. Every failure becomes a dialog saying what happened and what to do, and the
window keeps working.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton)

from viewer.dialogs.open_model import OpenModelDialog
from viewer.dialogs.shortcuts import ShortcutsDialog
from viewer.panels.canvas import CanvasPanel
from viewer.panels.detections_table import DetectionsTablePanel
from viewer.panels.stage_list import StageListPanel
from viewer.recent import TRACE_SUFFIXES, RecentFiles, sibling_image
from viewer.session import Session
from viewer.stages import STAGE_KEYS
from viewer.workers import JobRunner, ModelSpec, TraceWorker, describe_error

APP_TITLE = "mrcnn-viewer"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.gif *.webp);;All files (*)"
TRACE_FILTER = "Traces (*.npz);;All files (*)"
# (dock title, module, class, area): panels written elsewhere, docked when importable.
OPTIONAL_PANELS = (
    ("Activations", "viewer.panels.activations", "ActivationsPanel", "bottom"),
    ("Weights", "viewer.panels.weights", "WeightsPanel", "bottom"),
    ("Timings", "viewer.panels.timings", "TimingsPanel", "bottom"),
    ("Ground truth", "viewer.panels.gt_panel", "GroundTruthPanel", "bottom"),
)
_AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea, "right": Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
_STEP_KEYS = {Qt.Key.Key_Up: -1, Qt.Key.Key_PageUp: -1, Qt.Key.Key_Left: -1,
              Qt.Key.Key_Down: 1, Qt.Key.Key_PageDown: 1, Qt.Key.Key_Right: 1,
              Qt.Key.Key_Home: -len(STAGE_KEYS), Qt.Key.Key_End: len(STAGE_KEYS)}


def _optional_class(module: str, name: str):
    """``module.name`` or None when the module is missing or broken (said on stderr)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return None
    except Exception as error:  # a panel under construction must not stop the viewer
        print(f"{APP_TITLE}: panel {module}.{name} unavailable: {error}", file=sys.stderr)
        return None


class MainWindow(QMainWindow):
    """mrcnn-viewer's window. ``worker_factory(image_path, spec, model, class_names)`` -> worker
    can be replaced (tests trace without TensorFlow)."""

    def __init__(self, session: Session | None = None, settings=None, worker_factory=None):
        super().__init__()
        self.session = session if session is not None else Session(self)
        self.recent = RecentFiles(settings)
        self.runner = JobRunner(self)
        self.worker_factory = worker_factory or TraceWorker
        self.model_spec: ModelSpec | None = None
        self.model = None
        self.class_names = None
        self.image_path: str | None = None
        self.pending_stage: str | None = None
        self._job_spec: ModelSpec | None = None
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1440, 920)
        self.canvas = CanvasPanel(self.session, self)
        self.setCentralWidget(self.canvas)
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict = {}
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self.set_status("Open an image (Ctrl+O) and a model (Ctrl+M), or a saved trace (Ctrl+T). "
                        "Press ? for shortcuts.")

    # ---- construction --------------------------------------------------------------------

    def _add_dock(self, title, widget, area):
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(_AREAS[area], dock)
        self.docks[title] = dock
        self.panels[title] = widget
        return dock

    def _build_docks(self):
        self.stage_list = StageListPanel(self.session)
        self._add_dock("Stages", self.stage_list, "left")
        self.detections_table = DetectionsTablePanel(self.session)
        self._add_dock("Detections", self.detections_table, "right")
        bottom = []
        for title, module, name, area in OPTIONAL_PANELS:
            panel_class = _optional_class(module, name)
            if panel_class is not None:
                try:
                    bottom.append(self._add_dock(title, panel_class(self.session), area))
                except Exception as error:  # noqa: BLE001 - see _optional_class
                    print(f"{APP_TITLE}: cannot build panel {title}: {error}", file=sys.stderr)
        for dock in bottom[1:]:
            self.tabifyDockWidget(bottom[0], dock)
        if bottom:
            bottom[0].raise_()
        self._bottom_docks = bottom[:1]

    def showEvent(self, event):
        super().showEvent(event)
        if not getattr(self, "_docks_sized", False):
            # Sizes apply only once the window has its geometry: the canvas gets most of it.
            self._docks_sized = True
            QTimer.singleShot(0, self._size_docks)

    def _size_docks(self):
        self.resizeDocks([self.docks["Stages"], self.docks["Detections"]], [250, 400],
                         Qt.Orientation.Horizontal)
        if self._bottom_docks:
            self.resizeDocks(self._bottom_docks, [max(200, self.height() // 4)],
                             Qt.Orientation.Vertical)

    def _build_status_bar(self):
        bar = self.statusBar()
        self.status_label = QLabel()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: the steps have no known length
        self.busy_bar.setMaximumWidth(140)
        self.busy_bar.setMaximumHeight(16)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop loading / tracing (Ctrl+.); its results are dropped")
        self.cancel_button.clicked.connect(self.cancel_job)
        bar.addWidget(self.status_label, 1)
        bar.addPermanentWidget(self.busy_bar)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

    def _action(self, menu, text, slot, shortcuts=(), tip=""):
        action = QAction(text, self)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        self.addAction(action)  # shortcuts work while the menu bar is hidden too
        return action

    def _build_menus(self):
        menus = self.menuBar()
        file = menus.addMenu("&File")
        self._action(file, "Open image…", self.open_image_dialog, ["Ctrl+O"])
        self._action(file, "Open model…", self.open_model_dialog, ["Ctrl+M"])
        self._action(file, "Open trace (.npz)…", self.open_trace_dialog, ["Ctrl+T"])
        self.recent_menu = file.addMenu("Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file.addSeparator()
        self._action(file, "Next image in folder", lambda: self.next_image(1), ["N", "Ctrl+Right"])
        self._action(file, "Previous image in folder", lambda: self.next_image(-1),
                     ["P", "Ctrl+Left"])
        file.addSeparator()
        self._action(file, "Export view as PNG…", self.export_view_png, ["Ctrl+E"])
        self._action(file, "Save trace (.npz)…", self.save_trace, ["Ctrl+S"])
        self._action(file, "Export detections (JSON)…", self.export_detections, ["Ctrl+J"])
        file.addSeparator()
        self._action(file, "Cancel loading", self.cancel_job, ["Ctrl+."])
        self._action(file, "Quit", self.close, ["Ctrl+Q"])
        view = menus.addMenu("&View")
        self._action(view, "Fit image", self.fit_view, ["F"])
        self._action(view, "Clear selection", lambda: self.session.select(None), ["Esc"])
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        help_menu = menus.addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self.show_shortcuts, ["?", "F1"])
        self._action(help_menu, "About", self.show_about)

    def _connect(self):
        self.session.errorRaised.connect(self.show_error)
        self.session.statusChanged.connect(self.set_status)
        self.session.busyChanged.connect(self._set_busy)
        self.session.traceChanged.connect(self._update_title)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.failed.connect(self._on_job_failed)
        self.runner.cancelled.connect(lambda: self.set_status("Cancelled."))
        self.runner.busyChanged.connect(self.session.set_busy)

    # ---- status --------------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _set_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _on_progress(self, text):
        self.set_status(f"{text}" if text.endswith("…") else f"{text}…")

    def _update_title(self, *_):
        parts = [APP_TITLE]
        if self.session.image_path:
            parts.append(Path(self.session.image_path).name)
        if self.model_spec is not None:
            parts.append(self.model_spec.describe())
        self.setWindowTitle(" — ".join(parts))

    def show_error(self, title: str, message: str) -> None:
        self.set_status(f"{title}: {message.splitlines()[0] if message else ''}")
        QMessageBox.critical(self, title, message)

    # ---- opening -------------------------------------------------------------------------

    def open_path(self, path) -> None:
        """Open an image or (by suffix) a saved trace."""
        if Path(path).suffix.lower() in TRACE_SUFFIXES:
            self.open_trace(path)
        else:
            self.open_image(path)

    def open_image(self, path, spec: ModelSpec | None = None) -> None:
        """Read (and, with a model, trace) ``path`` on the worker thread.

        The model: ``spec``, else the one a running job is loading, else the current one.
        """
        path = os.fspath(path)
        self.image_path = path
        if spec is None:
            spec = self._job_spec if self.runner.is_busy() and self._job_spec else self.model_spec
        self._start_job(path, spec)

    def set_model(self, spec: ModelSpec) -> None:
        """Load ``spec`` on the worker thread; traces the current image if there is one."""
        self.model = None
        self._start_job(self.image_path, spec)

    def _start_job(self, image_path, spec):
        self._job_spec = spec
        model = self.model if spec is not None and spec == self.model_spec else None
        worker = self.worker_factory(image_path, spec, model, self.class_names) \
            if image_path is not None else self.worker_factory(None, spec, None, None)
        name = Path(image_path).name if image_path else spec.describe()
        self.set_status(f"Opening {name}…")
        self.runner.start(worker)

    def _on_job_finished(self, result):
        if result.model_spec is not None:
            self.model_spec, self.model = result.model_spec, result.model
            self.class_names = result.class_names
        if result.weight_stats is not None:
            self.session.set_weight_stats(result.weight_stats)
        if result.trace is None:  # a model loaded without an image
            self.set_status(f"Model {self.model_spec.describe()} loaded. Open an image (Ctrl+O).")
            self._update_title()
            return
        self.recent.add(result.image_path)
        self.session.set_trace(result.trace, image_path=result.image_path)
        self._apply_pending_stage()
        total = result.trace.meta.get("timings", {}).get("total")
        if self.model_spec is None:
            self.set_status(f"{Path(result.image_path).name}: open a model (Ctrl+M) to trace it.")
        else:
            took = f" in {total * 1000:.0f} ms" if total else ""
            self.set_status(f"Traced {Path(result.image_path).name} with "
                            f"{self.model_spec.describe()}{took}.")

    def _on_job_failed(self, title, message):
        self.session.report_error(title, message)

    def cancel_job(self) -> None:
        if self.runner.is_busy():
            self.runner.cancel()

    def open_trace(self, path) -> bool:
        """Load a saved trace (.npz, numpy only); False and an error dialog on failure."""
        from mrcnn.trace_data import Trace

        try:
            trace = Trace.load(path)
            if "input" not in trace or "image" not in trace["input"]:
                raise ValueError(f"{path}: the trace has no 'input' image stage")
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported
            self.session.report_error(*describe_error(error, "trace"))
            return False
        self.cancel_job()
        image_path = trace.meta.get("image_path") or None
        self.image_path = image_path if image_path and os.path.isfile(image_path) else None
        self.recent.add(path)
        self.session.set_trace(trace, image_path=image_path or os.fspath(path))
        self._apply_pending_stage()
        self.set_status(f"Opened trace {Path(path).name}.")
        return True

    def _apply_pending_stage(self):
        if self.pending_stage and self.pending_stage in self.session.stage_keys():
            self.session.set_stage(self.pending_stage)
        self.pending_stage = None

    def next_image(self, step: int) -> None:
        if not self.image_path:
            self.set_status("Open an image first: next / previous walk its folder.")
            return
        target = sibling_image(self.image_path, step)
        if target is None:
            self.set_status("No other image in this folder.")
            return
        self.open_image(target)

    def open_image_dialog(self):
        start = os.path.dirname(self.image_path) if self.image_path else os.getcwd()
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_trace_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open trace", os.getcwd(), TRACE_FILTER)
        if path:
            self.open_trace(path)

    def open_model_dialog(self):
        dialog = OpenModelDialog(self, initial=self.model_spec)
        if dialog.exec():
            self.set_model(dialog.spec())

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        paths = self.recent.paths()
        for path in paths:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda *_, p=path: self._open_recent(p))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear recent files").triggered.connect(self.recent.clear)

    def _open_recent(self, path):
        if not os.path.exists(path):
            self.recent.remove(path)
            self.show_error("File not found", f"{path} no longer exists; it was removed from "
                                              "the recent files.")
            return
        self.open_path(path)

    # ---- drag and drop ---------------------------------------------------------------------

    def dragEnterEvent(self, event):
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            # Open after the drop returns, so an error dialog does not block the drag source.
            QTimer.singleShot(0, lambda: self.open_path(files[0]))

    # ---- keyboard --------------------------------------------------------------------------

    def keyPressEvent(self, event):
        """Stage keys that no focused widget used (the canvas, empty space) step the stages."""
        step = _STEP_KEYS.get(event.key())
        if step is not None and not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.session.step_stage(step)
            event.accept()
            return
        super().keyPressEvent(event)

    # ---- export ------------------------------------------------------------------------------

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
            export = _optional_class("viewer.export", "export_widget_png")
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
            export = _optional_class("viewer.export", "export_trace")
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
            export = _optional_class("viewer.export", "export_detections_json")
            if export is None:
                raise OSError("viewer.export is not installed")
            return export(trace, path, self.session.score_threshold)
        except (OSError, ValueError) as error:
            self._export_failed(error)
            return None

    def _export_failed(self, error):
        self.show_error("Export failed", f"{error}\n\nWhat to do: choose a folder you can write "
                                         "to, with free space.")

    # ---- view / help ----------------------------------------------------------------------

    def fit_view(self):
        trace = self.session.trace
        if trace is not None:
            height, width = trace.image.shape[:2]
            self.canvas.vb.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def show_shortcuts(self):
        dialog = getattr(self, "_shortcuts_dialog", None)
        if dialog is None:
            dialog = self._shortcuts_dialog = ShortcutsDialog(self)
        dialog.show()
        dialog.raise_()

    def show_about(self):
        QMessageBox.about(self, f"About {APP_TITLE}",
                          "mrcnn-viewer: step through Mask R-CNN's pipeline for one image, from "
                          "anchors to masks, in linked panels.")

    def closeEvent(self, event):
        self.runner.cancel()
        self.runner.wait(10000)
        super().closeEvent(event)
