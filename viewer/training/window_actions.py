"""The main window's training parts: the Training dock, the Train menu, and what a checkpoint
turns into (a model in the pipeline view, or a side-by-side comparison)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt

from viewer.training.compare_slot import CompareWindowSlot, show_when_window_shows
from viewer.training.panel import TrainingPanel


class TrainingActions:
    """The main window's training parts: the Training dock, the Train menu, and what
    checkpoints turn into — a model in the pipeline view or a comparison window.

    Collaborators, all explicit: ``window`` (the main window: ``add_dock``, ``add_action``,
    parent of dialogs and child windows), ``session`` (the open dataset; errors and status),
    ``document`` (the image to compare on; ``set_model`` for a checkpoint) and ``settings``.
    """

    TRAINING_DOCK = "Training"
    TRAINING_DOCK_SHARE = 0.34  # of the window's height, when the dock first shows

    def __init__(self, window, session, document, settings):
        self.window = window
        self.session = session
        self.document = document
        self.child_windows: list = []
        self.panel = TrainingPanel(settings, current_dataset=lambda: session.dataset)
        # A tab of the right-hand column: a bottom dock took a third of the height, and the
        # canvas kept ~440 px. The panel lays itself out for a tall, narrow column.
        self.dock = window.add_dock(self.TRAINING_DOCK, self.panel, "right")
        if "Detections" in window.docks:
            window.tabifyDockWidget(window.docks["Detections"], self.dock)
        self.dock.hide()  # a tab only once training is asked for ...
        if self.panel.model.rowCount():  # ... or when there are past runs to look at
            show_when_window_shows(window, self.dock.show)  # a tab, not raised over the others
        self.compare_slot = CompareWindowSlot()  # one comparison window at a time
        self.panel.runStarted.connect(lambda *_: self.show_training())
        self.panel.loadCheckpoint.connect(self.load_checkpoint)
        self.panel.compareCheckpoints.connect(self.compare_checkpoints)

    def build_menu(self, menus) -> None:
        """The Train menu, added to the menu bar ``menus``."""
        train = menus.addMenu("&Train")
        add = self.window.add_action
        add(train, "New training run…", self.new_training_run, ["Ctrl+Shift+T"],
            "Train a model in a background process and watch its losses")
        add(train, "Training runs", self.show_training, [],
            "Show the runs, their loss curves, logs and checkpoints")
        add(train, "Runs folder…", self.choose_runs_root, [],
            "The folder whose run directories the Training panel lists")
        train.addSeparator()
        add(train, "Dataset inspector…", self.open_dataset_inspector, [],
            "Statistics and anchors of the open dataset")
        add(train, "Compare checkpoints…", self.compare_checkpoints_dialog, [],
            "Trace the current image with two checkpoints side by side")

    def show_training(self) -> None:
        window, dock = self.window, self.dock
        first = not dock.isVisible()
        dock.show()
        dock.raise_()
        if first and window.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea:
            window.resizeDocks([dock], [int(window.height() * self.TRAINING_DOCK_SHARE)],
                               Qt.Orientation.Vertical)

    def new_training_run(self) -> None:
        self.show_training()
        self.panel.new_run()

    def choose_runs_root(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.window, "Runs folder", self.panel.runs_root)
        if path:
            self.panel.set_runs_root(path)
            self.show_training()

    def load_checkpoint(self, weights: str, config: str) -> None:
        """Open checkpoint ``weights`` as the model (re-tracing the current image)."""
        from viewer.workers import ModelSpec

        self.document.set_model(ModelSpec(weights=weights, config=config if os.path.isfile(config)
                                 else ""))

    def compare_checkpoints(self, weights_a: str, weights_b: str, config: str) -> None:
        """Trace the image on screen (file, dataset row with its ground truth, or a saved
        trace's image) with both checkpoints in a comparison window."""
        from viewer.shown_image import shown_image
        from viewer.workers import ModelSpec

        shown = shown_image(self.document, self.session)
        if shown is None:
            self.session.report_error("No image to compare on", "Open an image first (File > "
                                      "Open image, Ctrl+O, or a dataset image): the comparison "
                                      "traces it with both checkpoints.")
            return
        from viewer.compare import CompareWindow  # on first use: the window stays light to start

        config = config if os.path.isfile(config) else ""
        specs = (ModelSpec(weights=weights_a, config=config),
                 ModelSpec(weights=weights_b, config=config))
        labels = (checkpoint_label(weights_a), checkpoint_label(weights_b))
        extra = {"source": shown.source} if shown.source is not None else {}
        source_name = getattr(shown.source, "name", None)
        self.compare_slot.open((shown.image_path, source_name, weights_a, weights_b, config),
                               lambda: CompareWindow(shown.image_path, specs, labels,
                                                     parent=self.window, **extra))

    def compare_checkpoints_dialog(self) -> None:
        """Compare the two checkpoints selected in the panel, else two chosen .h5 files."""
        from PySide6.QtWidgets import QFileDialog

        self.show_training()
        if self.panel.compare_selected_checkpoints():
            return
        paths, _ = QFileDialog.getOpenFileNames(
            self.window, "Choose two checkpoints to compare", self.panel.runs_root,
            "Weights (*.h5);;All files (*)")
        if not paths:
            return
        if len(paths) != 2:
            self.session.report_error("Compare checkpoints", f"Choose exactly two weights files "
                                      f"(got {len(paths)}); Ctrl+click selects the second one.")
            return
        config = Path(paths[0]).parent.parent / "config.json"  # <run>/checkpoints/x.h5
        self.compare_checkpoints(paths[0], paths[1], str(config))

    def open_dataset_inspector(self) -> None:
        dataset = self.session.dataset
        if dataset is None:
            self.session.set_status("Open a dataset first (File > Open dataset…, Ctrl+D); the "
                                    "inspector shows its statistics.")
            return
        from viewer.inspector import DatasetInspector  # on first use, like the compare window

        inspector = DatasetInspector(dataset, parent=self.window)
        self.child_windows.append(inspector)
        inspector.show()


def checkpoint_label(weights: str) -> str:
    """"<run>/epoch_0003.h5" for a run's checkpoint, else the file name."""
    path = Path(weights)
    run = path.parent.parent.name if path.parent.name == "checkpoints" else ""
    return f"{run}/{path.name}" if run else path.name
