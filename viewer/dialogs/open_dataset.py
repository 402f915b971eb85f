"""Open dataset dialog: a COCO instances JSON with its image folder, or generated Shapes."""

from __future__ import annotations

import os

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel,
                               QLineEdit, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from viewer.dialogs.browse_row import browse_row
from viewer.recent import RecentFiles
from viewer.datasets import SHAPES_DEFAULT_COUNT, SHAPES_DEFAULT_SIZE, DatasetSpec

COCO_TAB, SHAPES_TAB = 0, 1


class OpenDatasetDialog(QDialog):
    """Choose a dataset; ``spec()`` gives the choice as a ``DatasetSpec``. ``recent``
    (viewer.recent.RecentFiles): where Browse… starts, the last folder used."""

    def __init__(self, parent=None, initial: DatasetSpec | None = None, recent=None):
        super().__init__(parent)
        self.recent = recent if recent is not None else RecentFiles()
        self.setWindowTitle("Open dataset")
        self.setMinimumWidth(560)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_coco(), "COCO JSON + images")
        self.tabs.addTab(self._build_shapes(), "Generated shapes")
        self.message = QLabel()
        self.message.setStyleSheet("color: #c0392b")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Images of a dataset open with their ground truth: GT boxes and "
                                "masks, RPN targets and recall show beside the predictions."))
        layout.addWidget(self.tabs)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        if initial is not None:
            self._set(initial)
        self.tabs.currentChanged.connect(self._update)
        self._update()

    def _build_coco(self) -> QWidget:
        self.annotations_edit = QLineEdit()
        self.annotations_edit.setPlaceholderText("instances_*.json (COCO format)")
        self.image_dir_edit = QLineEdit()
        self.image_dir_edit.setPlaceholderText("folder the JSON's file_name entries are in")
        for edit in (self.annotations_edit, self.image_dir_edit):
            edit.textChanged.connect(self._update)
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Annotations", self._with_browse(self.annotations_edit, folder=False))
        form.addRow("Image folder", self._with_browse(self.image_dir_edit, folder=True))
        return page

    def _build_shapes(self) -> QWidget:
        self.count_box = QSpinBox(minimum=1, maximum=10000, value=SHAPES_DEFAULT_COUNT)
        self.size_box = QSpinBox(minimum=16, maximum=2048, value=SHAPES_DEFAULT_SIZE, suffix=" px")
        self.size_box.setToolTip("Width and height of each generated image")
        self.seed_box = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed_box.setToolTip("The same seed gives the same images")
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Images", self.count_box)
        form.addRow("Size", self.size_box)
        form.addRow("Seed", self.seed_box)
        form.addRow(QLabel("Squares, circles and triangles on a plain background "
                           "(class names: BG, square, circle, triangle)."))
        return page

    def _with_browse(self, edit: QLineEdit, folder: bool) -> QWidget:
        return browse_row(edit, lambda: self._browse(edit, folder))

    def _browse(self, edit, folder):
        start = self.recent.start_folder(edit.text().strip())
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Choose image folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose COCO annotations", start,
                                                  "COCO JSON (*.json);;All files (*)")
            if path and not self.image_dir_edit.text():
                # COCO layouts put images beside or below the annotations folder; a start.
                self.image_dir_edit.setText(os.path.dirname(path))
        if path:
            self.recent.remember_folder(path)
            edit.setText(path)

    def _set(self, spec: DatasetSpec) -> None:
        if spec.kind == "coco":
            self.annotations_edit.setText(spec.annotations)
            self.image_dir_edit.setText(spec.image_dir)
            self.tabs.setCurrentIndex(COCO_TAB)
        else:
            self.count_box.setValue(spec.count)
            self.size_box.setValue(spec.height)
            self.seed_box.setValue(spec.seed)
            self.tabs.setCurrentIndex(SHAPES_TAB)

    def _update(self, *_):
        try:
            self.spec().check()
            problem = ""
        except ValueError as error:
            problem = str(error)
        self.message.setText(problem)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def spec(self) -> DatasetSpec:
        if self.tabs.currentIndex() == COCO_TAB:
            return DatasetSpec("coco", annotations=self.annotations_edit.text().strip(),
                               image_dir=self.image_dir_edit.text().strip())
        size = self.size_box.value()
        return DatasetSpec("shapes", count=self.count_box.value(), height=size, width=size,
                           seed=self.seed_box.value())
