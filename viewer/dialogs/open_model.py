"""Open model dialog: a weights file with an optional config JSON and class names, or the demo."""

from __future__ import annotations

import dataclasses
import os

from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QLabel, QLineEdit, QRadioButton, QVBoxLayout, QWidget)

from viewer.dialogs.browse_row import browse_row
from viewer.recent import RecentFiles
from viewer.workers import ModelSpec, demo_model_spec


# (mrcnn --precision value, what the combo shows); the tooltip says when to use which.
PRECISIONS = (("fp32", "fp32 (float32)"),
              ("bf16", "bf16 (bfloat16)"),
              ("fp16", "fp16 (float16, GPUs)"),
              ("auto", "auto (bf16 where the hardware has it)"))
PRECISION_TIP = ("Compute precision of convolutions and dense layers. bf16 is several times "
                 "faster on CPUs with AMX-BF16 (and faster with AVX512-BF16) and on Ampere+ GPUs, "
                 "with detections that match fp32 closely; elsewhere it is emulated and slower. "
                 "Box arithmetic, NMS, softmax and the weights stay float32 in every precision.")


class OpenModelDialog(QDialog):
    """Choose weights (+ config, class names) or the built-in demo; ``spec()`` gives the choice.
    ``recent`` (viewer.recent.RecentFiles): where Browse… starts, the last folder used."""

    def __init__(self, parent=None, initial: ModelSpec | None = None, demo: ModelSpec | None = None,
                 recent=None):
        super().__init__(parent)
        self.recent = recent if recent is not None else RecentFiles()
        self.setWindowTitle("Open model")
        self.setMinimumWidth(560)
        self._demo = demo if demo is not None else demo_model_spec()
        self.files_radio = QRadioButton("Weights file and config")
        self.demo_radio = QRadioButton("Built-in demo model")
        group = QButtonGroup(self)
        group.addButton(self.files_radio)
        group.addButton(self.demo_radio)
        if self._demo is None:
            self.demo_radio.setEnabled(False)
            self.demo_radio.setToolTip("Not installed: resources/demo/ is missing")
        else:
            self.demo_radio.setToolTip(f"{self._demo.weights}")

        self.files_box = self._build_files_box()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.precision_combo = QComboBox()
        for value, text in PRECISIONS:
            self.precision_combo.addItem(text, value)
        self.precision_combo.setToolTip(PRECISION_TIP)
        precision_row = QFormLayout()
        precision_row.addRow("Precision", self.precision_combo)
        self.message = QLabel()
        self.message.setStyleSheet("color: #c0392b")
        layout = QVBoxLayout(self)
        layout.addWidget(self.files_radio)
        layout.addWidget(self.files_box)
        layout.addWidget(self.demo_radio)
        layout.addLayout(precision_row)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

        self.files_radio.toggled.connect(self._update)
        self.weights_edit.textChanged.connect(self._update)
        if initial is not None and not initial.demo:
            self.weights_edit.setText(initial.weights)
            self.config_edit.setText(initial.config)
            self.names_edit.setText(initial.class_names)
        if initial is not None:
            self.precision_combo.setCurrentIndex(
                max(0, self.precision_combo.findData(initial.precision)))
        use_demo = self._demo is not None and (initial is None or initial.demo)
        (self.demo_radio if use_demo else self.files_radio).setChecked(True)
        self._update()

    def _build_files_box(self) -> QWidget:
        """Weights, config and class-names fields, each with Browse…."""
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("mask_rcnn_*.h5 (Keras HDF5 weights)")
        self.config_edit = QLineEdit()
        self.config_edit.setPlaceholderText("optional: config JSON (else config.json beside the "
                                            "weights or in their run, else inferred from them)")
        self.names_edit = QLineEdit()
        self.names_edit.setPlaceholderText("optional: class names (.txt one per line, or JSON "
                                           "list; else the run's, else defaults)")
        form = QFormLayout()
        for label, edit, pattern in (("Weights", self.weights_edit, "Weights (*.h5 *.hdf5)"),
                                     ("Config", self.config_edit, "Config (*.json)"),
                                     ("Class names", self.names_edit, "Names (*.txt *.json)")):
            form.addRow(label, self._with_browse(edit, pattern))
        box = QWidget()
        box.setLayout(form)
        return box

    def _with_browse(self, edit: QLineEdit, pattern: str) -> QWidget:
        return browse_row(edit, lambda: self._browse(edit, pattern))

    def _browse(self, edit, pattern):
        path, _ = QFileDialog.getOpenFileName(self, "Choose file",
                                              self.recent.start_folder(edit.text().strip()),
                                              pattern + ";;All files (*)")
        if path:
            self.recent.remember_folder(path)
            edit.setText(path)

    def _update(self, *_):
        files = self.files_radio.isChecked()
        self.files_box.setEnabled(files)
        problem = ""
        if files:
            weights = self.weights_edit.text().strip()
            if not weights:
                problem = "Choose a weights file."
            elif not os.path.isfile(weights):
                problem = f"No such file: {weights}"
        self.message.setText(problem)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def precision(self) -> str:
        """The chosen --precision value: "fp32", "bf16", "fp16" or "auto"."""
        return self.precision_combo.currentData()

    def spec(self) -> ModelSpec:
        if self.demo_radio.isChecked() and self._demo is not None:
            return dataclasses.replace(self._demo, precision=self.precision())
        return ModelSpec(weights=self.weights_edit.text().strip(),
                         config=self.config_edit.text().strip(),
                         class_names=self.names_edit.text().strip(),
                         precision=self.precision())
