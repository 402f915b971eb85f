"""The main window: canvas in the centre, docks around it, menus, status bar, keyboard, drops.

It owns no view state (that is the Session) and runs no model code: images are read and models
loaded and traced by a TraceWorker on a worker thread (``viewer.workers``); saved traces load here
with numpy alone. Every failure becomes a dialog saying what happened and what to do, and the
window keeps working.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QMainWindow, QMessageBox,
                               QTabBar, QTabWidget)

from viewer.dialogs.open_dataset import OpenDatasetDialog
from viewer.dialogs.open_model import OpenModelDialog
from viewer.dialogs.shortcuts import ShortcutsDialog
from viewer.panels.canvas import CanvasPanel
from viewer.panels.dataset_list import DatasetPanel
from viewer.panels.detections_table import DetectionsTablePanel
from viewer.panels.stage_list import StageListPanel
from viewer.recent import TRACE_SUFFIXES, RecentFiles, sibling_image
from viewer.session import Session
from viewer.stages import STAGE_KEYS
from viewer.status_bar import build_busy_status_bar, screen_fitted_size
from viewer.training.window_actions import TrainingActions
from viewer.window_export import TRACE_FILTER, ExportActions, optional_class
from viewer.workers import DatasetWorker, JobRunner, ModelSpec, TraceWorker, describe_error

APP_TITLE = "mrcnn-viewer"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.gif *.webp);;All files (*)"
# (dock title, module, class, area): panels written elsewhere, docked when importable.
# They are tabbed with Detections in one column right of the canvas, so the canvas keeps the
# full height (a bottom dock took ~40% of it).
OPTIONAL_PANELS = (
    ("Ground truth", "viewer.panels.gt_panel", "GroundTruthPanel", "right"),
    ("Activations", "viewer.panels.activations", "ActivationsPanel", "right"),
    ("Weights", "viewer.panels.weights", "WeightsPanel", "right"),
    ("Timings", "viewer.panels.timings", "TimingsPanel", "right"),
    ("Explain", "viewer.panels.explain_panel", "ExplainPanel", "right"),
)
# Default window size and dock widths (pixels); the window shrinks to fit smaller screens.
DEFAULT_SIZE = (1440, 920)
LEFT_DOCK_WIDTH = (215, 260)     # min, max: "RPN scores · 4,092 · 1839 ms" fits
RIGHT_DOCK_WIDTH = (450, 540)    # five tab titles fit without eliding
_AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea, "right": Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
_STEP_KEYS = {Qt.Key.Key_Up: -1, Qt.Key.Key_PageUp: -1, Qt.Key.Key_Left: -1,
              Qt.Key.Key_Down: 1, Qt.Key.Key_PageDown: 1, Qt.Key.Key_Right: 1,
              Qt.Key.Key_Home: -len(STAGE_KEYS), Qt.Key.Key_End: len(STAGE_KEYS)}


_optional_class = optional_class


class MainWindow(ExportActions, TrainingActions, QMainWindow):
    """mrcnn-viewer's window. ``worker_factory(image_path, spec, model, class_names)`` -> worker
    can be replaced (tests trace without TensorFlow)."""

    exit_on_error = False  # set by --quit-after-trace

    def __init__(self, session: Session | None = None, settings=None, worker_factory=None):
        super().__init__()
        self.session = session if session is not None else Session(self)
        self.recent = RecentFiles(settings)
        self.runner = JobRunner(self)
        self.dataset_runner = JobRunner(self)  # datasets open beside a running trace
        self.worker_factory = worker_factory or TraceWorker
        self.model_spec: ModelSpec | None = None
        self.model = None
        self.class_names = None
        self.image_path: str | None = None
        self.dataset_image = None  # viewer.datasets.DatasetImage shown, or None (a file)
        self.dataset_spec = None
        self._pending_dataset_image = None
        self._stats_cache: dict = {}  # (ModelSpec, weights mtime) -> weight statistics
        self.pending_stage: str | None = None
        self._job_spec: ModelSpec | None = None
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(*self._default_size())
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
        self.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.North)
        self.stage_list = StageListPanel(self.session)
        self._add_dock("Stages", self.stage_list, "left")
        self.dataset_panel = DatasetPanel(self.session)
        self.dataset_panel.imageActivated.connect(self.open_dataset_image)
        self._add_dock("Dataset", self.dataset_panel, "left")
        self.detections_table = DetectionsTablePanel(self.session)
        right = [self._add_dock("Detections", self.detections_table, "right")]
        for title, module, name, area in OPTIONAL_PANELS:
            panel_class = _optional_class(module, name)
            if panel_class is not None:
                try:
                    right.append(self._add_dock(title, panel_class(self.session), area))
                except Exception as error:  # noqa: BLE001 - see _optional_class
                    print(f"{APP_TITLE}: cannot build panel {title}: {error}", file=sys.stderr)
        for dock in right[1:]:
            self.tabifyDockWidget(right[0], dock)
        right[0].raise_()
        self._build_training_dock()  # bottom, hidden until a run starts or Train > … asks
        for tabs in self.findChildren(QTabBar):  # the dock tab bars: full titles, else scroll
            tabs.setElideMode(Qt.TextElideMode.ElideNone)
            tabs.setUsesScrollButtons(True)
        for dock in self.docks.values():
            dock.widget().setMinimumSize(160, 120)

    def _default_size(self):
        return screen_fitted_size(self, DEFAULT_SIZE)

    def showEvent(self, event):
        super().showEvent(event)
        if not getattr(self, "_docks_sized", False):
            # Sizes apply only once the window has its geometry: the canvas gets most of it.
            self._docks_sized = True
            QTimer.singleShot(0, self._size_docks)

    def _size_docks(self):
        width = self.width()
        left = min(max(int(width * 0.16), LEFT_DOCK_WIDTH[0]), LEFT_DOCK_WIDTH[1])
        right = min(max(int(width * 0.30), RIGHT_DOCK_WIDTH[0]), RIGHT_DOCK_WIDTH[1])
        self.resizeDocks([self.docks["Stages"], self.docks["Detections"]], [left, right],
                         Qt.Orientation.Horizontal)
        # The stage list needs ~11 rows; the dataset list below it takes the rest.
        self.resizeDocks([self.docks["Stages"], self.docks["Dataset"]],
                         [280, max(200, self.height() - 380)], Qt.Orientation.Vertical)

    def _build_status_bar(self):
        self.status_label, self.busy_bar, self.cancel_button = build_busy_status_bar(
            self, self.cancel_job, "Stop loading / tracing (Ctrl+.); its results are dropped")
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
        self._action(file, "Open dataset…", self.open_dataset_dialog, ["Ctrl+D"],
                     "COCO JSON + image folder, or generated shapes: images with ground truth")
        self.recent_menu = file.addMenu("Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file.addSeparator()
        self._action(file, "Next image (folder or dataset)", lambda: self.next_image(1),
                     ["N", "Ctrl+Right"])
        self._action(file, "Previous image (folder or dataset)", lambda: self.next_image(-1),
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
        self._build_train_menu(menus)
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
        self.dataset_runner.progress.connect(self._on_progress)
        self.dataset_runner.finished.connect(self._on_dataset_loaded)
        self.dataset_runner.failed.connect(self._on_job_failed)
        self.dataset_runner.busyChanged.connect(self.session.set_busy)

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
        if self.exit_on_error:  # mrcnn-viewer --quit-after-trace: no one is there to click OK
            print(f"mrcnn-viewer: {title}: {message}", file=sys.stderr)
            QApplication.instance().exit(1)
            return
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
        self.dataset_image = None
        self.session.set_dataset_row(None)
        if spec is None:
            spec = self._job_spec if self.runner.is_busy() and self._job_spec else self.model_spec
        self._start_job(path, spec)

    def set_model(self, spec: ModelSpec) -> None:
        """Load ``spec`` on the worker thread; traces the current image if there is one."""
        self.model = None
        self._start_job(self.image_path, spec, self.dataset_image)

    def _start_job(self, image_path, spec, source=None):
        self._job_spec = spec
        model = self.model if spec is not None and spec == self.model_spec else None
        if source is not None:
            worker = self.worker_factory(image_path, spec, model, self.class_names, source=source)
        elif image_path is not None:
            worker = self.worker_factory(image_path, spec, model, self.class_names)
        else:
            worker = self.worker_factory(None, spec, None, None)
        if model is None and self._cached_stats(spec) is not None:
            worker.stats_fn = False  # this model's statistics are known: skip the pass
        name = source.name if source is not None else \
            Path(image_path).name if image_path else spec.describe()
        self.set_status(f"Opening {name}…")
        self.runner.start(worker)

    def _stats_key(self, spec):
        try:
            return spec, os.path.getmtime(spec.weights)
        except (OSError, TypeError, AttributeError):
            return None

    def _cached_stats(self, spec):
        key = self._stats_key(spec) if spec is not None else None
        return self._stats_cache.get(key) if key is not None else None

    def _update_weight_stats(self, result):
        """Weight statistics of a newly loaded model: computed by the worker, or cached."""
        if result.weight_stats is not None:
            key = self._stats_key(result.model_spec)
            if key is not None:
                self._stats_cache[key] = result.weight_stats
            self.session.set_weight_stats(result.weight_stats)
        elif result.model_spec is not None:
            cached = self._cached_stats(result.model_spec)
            if cached is not None and cached is not self.session.weight_stats:
                self.session.set_weight_stats(cached)

    def _on_job_finished(self, result):
        if result.model_spec is not None:
            self.model_spec, self.model = result.model_spec, result.model
            self.class_names = result.class_names
        self._update_weight_stats(result)
        if result.trace is None:  # a model loaded without an image
            self.set_status(f"Model {self.model_spec.describe()} loaded. Open an image (Ctrl+O).")
            self._update_title()
            return
        name = result.trace.meta.get("image_name") or Path(result.image_path or "").name
        if result.image_path and "image_name" not in result.trace.meta:
            self.recent.add(result.image_path)  # dataset images reopen through their dataset
        self.session.set_trace(result.trace, image_path=result.image_path or name)
        self._apply_pending_stage()
        total = result.trace.meta.get("timings", {}).get("total")
        if self.model_spec is None:
            status = f"{name}: open a model (Ctrl+M) to trace it."
        else:
            took = f" in {total * 1000:.0f} ms" if total else ""
            status = f"Traced {name} with {self.model_spec.describe()}{took}."
        self.set_status(status + (f" Note: {result.warning}." if result.warning else ""))

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
        self.dataset_image = None
        self.session.set_dataset_row(None)
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
        """Open the next (``step`` > 0) or previous image of the dataset or of the folder."""
        if self.dataset_image is not None:
            rows = len(self.dataset_image.dataset)
            self.open_dataset_image((self.dataset_image.row + step) % rows)
            return
        if not self.image_path:
            self.set_status("Open an image first: next / previous walk its folder.")
            return
        target = sibling_image(self.image_path, step)
        if target is None:
            self.set_status("No other image in this folder.")
            return
        self.open_image(target)

    # ---- datasets ---------------------------------------------------------------------------

    def open_dataset(self, spec, row: int | None = None, model: ModelSpec | None = None) -> None:
        """Load dataset ``spec`` (a DatasetSpec) on a worker thread; its list shows when done,
        then image ``row`` (if given) opens, traced with ``model`` (else the current model)."""
        self.dataset_spec = spec
        self._pending_dataset_image = (row, model) if row is not None else None
        self.set_status(f"Opening dataset {spec.describe()}…")
        self.dataset_runner.start(DatasetWorker(spec))

    def _on_dataset_loaded(self, dataset) -> None:
        self.session.set_dataset(dataset)
        self.docks["Dataset"].show()
        self.docks["Dataset"].raise_()
        self.set_status(f"Dataset {dataset.spec.describe()}: {len(dataset)} images, "
                        f"{len(dataset.class_names) - 1} classes. Pick an image in the Dataset "
                        "list (N / P walk it).")
        pending, self._pending_dataset_image = self._pending_dataset_image, None
        if pending is not None:
            row, model = pending
            self.open_dataset_image(min(max(row, 0), len(dataset) - 1), model)

    def open_dataset_image(self, row: int, spec: ModelSpec | None = None) -> None:
        """Open image ``row`` of the session's dataset with its ground truth (and trace it)."""
        from viewer.datasets import DatasetImage

        dataset = self.session.dataset
        if dataset is None or not 0 <= row < len(dataset):
            self.set_status("Open a dataset first (File > Open dataset…).")
            return
        self.dataset_image = DatasetImage(dataset, int(row))
        self.image_path = dataset.image_path(row)
        self.session.set_dataset_row(row)
        if spec is None:
            spec = self._job_spec if self.runner.is_busy() and self._job_spec else self.model_spec
        self._start_job(self.image_path, spec, self.dataset_image)

    def open_dataset_dialog(self):
        dialog = OpenDatasetDialog(self, initial=self.dataset_spec)
        if dialog.exec():
            self.open_dataset(dialog.spec())

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
        if not self.training.confirm_close(self):  # training runs, and the user keeps them
            event.ignore()
            return
        for runner in (self.runner, self.dataset_runner):
            runner.cancel()
            runner.wait(10000)
        super().closeEvent(event)
