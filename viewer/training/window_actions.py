"""The main window's training parts: the Training dock, the Train menu, and what a checkpoint
turns into (a model in the pipeline view, or a side-by-side comparison)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt

from viewer.training.panel import TrainingPanel


class TrainingActions:
    """MainWindow's training parts (a mixin): the Training dock, the Train menu, and what
    checkpoints turn into — a model in the pipeline view or a comparison window.

    Uses the window's ``_add_dock``, ``_action``, ``docks``, ``session``, ``image_path``,
    ``recent``, ``set_model``, ``set_status`` and ``show_error``.
    """

    TRAINING_DOCK = "Training"
    TRAINING_DOCK_SHARE = 0.34  # of the window's height, when the dock first shows

    def _build_training_dock(self) -> None:
        self.training = TrainingPanel(self.recent.settings,
                                      current_dataset=lambda: self.session.dataset)
        dock = self._add_dock(self.TRAINING_DOCK, self.training, "bottom")
        dock.hide()  # the canvas keeps the full height until training is asked for
        self.training.runStarted.connect(lambda *_: self.show_training())
        self.training.loadCheckpoint.connect(self.load_checkpoint)
        self.training.compareCheckpoints.connect(self.compare_checkpoints)
        self._child_windows: list = []

    def _build_train_menu(self, menus) -> None:
        train = menus.addMenu("&Train")
        self._action(train, "New training run…", self.new_training_run, ["Ctrl+Shift+T"],
                     "Train a model in a background process and watch its losses")
        self._action(train, "Training runs", self.show_training, [],
                     "Show the runs, their loss curves, logs and checkpoints")
        self._action(train, "Runs folder…", self.choose_runs_root, [],
                     "The folder whose run directories the Training panel lists")
        train.addSeparator()
        self._action(train, "Dataset inspector…", self.open_dataset_inspector, [],
                     "Statistics and anchors of the open dataset")
        self._action(train, "Compare checkpoints…", self.compare_checkpoints_dialog, [],
                     "Trace the current image with two checkpoints side by side")

    def show_training(self) -> None:
        dock = self.docks[self.TRAINING_DOCK]
        first = not dock.isVisible()
        dock.show()
        dock.raise_()
        if first and self.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea:
            self.resizeDocks([dock], [int(self.height() * self.TRAINING_DOCK_SHARE)],
                             Qt.Orientation.Vertical)

    def new_training_run(self) -> None:
        self.show_training()
        self.training.new_run()

    def choose_runs_root(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Runs folder", self.training.runs_root)
        if path:
            self.training.set_runs_root(path)
            self.show_training()

    def load_checkpoint(self, weights: str, config: str) -> None:
        """Open checkpoint ``weights`` as the model (re-tracing the current image)."""
        from viewer.workers import ModelSpec

        self.set_model(ModelSpec(weights=weights, config=config if os.path.isfile(config)
                                 else ""))

    def compare_checkpoints(self, weights_a: str, weights_b: str, config: str) -> None:
        """Trace the current image with both checkpoints in a comparison window."""
        from viewer.workers import ModelSpec

        if not self.image_path:
            self.show_error("No image to compare on", "Open an image first (File > Open image, "
                            "Ctrl+O): the comparison traces it with both checkpoints.")
            return
        try:
            from viewer.compare import CompareWindow
        except ImportError as error:
            self.show_error("Comparison unavailable", f"The compare window cannot open: {error}")
            return
        config = config if os.path.isfile(config) else ""
        specs = (ModelSpec(weights=weights_a, config=config),
                 ModelSpec(weights=weights_b, config=config))
        window = CompareWindow(self.image_path, specs, (checkpoint_label(weights_a),
                                                        checkpoint_label(weights_b)), parent=self)
        self._child_windows.append(window)
        window.show()

    def compare_checkpoints_dialog(self) -> None:
        """Compare the two checkpoints selected in the panel, else two chosen .h5 files."""
        from PySide6.QtWidgets import QFileDialog

        self.show_training()
        if self.training.compare_selected_checkpoints():
            return
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Choose two checkpoints to compare", self.training.runs_root,
            "Weights (*.h5);;All files (*)")
        if not paths:
            return
        if len(paths) != 2:
            self.show_error("Compare checkpoints", f"Choose exactly two weights files (got "
                            f"{len(paths)}); Ctrl+click selects the second one.")
            return
        config = Path(paths[0]).parent.parent / "config.json"  # <run>/checkpoints/x.h5
        self.compare_checkpoints(paths[0], paths[1], str(config))

    def open_dataset_inspector(self) -> None:
        dataset = self.session.dataset
        if dataset is None:
            self.set_status("Open a dataset first (File > Open dataset…, Ctrl+D); the inspector "
                            "shows its statistics.")
            return
        try:
            from viewer.inspector import DatasetInspector
        except ImportError as error:
            self.show_error("Dataset inspector unavailable", f"It cannot open: {error}")
            return
        inspector = DatasetInspector(dataset, parent=self)
        self._child_windows.append(inspector)
        inspector.show()


def checkpoint_label(weights: str) -> str:
    """"<run>/epoch_0003.h5" for a run's checkpoint, else the file name."""
    path = Path(weights)
    run = path.parent.parent.name if path.parent.name == "checkpoints" else ""
    return f"{run}/{path.name}" if run else path.name
