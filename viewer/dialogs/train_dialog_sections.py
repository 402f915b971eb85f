"""The group boxes of the training dialog (dataset, model config, stages, initial weights,
augmentation, run) and the QSettings memory of their values.

Each ``build_*`` function makes one group box and takes what it needs explicitly: ``form``, the
object that receives the section's input widgets as attributes (``form.train_json``,
``form.stage_epochs``, ...; ``TrainDialog`` passes itself), the data it shows (devices, the demo
model, the runs folder) and the reactions to connect (``on_*`` callables). ``save_settings`` /
``restore_settings`` remember the widgets ``REMEMBERED`` names on ``form``.
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
              "aug_contrast", "aug_contrast_value", "aug_albumentations", "local_workers",
              "tb_images", "precise_bn")


def build_dataset(form, on_kind_changed, on_size_changed, on_train_json_changed) -> QGroupBox:
    """Dataset kind, generated-shapes counts and size, COCO files and the classes line."""
    form.kind_combo = QComboBox()
    form.kind_combo.addItem("Generated shapes", "shapes")
    form.kind_combo.addItem("COCO JSON + image folder", "coco")
    form.shapes_train = QSpinBox(minimum=1, maximum=1_000_000, value=500)
    form.shapes_val = QSpinBox(minimum=0, maximum=1_000_000, value=50)
    form.shapes_size = QSpinBox(minimum=16, maximum=4096, value=128, suffix=" px")
    form.shapes_size.setToolTip("Side of each generated square image")
    shapes_page = QWidget()
    rows = QFormLayout(shapes_page)
    rows.setContentsMargins(0, 0, 0, 0)
    rows.addRow("Training images", form.shapes_train)
    rows.addRow("Validation images", form.shapes_val)
    rows.addRow("Image side", form.shapes_size)
    form.train_json, form.train_images = QLineEdit(), QLineEdit()
    form.val_json, form.val_images = QLineEdit(), QLineEdit()
    form.train_json.setPlaceholderText("instances_train.json")
    form.val_json.setPlaceholderText("optional")
    form.val_images.setPlaceholderText("optional (with the validation JSON)")
    coco_page = QWidget()
    rows = QFormLayout(coco_page)
    rows.setContentsMargins(0, 0, 0, 0)
    rows.addRow("Train JSON", _with_browse(form, form.train_json, "json"))
    rows.addRow("Train images", _with_browse(form, form.train_images, "folder"))
    rows.addRow("Val JSON", _with_browse(form, form.val_json, "json"))
    rows.addRow("Val images", _with_browse(form, form.val_images, "folder"))
    form.dataset_pages = QStackedWidget()
    form.dataset_pages.addWidget(shapes_page)
    form.dataset_pages.addWidget(coco_page)
    form.classes_label = QLabel()
    form.classes_label.setWordWrap(True)
    box = QGroupBox("Dataset")
    rows = QFormLayout(box)
    rows.addRow("Kind", form.kind_combo)
    rows.addRow(form.dataset_pages)
    rows.addRow("Classes", form.classes_label)
    form.kind_combo.currentIndexChanged.connect(on_kind_changed)
    form.shapes_size.valueChanged.connect(on_size_changed)
    form.train_json.editingFinished.connect(on_train_json_changed)
    return box


def build_config(form, demo_spec, on_base_changed, on_base_file_changed) -> QGroupBox:
    """The config base (dataset defaults, demo config, a file) and the fields people change."""
    form.base_combo = QComboBox()
    form.base_combo.addItem("Defaults for the dataset", "defaults")
    form.base_combo.addItem("Demo model's config", "demo")
    form.base_combo.addItem("Config JSON file", "file")
    if demo_spec is None or not demo_spec.config:
        _disable_item(form.base_combo, 1, "No demo model config in resources/demo")
    form.base_file = QLineEdit()
    form.base_file.setPlaceholderText("config.json (Config.to_json)")
    form.base_file_row = _with_browse(form, form.base_file, "json")
    form.backbone = QComboBox()
    form.backbone.addItems(BACKBONES)
    form.min_dim = QSpinBox(minimum=1, maximum=8192, singleStep=64, suffix=" px")
    form.max_dim = QSpinBox(minimum=1, maximum=8192, singleStep=64, suffix=" px")
    form.min_dim.setToolTip("IMAGE_MIN_DIM: the shorter side is scaled up to at least this")
    form.max_dim.setToolTip("IMAGE_MAX_DIM: the longer side is scaled down to at most this; "
                            "a multiple of 64")
    sizes = QWidget()
    row = QHBoxLayout(sizes)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(QLabel("min"))
    row.addWidget(form.min_dim, 1)
    row.addWidget(QLabel("max"))
    row.addWidget(form.max_dim, 1)
    form.images_per_gpu = QSpinBox(minimum=1, maximum=256)
    form.images_per_gpu.setToolTip("IMAGES_PER_GPU; the batch is this times the GPU count")
    form.learning_rate = QLineEdit()
    form.learning_rate.setToolTip("LEARNING_RATE of SGD with momentum, e.g. 0.001")
    form.steps_per_epoch = QSpinBox(minimum=1, maximum=10_000_000)
    form.validation_steps = QSpinBox(minimum=0, maximum=10_000_000)
    form.validation_steps.setToolTip("VALIDATION_STEPS at the end of each epoch (0: none)")
    form.train_bn = QCheckBox("Train BatchNorm layers (TRAIN_BN)")
    form.train_bn.setToolTip(
        "On when training from scratch (initial weights: None), where BN must learn; set "
        "Precise BN so each checkpoint gets BN statistics averaged over that many batches. "
        "Off when starting from a trained model: small batches make BN statistics unreliable.")
    box = QGroupBox("Model config")
    rows = QFormLayout(box)
    rows.addRow("Base", form.base_combo)
    rows.addRow("Base file", form.base_file_row)
    rows.addRow("Backbone", form.backbone)
    rows.addRow("Image size", sizes)
    rows.addRow("Images per GPU", form.images_per_gpu)
    rows.addRow("Learning rate", form.learning_rate)
    rows.addRow("Steps per epoch", form.steps_per_epoch)
    rows.addRow("Validation steps", form.validation_steps)
    rows.addRow(form.train_bn)
    form.config_form = rows
    form.base_combo.currentIndexChanged.connect(on_base_changed)
    form.base_file.editingFinished.connect(on_base_file_changed)
    on_base_changed()
    return box


def build_stages(form, on_stages_changed) -> QGroupBox:
    """Up to MAX_STAGES (layers, epochs) rows; the first always runs."""
    box = QGroupBox("Epochs per stage")
    grid = QGridLayout(box)
    form.stage_checks, form.stage_layers, form.stage_epochs, form.stage_until = [], [], [], []
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
        check.toggled.connect(on_stages_changed)
        spin.valueChanged.connect(on_stages_changed)
        form.stage_checks.append(check)
        form.stage_layers.append(combo)
        form.stage_epochs.append(spin)
        form.stage_until.append(until)
    first = form.stage_checks[0]
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


def build_init(form, demo_spec, runs_root, on_init_changed) -> QGroupBox:
    """Initial weights: none, the demo model, the newest checkpoint under ``runs_root``, a file."""
    form.init_group = QButtonGroup(form)
    labels = {"none": "None (random)", "demo": "Demo model", "last": "Last checkpoint",
              "file": "File"}
    row = QHBoxLayout()
    form.init_buttons = {}
    for choice in INIT_CHOICES:
        button = QRadioButton(labels[choice])
        form.init_group.addButton(button)
        form.init_buttons[choice] = button
        row.addWidget(button)
    row.addStretch(1)
    form.init_buttons["none"].setChecked(True)
    if demo_spec is None:
        form.init_buttons["demo"].setEnabled(False)
        form.init_buttons["demo"].setToolTip("No demo model in resources/demo")
    form.last_checkpoint = newest_checkpoint(runs_root)
    if form.last_checkpoint is None:
        form.init_buttons["last"].setEnabled(False)
        form.init_buttons["last"].setToolTip(f"No run under {runs_root} has a checkpoint")
    else:
        form.init_buttons["last"].setToolTip(form.last_checkpoint)
    form.init_file = QLineEdit()
    form.init_file.setPlaceholderText("weights .h5 (matterport layout)")
    form.init_file_row = _with_browse(form, form.init_file, "h5")
    form.init_file.editingFinished.connect(on_init_changed)
    form.init_info = QLabel()
    form.init_info.setWordWrap(True)
    form.exclude = QLineEdit()
    form.exclude.setToolTip("Layers not loaded from the initial weights (space separated); "
                            "filled in when the file's class count differs from the dataset's")
    box = QGroupBox("Initial weights")
    rows = QFormLayout(box)
    rows.addRow(row)
    rows.addRow("File", form.init_file_row)
    rows.addRow(form.init_info)
    rows.addRow("Exclude", form.exclude)
    for button in form.init_buttons.values():
        button.toggled.connect(on_init_changed)
    return box


def build_augmentation(form) -> QGroupBox:
    """Flips, zoom, crop, brightness and contrast switches with their amounts."""
    form.aug_hflip = QCheckBox("Horizontal flip (p 0.5)")
    form.aug_vflip = QCheckBox("Vertical flip (p 0.5)")
    form.aug_scale = QCheckBox("Zoom")
    form.aug_scale_low = _double_spin(0.1, 10.0, 0.8, 0.05)
    form.aug_scale_high = _double_spin(0.1, 10.0, 1.2, 0.05)
    form.aug_crop = QCheckBox("Crop up to")
    form.aug_crop_value = _double_spin(0.0, 0.45, 0.1, 0.05)
    form.aug_crop_value.setToolTip("Fraction of each side that may be cut off")
    form.aug_brightness = QCheckBox("Brightness ±")
    form.aug_brightness_value = _double_spin(0.0, 1.0, 0.1, 0.05)
    form.aug_contrast = QCheckBox("Contrast ±")
    form.aug_contrast_value = _double_spin(0.0, 0.95, 0.2, 0.05)
    box = QGroupBox("Augmentation")
    grid = QGridLayout(box)
    grid.addWidget(form.aug_hflip, 0, 0, 1, 2)
    grid.addWidget(form.aug_vflip, 0, 2, 1, 2)
    grid.addWidget(form.aug_scale, 1, 0)
    grid.addWidget(form.aug_scale_low, 1, 1)
    grid.addWidget(QLabel("to"), 1, 2)
    grid.addWidget(form.aug_scale_high, 1, 3)
    grid.addWidget(form.aug_crop, 2, 0)
    grid.addWidget(form.aug_crop_value, 2, 1)
    grid.addWidget(form.aug_brightness, 3, 0)
    grid.addWidget(form.aug_brightness_value, 3, 1)
    grid.addWidget(form.aug_contrast, 4, 0)
    grid.addWidget(form.aug_contrast_value, 4, 1)
    # An albumentations pipeline replaces the options above (mrcnn train
    # --augment-albumentations); empty keeps them.
    form.aug_albumentations = QLineEdit()
    form.aug_albumentations.setPlaceholderText("albumentations: module:attr or pipeline.json")
    form.aug_albumentations.setToolTip("An albumentations pipeline instead of the options "
                                       "above: 'package.module:attribute' or a JSON/YAML "
                                       "file written by albumentations.save")
    grid.addWidget(form.aug_albumentations, 5, 0, 1, 4)
    grid.setColumnStretch(4, 1)
    return box


def build_run(form, devices) -> QGroupBox:
    """Device (one of ``devices``), mixed precision, seed and run directory."""
    form.device_combo = QComboBox()
    for device in devices:
        form.device_combo.addItem(device.label)
    form.device_combo.setToolTip(environment_note() or "Sets CUDA_VISIBLE_DEVICES of the "
                                 "training process; several GPUs train with MirroredStrategy")
    # The first GPU when there is one; "all GPUs" is a deliberate choice.
    form.device_combo.setCurrentIndex(1 if len(devices) > 1 else 0)
    form.mixed_precision = QCheckBox("Mixed precision (bf16 / fp16 where the hardware has it)")
    form.mixed_precision.setToolTip(
        "mrcnn train --precision auto: bfloat16 on CPUs with AMX-BF16 or AVX512-BF16 and on "
        "Ampere+ GPUs, float16 with loss scaling on older tensor-core GPUs, else float32")
    form.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
    form.seed.setToolTip("Seed of data order, generated shapes and initial weights")
    form.run_dir = QLineEdit()
    form.local_workers = QSpinBox(minimum=1, maximum=8)
    form.local_workers.setToolTip(
        "Workers on this machine (--local-workers): more than 1 trains with "
        "MultiWorkerMirroredStrategy over 127.0.0.1, one replica per worker; the first "
        "writes the run. To try multi-worker training; it is not faster on one CPU.")
    form.tb_images = QSpinBox(minimum=0, maximum=32)
    form.tb_images.setToolTip("Validation images whose GT and detections go to TensorBoard "
                              "each epoch (--tb-images; 0: none)")
    box = QGroupBox("Run")
    rows = QFormLayout(box)
    rows.addRow("Device", form.device_combo)
    rows.addRow(form.mixed_precision)
    rows.addRow("Seed", form.seed)
    rows.addRow("Local workers", form.local_workers)
    rows.addRow("TensorBoard images", form.tb_images)
    rows.addRow("Run dir", _with_browse(form, form.run_dir, "folder"))
    return box

# ---- settings ----------------------------------------------------------------------------


def remembered_widgets(form) -> dict:
    """{settings key: input widget} of every value the dialog remembers."""
    widgets = {name: getattr(form, name) for name in REMEMBERED}
    for index in range(MAX_STAGES):
        widgets[f"stage{index}_on"] = form.stage_checks[index]
        widgets[f"stage{index}_layers"] = form.stage_layers[index]
        widgets[f"stage{index}_epochs"] = form.stage_epochs[index]
    return widgets


def save_settings(settings, form, init_choice: str) -> None:
    """Remember ``form``'s values (and the initial-weights choice) in ``settings``."""
    settings.beginGroup(SETTINGS_GROUP)
    for key, widget in remembered_widgets(form).items():
        settings.setValue(key, widget_value(widget))
    settings.setValue("init", init_choice)
    settings.endGroup()
    settings.sync()


def restore_settings(settings, form, refill_from_base) -> None:
    """Put the remembered values back into ``form``; ``refill_from_base()`` runs between the
    dataset / base choice and the config fields, which it would otherwise overwrite."""
    settings.beginGroup(SETTINGS_GROUP)
    try:
        stored = {key: settings.value(key) for key in settings.childKeys()}
    finally:
        settings.endGroup()
    if not stored:
        return
    remembered = remembered_widgets(form)
    # The dataset and base first: changing them refills the config fields restored after.
    for key in ("kind_combo", "shapes_size", "base_file", "base_combo"):
        if key in stored:
            set_widget_value(remembered[key], stored[key])
    refill_from_base()
    for key, widget in remembered.items():
        if key in stored and key not in ("kind_combo", "base_combo"):
            set_widget_value(widget, stored[key])
    button = form.init_buttons.get(str(stored.get("init", "none")))
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
        from viewer.dialog_folders import last_folder, remember_folder

        settings = getattr(dialog, "settings", None)
        current = edit.text().strip()
        start = current if current and os.path.exists(current) else last_folder(settings)
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(dialog, "Choose a folder", start)
        else:
            pattern = "JSON (*.json)" if kind == "json" else "HDF5 weights (*.h5 *.hdf5)"
            path, _ = QFileDialog.getOpenFileName(dialog, "Choose a file", start,
                                                  f"{pattern};;All files (*)")
        if path:
            # A folder is remembered as itself (remember_folder keeps the folder of a file path).
            remember_folder(settings, os.path.join(path, "chosen") if kind == "folder" else path)
            edit.setText(path)
            edit.editingFinished.emit()

    return browse_row(edit, browse)


# ---- the fields as mrcnn train arguments ----------------------------------------------------


def dataset_args(form, kind: str) -> list[str]:
    """``--dataset`` and its files or generated-shapes counts."""
    if kind == "shapes":
        return ["--dataset", "shapes", "--shapes-train", str(form.shapes_train.value()),
                "--shapes-val", str(form.shapes_val.value()),
                "--shapes-size", str(form.shapes_size.value())]
    args = ["--dataset", "coco", "--train-json", form.train_json.text().strip(),
            "--train-images", form.train_images.text().strip()]
    if form.val_json.text().strip():
        args += ["--val-json", form.val_json.text().strip(),
                 "--val-images", form.val_images.text().strip()]
    return args


def run_args(form) -> list[str]:
    """The Run box's TensorBoard images, local workers and seed."""
    args = []
    if form.tb_images.value():
        args += ["--tb-images", str(form.tb_images.value())]
    if form.local_workers.value() > 1:
        args += ["--local-workers", str(form.local_workers.value())]
    return args + ["--seed", str(form.seed.value())]
