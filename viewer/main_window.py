"""The main window: canvas in the centre, docks around it, menus, status bar, keyboard, drops.

It owns no view state (that is the Session) and no document: what is open, and the jobs that
open it, belong to ``viewer.document.Document`` (images are read and models loaded and traced by
a TraceWorker on a worker thread; saved traces load with numpy alone). The window keeps menus,
docks and dialogs. Every failure becomes a dialog saying what happened and what to do, and the
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
from viewer.document import Document
from viewer.errors_actions import ErrorsActions
from viewer.loading_hint import LoadingHint
from viewer.panels.activations import ActivationsPanel
from viewer.panels.canvas import CanvasPanel
from viewer.panels.dataset_list import DatasetPanel
from viewer.panels.detections_table import DetectionsTablePanel
from viewer.panels.diagnosis_panel import DiagnosisPanel
from viewer.panels.explain_panel import ExplainPanel
from viewer.panels.gt_panel import GroundTruthPanel
from viewer.panels.stage_list import StageListPanel
from viewer.panels.timings import TimingsPanel
from viewer.panels.weights import WeightsPanel
from viewer.recent import RecentFiles
from viewer.session import Session
from viewer.stages import STAGE_KEYS
from viewer.status_bar import add_precision_label, build_busy_status_bar, screen_fitted_size
from viewer.training.window_actions import TrainingActions
from viewer.window_export import TRACE_FILTER, ExportActions
from viewer.workers import ModelSpec

APP_TITLE = "mrcnn-viewer"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.gif *.webp);;All files (*)"
# (dock title, panel class): tabbed with Detections in one column right of the canvas, so the
# canvas keeps the full height (a bottom dock took ~40% of it). A new panel goes here.
RIGHT_PANELS = (
    ("Ground truth", GroundTruthPanel),
    ("Activations", ActivationsPanel),
    ("Weights", WeightsPanel),
    ("Timings", TimingsPanel),
    ("Explain", ExplainPanel),
    ("Diagnosis", DiagnosisPanel),
)
# Default window size and dock widths (pixels); the window shrinks to fit smaller screens.
DEFAULT_SIZE = (1440, 920)
LEFT_DOCK_WIDTH = (215, 260)     # min, max: "RPN scores · 4,092 · 1839 ms" fits
RIGHT_DOCK_WIDTH = (450, 580)    # min: the Weights table's main columns fit; max
RIGHT_DOCK_SHARE = 0.36          # of the window width: 518 px of 1440, the canvas keeps 45%
_AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea, "right": Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
_STEP_KEYS = {Qt.Key.Key_Up: -1, Qt.Key.Key_PageUp: -1, Qt.Key.Key_Left: -1,
              Qt.Key.Key_Down: 1, Qt.Key.Key_PageDown: 1, Qt.Key.Key_Right: 1,
              Qt.Key.Key_Home: -len(STAGE_KEYS), Qt.Key.Key_End: len(STAGE_KEYS)}


class MainWindow(QMainWindow):
    """mrcnn-viewer's window: menus, docks and dialogs over a ``Document`` (``self.document``:
    what is open) and a ``Session`` (what is shown). ``worker_factory(image_path, spec, model,
    class_names)`` -> worker can be replaced (tests trace without TensorFlow)."""

    exit_on_error = False  # set by --quit-after-trace

    def __init__(self, session: Session | None = None, settings=None, worker_factory=None):
        super().__init__()
        self.session = session if session is not None else Session(self)
        self.recent = RecentFiles(settings)
        self.document = Document(self.session, self.recent, worker_factory, parent=self)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(*self._default_size())
        self.canvas = CanvasPanel(self.session, self)
        self.setCentralWidget(self.canvas)
        self.exports = ExportActions(self.session, self.canvas.view, self, self.recent.settings,
                                     caption=self.canvas.caption_lines)
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict = {}
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self.set_status("Open an image (Ctrl+O) and a model (Ctrl+M), or a saved trace (Ctrl+T). "
                        "Press ? for shortcuts.")

    # ---- construction --------------------------------------------------------------------

    def add_dock(self, title, widget, area):
        """Dock ``widget`` as ``title`` in ``area`` ("left", "right", "bottom"); the dock."""
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(_AREAS[area], dock)
        self.docks[title] = dock
        self.panels[title] = widget
        return dock

    def _build_docks(self):
        # Tabs down the column's side: seven titles do not fit across a 450-560 px column.
        self.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.West)
        self.stage_list = StageListPanel(self.session)
        self.add_dock("Stages", self.stage_list, "left")
        self.dataset_panel = DatasetPanel(self.session)
        self.dataset_panel.imageActivated.connect(self.document.open_dataset_image)
        self.add_dock("Dataset", self.dataset_panel, "left")
        self.detections_table = DetectionsTablePanel(self.session)
        right = [self.add_dock("Detections", self.detections_table, "right")]
        for title, panel_class in RIGHT_PANELS:
            right.append(self.add_dock(title, panel_class(self.session), "right"))
        # Saliency jobs queue on the model thread: the model is never called by two threads.
        explain = self.panels["Explain"]
        explain.run_on(self.document.runner.companion(explain))
        self.document.runner.busyChanged.connect(lambda busy: busy and explain.runner.cancel())
        for dock in right[1:]:
            self.tabifyDockWidget(right[0], dock)
        right[0].raise_()
        # Bottom, hidden until a run starts or Train > … asks.
        self.training_actions = TrainingActions(self, self.session, self.document,
                                                self.recent.settings)
        self.training = self.training_actions.panel
        self.errors_actions = ErrorsActions(self, self.session, self.document)  # Analyze, Errors
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
        right = min(max(int(width * RIGHT_DOCK_SHARE), RIGHT_DOCK_WIDTH[0]), RIGHT_DOCK_WIDTH[1])
        self.resizeDocks([self.docks["Stages"], self.docks["Detections"]], [left, right],
                         Qt.Orientation.Horizontal)
        # The stage list needs ~11 rows; the dataset list below it takes the rest.
        self.resizeDocks([self.docks["Stages"], self.docks["Dataset"]],
                         [280, max(200, self.height() - 380)], Qt.Orientation.Vertical)

    def _build_status_bar(self):
        self.status_label, self.busy_bar, self.cancel_button = build_busy_status_bar(
            self, self.document.cancel, "Stop loading / tracing (Ctrl+.); its results are dropped")
        self.precision_label = add_precision_label(self, self.session)
        self._set_busy(False)

    def add_action(self, menu, text, slot, shortcuts=(), tip=""):
        """A menu action (and window shortcut) calling ``slot()``; the QAction."""
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
        self.add_action(file, "Open image…", self.open_image_dialog, ["Ctrl+O"])
        self.add_action(file, "Open model…", self.open_model_dialog, ["Ctrl+M"])
        self.add_action(file, "Open trace (.npz)…", self.open_trace_dialog, ["Ctrl+T"])
        self.add_action(file, "Open dataset…", self.open_dataset_dialog, ["Ctrl+D"],
                     "COCO JSON + image folder, or generated shapes: images with ground truth")
        self.recent_menu = file.addMenu("Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file.addSeparator()
        self.add_action(file, "Next image (folder or dataset)", lambda: self.next_image(1),
                     ["N", "Ctrl+Right"])
        self.add_action(file, "Previous image (folder or dataset)", lambda: self.next_image(-1),
                     ["P", "Ctrl+Left"])
        file.addSeparator()
        self.add_action(file, "Export view as PNG…", self.exports.export_view_png, ["Ctrl+E"])
        self.add_action(file, "Save trace (.npz)…", self.exports.save_trace, ["Ctrl+S"])
        self.add_action(file, "Export detections (JSON)…", self.exports.export_detections,
                        ["Ctrl+J"])
        file.addSeparator()
        self.add_action(file, "Cancel loading", self.document.cancel, ["Ctrl+."])
        self.add_action(file, "Quit", self.close, ["Ctrl+Q"])
        view = menus.addMenu("&View")
        self.add_action(view, "Fit image", self.fit_view, ["F"])
        self.add_action(view, "Clear selection", lambda: self.session.select(None), ["Esc"])
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        self.training_actions.build_menu(menus)
        self.errors_actions.build_menu(menus)
        help_menu = menus.addMenu("&Help")
        self.add_action(help_menu, "Keyboard shortcuts", self.show_shortcuts, ["?", "F1"])
        self.add_action(help_menu, "About", self.show_about)

    def _connect(self):
        self.session.errorRaised.connect(self.show_error)
        self.session.statusChanged.connect(self.set_status)
        self.session.busyChanged.connect(self._set_busy)
        self.session.traceChanged.connect(self._update_title)
        self.document.modelChanged.connect(self._update_title)
        self.document.datasetOpened.connect(self._show_dataset_dock)
        self.loading_hint = LoadingHint(self.session, self.canvas.empty_hint, self)

    # ---- status --------------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _set_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _update_title(self, *_):
        parts = [APP_TITLE]
        if self.session.image_path:
            parts.append(Path(self.session.image_path).name)
        if self.document.model_spec is not None:
            parts.append(self.document.model_spec.describe())
        self.setWindowTitle(" — ".join(parts))

    def show_error(self, title: str, message: str) -> None:
        self.set_status(f"{title}: {message.splitlines()[0] if message else ''}")
        if self.exit_on_error:  # mrcnn-viewer --quit-after-trace: no one is there to click OK
            print(f"mrcnn-viewer: {title}: {message}", file=sys.stderr)
            QApplication.instance().exit(1)
            return
        QMessageBox.critical(self, title, message)

    # ---- opening: entry points for app.py, scripts and tests; the logic is the Document's ----

    def open_path(self, path) -> None:
        self.document.open_path(path)

    def open_image(self, path, spec: ModelSpec | None = None) -> None:
        self.document.open_image(path, spec)

    def open_trace(self, path) -> bool:
        return self.document.open_trace(path)

    def open_dataset(self, spec, row: int | None = None, model: ModelSpec | None = None) -> None:
        self.document.open_dataset(spec, row, model)

    def set_model(self, spec: ModelSpec) -> None:
        self.document.set_model(spec)

    def next_image(self, step: int) -> None:
        self.document.next_image(step)

    def _show_dataset_dock(self, _dataset) -> None:
        self.docks["Dataset"].show()
        self.docks["Dataset"].raise_()

    # ---- dialogs ---------------------------------------------------------------------------

    def open_dataset_dialog(self):
        dialog = OpenDatasetDialog(self, initial=self.document.dataset_spec, recent=self.recent)
        if dialog.exec():
            self.open_dataset(dialog.spec())

    def open_image_dialog(self):
        # File dialogs start in the last folder used (kept across sessions), not the cwd.
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.recent.start_folder(),
                                              IMAGE_FILTER)
        if path:
            self.recent.remember_folder(path)
            self.open_image(path)

    def open_trace_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open trace", self.recent.start_folder(),
                                              TRACE_FILTER)
        if path:
            self.recent.remember_folder(path)
            self.open_trace(path)

    def open_model_dialog(self):
        dialog = OpenModelDialog(self, initial=self.document.model_spec, recent=self.recent)
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
        self.errors_actions.close()
        self.document.close()
        super().closeEvent(event)
