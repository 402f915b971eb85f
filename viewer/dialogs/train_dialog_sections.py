"""The group boxes of the training dialog (dataset, model config, stages, initial weights,
augmentation, run) and the QSettings memory of their values.

``TrainDialogSections`` is a mixin of ``TrainDialog``: each ``_build_*`` method makes one group
box, sets its input widgets as attributes of the dialog (``dialog.train_json``,
``dialog.stage_epochs``, ...) and connects them to the dialog's reactions (``_refresh_classes``,
``_update_stage_labels``, ...), which live in ``viewer.dialogs.train_dialog``.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QRadioButton, QSpinBox, QStackedWidget, QWidget)

from viewer.dialogs.browse_row import browse_row
from viewer.training.checks import newest_checkpoint, set_widget_value, widget_value
from viewer.training.devices import environment_note

LAYER_CHOICES = ("heads", "3+", "4+", "5+", "all")
INIT_CHOICES = ("none", "demo", "last", "file")
BASE_CHOICES = ("defaults", "demo", "file")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
MAX_STAGES = 3
SETTINGS_GROUP = "train_dialog"
# Input widgets (dialog attributes) whose values are remembered between sessions; the stage
# rows and the init choice are stored besides. The run dir is not: each run gets a new one.
REMEMBERED = ("kind_combo", "shapes_train", "shapes_val", "shapes_size", "train_json",
              "train_images", "val_json", "val_images", "base_combo", "base_file", "backbone",
              "min_dim", "max_dim", "images_per_gpu", "learning_rate", "steps_per_epoch",
              "validation_steps", "train_bn", "init_file", "device_combo", "mixed_precision",
              "seed", "aug_hflip", "aug_vflip", "aug_scale", "aug_scale_low", "aug_scale_high",
              "aug_crop", "aug_crop_value", "aug_brightness", "aug_brightness_value",
              "aug_contrast", "aug_contrast_value", "local_workers", "tb_images")


class TrainDialogSections:
    """``TrainDialog``'s ``_build_*`` methods, one per group box, and its settings memory."""

    def _build_dataset(self) -> QGroupBox:
        self.kind_combo = QComboBox()
        self.kind_combo.addItem("Generated shapes", "shapes")
        self.kind_combo.addItem("COCO JSON + image folder", "coco")
        self.shapes_train = QSpinBox(minimum=1, maximum=1_000_000, value=500)
        self.shapes_val = QSpinBox(minimum=0, maximum=1_000_000, value=50)
        self.shapes_size = QSpinBox(minimum=16, maximum=4096, value=128, suffix=" px")
        self.shapes_size.setToolTip("Side of each generated square image")
        shapes_page = QWidget()
        form = QFormLayout(shapes_page)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Training images", self.shapes_train)
        form.addRow("Validation images", self.shapes_val)
        form.addRow("Image side", self.shapes_size)
        self.train_json, self.train_images = QLineEdit(), QLineEdit()
        self.val_json, self.val_images = QLineEdit(), QLineEdit()
        self.train_json.setPlaceholderText("instances_train.json")
        self.val_json.setPlaceholderText("optional")
        self.val_images.setPlaceholderText("optional (with the validation JSON)")
        coco_page = QWidget()
        form = QFormLayout(coco_page)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Train JSON", _with_browse(self, self.train_json, "json"))
        form.addRow("Train images", _with_browse(self, self.train_images, "folder"))
        form.addRow("Val JSON", _with_browse(self, self.val_json, "json"))
        form.addRow("Val images", _with_browse(self, self.val_images, "folder"))
        self.dataset_pages = QStackedWidget()
        self.dataset_pages.addWidget(shapes_page)
        self.dataset_pages.addWidget(coco_page)
        self.classes_label = QLabel()
        self.classes_label.setWordWrap(True)
        box = QGroupBox("Dataset")
        form = QFormLayout(box)
        form.addRow("Kind", self.kind_combo)
        form.addRow(self.dataset_pages)
        form.addRow("Classes", self.classes_label)
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        self.shapes_size.valueChanged.connect(self._shapes_size_changed)
        self.train_json.editingFinished.connect(self._refresh_classes)
        return box

    def _build_config(self) -> QGroupBox:
        self.base_combo = QComboBox()
        self.base_combo.addItem("Defaults for the dataset", "defaults")
        self.base_combo.addItem("Demo model's config", "demo")
        self.base_combo.addItem("Config JSON file", "file")
        if self.demo_spec is None or not self.demo_spec.config:
            _disable_item(self.base_combo, 1, "No demo model config in resources/demo")
        self.base_file = QLineEdit()
        self.base_file.setPlaceholderText("config.json (Config.to_json)")
        self.base_file_row = _with_browse(self, self.base_file, "json")
        self.backbone = QComboBox()
        self.backbone.addItems(BACKBONES)
        self.min_dim = QSpinBox(minimum=1, maximum=8192, singleStep=64, suffix=" px")
        self.max_dim = QSpinBox(minimum=1, maximum=8192, singleStep=64, suffix=" px")
        self.min_dim.setToolTip("IMAGE_MIN_DIM: the shorter side is scaled up to at least this")
        self.max_dim.setToolTip("IMAGE_MAX_DIM: the longer side is scaled down to at most this; "
                                "a multiple of 64")
        sizes = QWidget()
        row = QHBoxLayout(sizes)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("min"))
        row.addWidget(self.min_dim, 1)
        row.addWidget(QLabel("max"))
        row.addWidget(self.max_dim, 1)
        self.images_per_gpu = QSpinBox(minimum=1, maximum=256)
        self.images_per_gpu.setToolTip("IMAGES_PER_GPU; the batch is this times the GPU count")
        self.learning_rate = QLineEdit()
        self.learning_rate.setToolTip("LEARNING_RATE of SGD with momentum, e.g. 0.001")
        self.steps_per_epoch = QSpinBox(minimum=1, maximum=10_000_000)
        self.validation_steps = QSpinBox(minimum=0, maximum=10_000_000)
        self.validation_steps.setToolTip("VALIDATION_STEPS at the end of each epoch (0: none)")
        self.train_bn = QCheckBox("Train BatchNorm layers (TRAIN_BN)")
        self.train_bn.setToolTip(
            "Off by default: small batches make BN statistics unreliable. Needed when training "
            "from scratch (no init weights); each checkpoint then gets BN statistics averaged "
            f"over {20} batches (--precise-bn).")
        box = QGroupBox("Model config")
        form = QFormLayout(box)
        form.addRow("Base", self.base_combo)
        form.addRow("Base file", self.base_file_row)
        form.addRow("Backbone", self.backbone)
        form.addRow("Image size", sizes)
        form.addRow("Images per GPU", self.images_per_gpu)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Steps per epoch", self.steps_per_epoch)
        form.addRow("Validation steps", self.validation_steps)
        form.addRow(self.train_bn)
        self.config_form = form
        self.base_combo.currentIndexChanged.connect(self._base_changed)
        self.base_file.editingFinished.connect(self._fill_from_base)
        self._base_changed()
        return box

    def _build_stages(self) -> QGroupBox:
        box = QGroupBox("Epochs per stage")
        grid = QGridLayout(box)
        self.stage_checks, self.stage_layers, self.stage_epochs, self.stage_until = [], [], [], []
        defaults = (("heads", 1), ("all", 2), ("all", 1))
        for row, (layers, epochs) in enumerate(defaults):
            check = QCheckBox(f"Stage {row + 1}")
            check.setChecked(row < 2)
            combo = QComboBox()
            combo.addItems(LAYER_CHOICES)
            combo.setCurrentText(layers)
            combo.setToolTip("heads: RPN, FPN and heads only; 3+/4+/5+: also ResNet stage 3/4/5 "
                             "and up; all: every layer")
            spin = QSpinBox(minimum=0, maximum=100_000, value=epochs, suffix=" epochs")
            until = QLabel()
            grid.addWidget(check, row, 0)
            grid.addWidget(combo, row, 1)
            grid.addWidget(spin, row, 2)
            grid.addWidget(until, row, 3)
            check.toggled.connect(self._update_stage_labels)
            spin.valueChanged.connect(self._update_stage_labels)
            self.stage_checks.append(check)
            self.stage_layers.append(combo)
            self.stage_epochs.append(spin)
            self.stage_until.append(until)
        first = self.stage_checks[0]
        first.setChecked(True)
        # Always on, yet drawn enabled: a greyed "Stage 1" would read as "stage 1 is off".
        first.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        first.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        first.setToolTip("The first stage always runs")
        grid.setColumnStretch(3, 1)
        note = QLabel("Each stage continues the run from the previous stage's last checkpoint.")
        note.setWordWrap(True)
        note.setStyleSheet("color: gray")
        grid.addWidget(note, MAX_STAGES, 0, 1, 4)
        return box

    def _build_init(self) -> QGroupBox:
        self.init_group = QButtonGroup(self)
        labels = {"none": "None (random)", "demo": "Demo model", "last": "Last checkpoint",
                  "file": "File"}
        row = QHBoxLayout()
        self.init_buttons = {}
        for choice in INIT_CHOICES:
            button = QRadioButton(labels[choice])
            self.init_group.addButton(button)
            self.init_buttons[choice] = button
            row.addWidget(button)
        row.addStretch(1)
        self.init_buttons["none"].setChecked(True)
        if self.demo_spec is None:
            self.init_buttons["demo"].setEnabled(False)
            self.init_buttons["demo"].setToolTip("No demo model in resources/demo")
        self.last_checkpoint = newest_checkpoint(self.runs_root)
        if self.last_checkpoint is None:
            self.init_buttons["last"].setEnabled(False)
            self.init_buttons["last"].setToolTip(f"No run under {self.runs_root} has a checkpoint")
        else:
            self.init_buttons["last"].setToolTip(self.last_checkpoint)
        self.init_file = QLineEdit()
        self.init_file.setPlaceholderText("weights .h5 (matterport layout)")
        self.init_file_row = _with_browse(self, self.init_file, "h5")
        self.init_file.editingFinished.connect(self._refresh_init)
        self.init_info = QLabel()
        self.init_info.setWordWrap(True)
        self.exclude = QLineEdit()
        self.exclude.setToolTip("Layers not loaded from the initial weights (space separated); "
                                "filled in when the file's class count differs from the dataset's")
        box = QGroupBox("Initial weights")
        form = QFormLayout(box)
        form.addRow(row)
        form.addRow("File", self.init_file_row)
        form.addRow(self.init_info)
        form.addRow("Exclude", self.exclude)
        for button in self.init_buttons.values():
            button.toggled.connect(self._refresh_init)
        return box

    def _build_augmentation(self) -> QGroupBox:
        self.aug_hflip = QCheckBox("Horizontal flip (p 0.5)")
        self.aug_vflip = QCheckBox("Vertical flip (p 0.5)")
        self.aug_scale = QCheckBox("Zoom")
        self.aug_scale_low = _double_spin(0.1, 10.0, 0.8, 0.05)
        self.aug_scale_high = _double_spin(0.1, 10.0, 1.2, 0.05)
        self.aug_crop = QCheckBox("Crop up to")
        self.aug_crop_value = _double_spin(0.0, 0.45, 0.1, 0.05)
        self.aug_crop_value.setToolTip("Fraction of each side that may be cut off")
        self.aug_brightness = QCheckBox("Brightness ±")
        self.aug_brightness_value = _double_spin(0.0, 1.0, 0.1, 0.05)
        self.aug_contrast = QCheckBox("Contrast ±")
        self.aug_contrast_value = _double_spin(0.0, 0.95, 0.2, 0.05)
        box = QGroupBox("Augmentation")
        grid = QGridLayout(box)
        grid.addWidget(self.aug_hflip, 0, 0, 1, 2)
        grid.addWidget(self.aug_vflip, 0, 2, 1, 2)
        grid.addWidget(self.aug_scale, 1, 0)
        grid.addWidget(self.aug_scale_low, 1, 1)
        grid.addWidget(QLabel("to"), 1, 2)
        grid.addWidget(self.aug_scale_high, 1, 3)
        grid.addWidget(self.aug_crop, 2, 0)
        grid.addWidget(self.aug_crop_value, 2, 1)
        grid.addWidget(self.aug_brightness, 3, 0)
        grid.addWidget(self.aug_brightness_value, 3, 1)
        grid.addWidget(self.aug_contrast, 4, 0)
        grid.addWidget(self.aug_contrast_value, 4, 1)
        grid.setColumnStretch(4, 1)
        return box

    def _build_run(self) -> QGroupBox:
        self.device_combo = QComboBox()
        for device in self.devices:
            self.device_combo.addItem(device.label)
        self.device_combo.setToolTip(environment_note() or "Sets CUDA_VISIBLE_DEVICES of the "
                                     "training process; several GPUs train with MirroredStrategy")
        # The first GPU when there is one; "all GPUs" is a deliberate choice.
        self.device_combo.setCurrentIndex(1 if len(self.devices) > 1 else 0)
        self.mixed_precision = QCheckBox("Mixed precision (float16 compute)")
        self.mixed_precision.setToolTip("Faster on GPUs with tensor cores; slower on the CPU")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Seed of data order, generated shapes and initial weights")
        self.run_dir = QLineEdit()
        self.local_workers = QSpinBox(minimum=1, maximum=8)
        self.local_workers.setToolTip(
            "Workers on this machine (--local-workers): more than 1 trains with "
            "MultiWorkerMirroredStrategy over 127.0.0.1, one replica per worker; the first "
            "writes the run. To try multi-worker training; it is not faster on one CPU.")
        self.tb_images = QSpinBox(minimum=0, maximum=32)
        self.tb_images.setToolTip("Validation images whose GT and detections go to TensorBoard "
                                  "each epoch (--tb-images; 0: none)")
        box = QGroupBox("Run")
        form = QFormLayout(box)
        form.addRow("Device", self.device_combo)
        form.addRow(self.mixed_precision)
        form.addRow("Seed", self.seed)
        form.addRow("Local workers", self.local_workers)
        form.addRow("TensorBoard images", self.tb_images)
        form.addRow("Run dir", _with_browse(self, self.run_dir, "folder"))
        return box

    # ---- settings ----------------------------------------------------------------------------

    def _remembered(self) -> dict:
        """{settings key: input widget} of every value the dialog remembers."""
        widgets = {name: getattr(self, name) for name in REMEMBERED}
        for index in range(MAX_STAGES):
            widgets[f"stage{index}_on"] = self.stage_checks[index]
            widgets[f"stage{index}_layers"] = self.stage_layers[index]
            widgets[f"stage{index}_epochs"] = self.stage_epochs[index]
        return widgets

    def _save_settings(self):
        self.settings.beginGroup(SETTINGS_GROUP)
        for key, widget in self._remembered().items():
            self.settings.setValue(key, widget_value(widget))
        self.settings.setValue("init", self.init_choice())
        self.settings.endGroup()
        self.settings.sync()

    def _restore_settings(self):
        self.settings.beginGroup(SETTINGS_GROUP)
        try:
            stored = {key: self.settings.value(key) for key in self.settings.childKeys()}
        finally:
            self.settings.endGroup()
        if not stored:
            return
        remembered = self._remembered()
        # The dataset and base first: changing them refills the config fields restored after.
        for key in ("kind_combo", "shapes_size", "base_file", "base_combo"):
            if key in stored:
                set_widget_value(remembered[key], stored[key])
        self._fill_from_base()
        for key, widget in remembered.items():
            if key in stored and key not in ("kind_combo", "base_combo"):
                set_widget_value(widget, stored[key])
        button = self.init_buttons.get(str(stored.get("init", "none")))
        if button is not None and button.isEnabled():
            button.setChecked(True)


def _disable_item(combo: QComboBox, index: int, tooltip: str):
    item = combo.model().item(index)
    item.setEnabled(False)
    item.setToolTip(tooltip)


def _double_spin(low, high, value, step) -> QDoubleSpinBox:
    spin = QDoubleSpinBox(minimum=low, maximum=high, value=value, singleStep=step, decimals=2)
    return spin


def _with_browse(dialog, edit: QLineEdit, kind: str) -> QWidget:
    """``edit`` with a Browse… button; ``kind`` is "folder", "json" or "h5"."""
    def browse():
        start = edit.text() or os.getcwd()
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(dialog, "Choose a folder", start)
        else:
            pattern = "JSON (*.json)" if kind == "json" else "HDF5 weights (*.h5 *.hdf5)"
            path, _ = QFileDialog.getOpenFileName(dialog, "Choose a file", start,
                                                  f"{pattern};;All files (*)")
        if path:
            edit.setText(path)
            edit.editingFinished.emit()

    return browse_row(edit, browse)
