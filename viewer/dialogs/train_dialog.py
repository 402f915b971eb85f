"""Training dialog: everything one ``python -m mrcnn.train`` run needs, checked before it starts.

The dialog edits a config (a base, i.e. the dataset's defaults, the demo model's config or a
JSON file, plus the fields people change), picks data, initial weights, device and run directory,
and turns them into a ``TrainRequest`` whose ``args`` ``mrcnn.train.build_parser()`` parses.
The CLI trains one layer selection per process; the stages after the first one (matterport's
"heads, then all") are continued runs of the same directory: ``stages()`` lists them and
``viewer.training.stages.stage_args`` builds each one's request.

``train_dialog_sections`` builds the group boxes and remembers their values between sessions;
``viewer.training.checks`` reads class counts and finds the newest checkpoint. Nothing here
imports TensorFlow: class counts come from the COCO JSON (json) and from the weights file (h5py),
the device list from the driver (``viewer.training.devices``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QSizePolicy,
                               QVBoxLayout)

from viewer.dialogs import train_dialog_augmentation as augmentation_choices
from viewer.dialogs import train_dialog_sections as sections
from viewer.dialogs.train_dialog_defaults import (PRECISE_BN_BATCHES, build_precise_bn,
                                                  connect_init_defaults, precise_bn_args,
                                                  remembered_init)
from viewer.dialogs.train_dialog_files import (REQUESTED_CONFIG, coco_folder_problems,
                                               run_dir_problems, write_requested_config)
from viewer.dialogs.train_dialog_sections import (BACKBONES, BASE_CHOICES, INIT_CHOICES,
                                                  LAYER_CHOICES, MAX_STAGES, REMEMBERED,
                                                  SETTINGS_GROUP)
from viewer.training.checks import (CLASS_COUNT_LAYERS, coco_class_count,
                                    set_widget_value, weights_class_count, widget_value)
from viewer.training.devices import Device, list_devices
from viewer.training.request import TrainRequest
from viewer.training.stages import stage_args

# The names this module had before the split stay importable from here.
__all__ = ["TrainDialog", "stage_args", "coco_class_count", "weights_class_count",
           "widget_value", "set_widget_value", "CLASS_COUNT_LAYERS", "REQUESTED_CONFIG",
           "SHAPES_CLASS_COUNT", "LAYER_CHOICES", "INIT_CHOICES", "BASE_CHOICES", "BACKBONES",
           "MAX_STAGES", "REMEMBERED", "SETTINGS_GROUP"]

SHAPES_CLASS_COUNT = 4  # BG, square, circle, triangle
__all__ += ["PRECISE_BN_BATCHES"]  # now in train_dialog_defaults


class TrainDialog(QDialog):
    """Choose what to train; ``exec()``, then ``request()`` and ``stages()``."""

    def __init__(self, parent=None, runs_root: str = "runs", current_dataset=None, settings=None,
                 devices: list[Device] | None = None, demo_spec=False):
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setMinimumWidth(960)
        self.runs_root = str(runs_root)
        self.current_dataset = current_dataset
        if settings is None:
            from viewer.recent import default_settings

            settings = default_settings()
        self.settings = settings
        self.devices = devices if devices is not None else list_devices()
        if demo_spec is False:
            from viewer.workers import demo_model_spec

            demo_spec = demo_model_spec()
        self.demo_spec = demo_spec
        self._filling = False
        self._auto_run_dir = ""
        self._build()  # shows the base config's values
        remembered = remembered_init(self.settings, SETTINGS_GROUP)
        sections.restore_settings(self.settings, self, self._fill_from_base)
        # Stage 1, TRAIN_BN and precise BN follow the initial weights; remembered values win
        # unless the remembered weights are gone (e.g. no checkpoint left for "last").
        connect_init_defaults(self, self.init_buttons, self.base_combo,
                              remembered != self.init_choice())
        if current_dataset is not None:
            self._prefill_dataset(current_dataset.spec)
        self._show_dataset_page()
        self._set_run_dir_default()
        self._refresh_classes()
        self._update_stage_labels()

    # ---- building ----------------------------------------------------------------------------

    def _build(self):
        left, right = QVBoxLayout(), QVBoxLayout()
        # Each section puts its input widgets on this dialog (the form) and connects them to
        # the reactions passed here.
        left.addWidget(sections.build_dataset(self, self._kind_changed, self._shapes_size_changed,
                                              self._refresh_classes))
        left.addWidget(sections.build_config(self, self.demo_spec, self._base_changed,
                                             self._fill_from_base))
        build_precise_bn(self)
        left.addWidget(sections.build_stages(self, self._update_stage_labels))
        left.addStretch(1)
        right.addWidget(sections.build_init(self, self.demo_spec, self.runs_root,
                                            self._refresh_init))
        right.addWidget(sections.build_augmentation(self))
        right.addWidget(sections.build_run(self, self.devices))
        right.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        self.problems_label = QLabel()
        self.problems_label.setStyleSheet("color: #c0392b")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton("Start training",
                                                   QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)

    # ---- reacting to edits -------------------------------------------------------------------

    def kind(self) -> str:
        return self.kind_combo.currentData()

    def _kind_changed(self, *_):
        self._show_dataset_page()
        if self.base_combo.currentData() == "defaults":
            self._fill_from_base()
        self._set_run_dir_default()
        self._refresh_classes()

    def _show_dataset_page(self):
        current = self.kind_combo.currentIndex()
        self.dataset_pages.setCurrentIndex(current)
        for index in range(self.dataset_pages.count()):
            # Only the shown page counts for the size, so shapes leaves no COCO-sized gap.
            policy = (QSizePolicy.Policy.Preferred if index == current
                      else QSizePolicy.Policy.Ignored)
            self.dataset_pages.widget(index).setSizePolicy(policy, policy)
        self.dataset_pages.adjustSize()

    def _shapes_size_changed(self, *_):
        if self.base_combo.currentData() == "defaults" and not self._filling:
            side = max(64, -(-self.shapes_size.value() // 64) * 64)
            self.min_dim.setValue(side)
            self.max_dim.setValue(side)

    def _base_changed(self, *_):
        self.config_form.setRowVisible(self.base_file_row, self.base_combo.currentData() == "file")
        self._fill_from_base()

    def base_values(self) -> dict:
        """The base config's fields (before the dialog's edits); ValueError names the source."""
        from mrcnn.runs import read_json
        from mrcnn.model_files import default_config_values

        base = self.base_combo.currentData()
        if base == "defaults":
            return dict(default_config_values(self.kind(), self.shapes_size.value()))
        path = self.demo_spec.config if base == "demo" and self.demo_spec else self.base_file.text()
        try:
            values = read_json(path.strip(), "config file")
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(str(e)) from None
        if not isinstance(values, dict):
            raise ValueError(f"config file {path}: expected a JSON object of config fields")
        return values

    def _fill_from_base(self, *_):
        """Show the base config's values in the edited fields (the Config defaults if unset)."""
        from mrcnn.config import Config

        try:
            values = self.base_values()
        except ValueError:
            return  # validate() names the problem; keep what the fields show
        get = lambda name: values.get(name, getattr(Config, name))  # noqa: E731
        self._filling = True
        try:
            self.backbone.setCurrentText(str(get("BACKBONE")))
            self.min_dim.setValue(int(get("IMAGE_MIN_DIM")))
            self.max_dim.setValue(int(get("IMAGE_MAX_DIM")))
            self.images_per_gpu.setValue(int(get("IMAGES_PER_GPU")))
            self.learning_rate.setText(f"{float(get('LEARNING_RATE')):g}")
            self.steps_per_epoch.setValue(int(get("STEPS_PER_EPOCH")))
            self.validation_steps.setValue(int(get("VALIDATION_STEPS")))
            self.train_bn.setChecked(bool(get("TRAIN_BN")))
        except (TypeError, ValueError):
            pass  # a malformed base value: Config validation in validate() reports it
        finally:
            self._filling = False

    def _set_run_dir_default(self):
        from mrcnn.runs import default_run_dir

        if self.run_dir.text().strip() in ("", self._auto_run_dir):
            self._auto_run_dir = str(default_run_dir(self.kind(), self.runs_root))
            self.run_dir.setText(self._auto_run_dir)

    def dataset_class_count(self) -> int:
        """NUM_CLASSES of the chosen dataset (background included); ValueError says why not."""
        if self.kind() == "shapes":
            return SHAPES_CLASS_COUNT
        path = self.train_json.text().strip()
        current = self.current_dataset
        if current is not None and current.spec.kind == "coco" and path \
                and os.path.abspath(path) == os.path.abspath(current.spec.annotations):
            return len(current.class_names)  # already loaded: no need to read the JSON again
        try:
            return coco_class_count(path)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"Train JSON: {e}") from None

    def _refresh_classes(self, *_):
        try:
            count = self.dataset_class_count()
            self.classes_label.setText(f"NUM_CLASSES {count} (background + {count - 1})")
        except ValueError as e:
            self.classes_label.setText(f"unknown: {e}")
        self._refresh_init()

    def init_choice(self) -> str:
        return next(c for c, b in self.init_buttons.items() if b.isChecked())

    def init_path(self) -> str:
        """The weights file the chosen init loads ("" for none)."""
        choice = self.init_choice()
        if choice == "demo":
            return self.demo_spec.weights if self.demo_spec else ""
        if choice == "last":
            return self.last_checkpoint or ""
        if choice == "file":
            return self.init_file.text().strip()
        return ""

    def _refresh_init(self, *_):
        """Show the init file's class count; fill Exclude when it differs from the dataset's."""
        choice = self.init_choice()
        self.init_file_row.setEnabled(choice == "file")
        self.exclude.setEnabled(choice != "none")
        if choice == "none":
            self.init_info.setText("Weights start random (backbone included): train all "
                                   "layers with TRAIN_BN and precise BN.")
            self.exclude.clear()
            return
        path = self.init_path()
        prefix = "" if choice == "file" else f"{path}\n"
        try:
            file_count = weights_class_count(path)
        except (FileNotFoundError, ValueError) as e:
            self.init_info.setText(f"{prefix}{e}")
            return
        try:
            dataset_count = self.dataset_class_count()
        except ValueError:
            dataset_count = None
        mismatch = file_count is not None and dataset_count is not None \
            and file_count != dataset_count
        counts = "no class layers" if file_count is None else f"{file_count} classes"
        if mismatch:
            counts += f", the dataset {dataset_count}: the class-specific layers start random"
        self.init_info.setText(f"{prefix}File: {counts}.")
        self.exclude.setText(" ".join(CLASS_COUNT_LAYERS) if mismatch else "")

    def _update_stage_labels(self, *_):
        until = 0
        for check, spin, label in zip(self.stage_checks, self.stage_epochs, self.stage_until):
            enabled = check.isChecked()
            spin.setEnabled(enabled)
            spin.setSuffix(" epoch" if spin.value() == 1 else " epochs")
            until += spin.value() if enabled else 0
            label.setText(f"→ epoch {until}" if enabled else "")
        for check, combo in zip(self.stage_checks, self.stage_layers):
            combo.setEnabled(check.isChecked())

    def _prefill_dataset(self, spec):
        """Dataset fields from the dataset open in the viewer (a viewer.datasets.DatasetSpec)."""
        if spec.kind == "coco":
            self.kind_combo.setCurrentIndex(self.kind_combo.findData("coco"))
            self.train_json.setText(spec.annotations)
            self.train_images.setText(spec.image_dir)
        else:
            self.kind_combo.setCurrentIndex(self.kind_combo.findData("shapes"))
            # The image side only: the viewer's few images (and their seed) are for looking.
            self.shapes_size.setValue(spec.height)
        self._refresh_classes()

    # ---- results -----------------------------------------------------------------------------

    def stages(self) -> list[tuple[str, int]]:
        """[(layers, until_epoch), ...] of the enabled stages, epochs counted over the run."""
        stages, until = [], 0
        for check, combo, spin in zip(self.stage_checks, self.stage_layers, self.stage_epochs):
            if check.isChecked():
                until += spin.value()
                stages.append((combo.currentText(), until))
        return stages

    def exclude_layers(self) -> list[str]:
        return self.exclude.text().replace(",", " ").split()

    def augmentation_text(self) -> str:
        """The --augment value ("" for none), in mrcnn.data.augment.parse_augmentation's form."""
        return augmentation_choices.augmentation_text(self)

    def albumentations_args(self) -> list[str]:
        return augmentation_choices.albumentations_args(self)

    def albumentations_problems(self) -> list[str]:
        return augmentation_choices.albumentations_problems(self)

    def device(self) -> Device:
        return self.devices[self.device_combo.currentIndex()]

    def config_values(self) -> dict:
        """Base config + the dialog's fields + the dataset's NUM_CLASSES (ValueError if unknown)."""
        values = self.base_values()
        values.update(BACKBONE=self.backbone.currentText(), IMAGE_MIN_DIM=self.min_dim.value(),
                      IMAGE_MAX_DIM=self.max_dim.value(),
                      IMAGES_PER_GPU=self.images_per_gpu.value(),
                      LEARNING_RATE=self._learning_rate(),
                      STEPS_PER_EPOCH=self.steps_per_epoch.value(),
                      VALIDATION_STEPS=self.validation_steps.value(),
                      TRAIN_BN=self.train_bn.isChecked(),
                      NUM_CLASSES=self.dataset_class_count())
        return values

    def _learning_rate(self) -> float:
        text = self.learning_rate.text().strip()
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"Learning rate: {text!r} is not a number") from None

    def validate(self) -> list[str]:
        """Problems that would stop the run, each naming its field ([] when it can start)."""
        problems = self._dataset_problems()
        problems += self._config_problems()
        for index, (check, spin) in enumerate(zip(self.stage_checks, self.stage_epochs)):
            if check.isChecked() and spin.value() < 1:
                problems.append(f"Stage {index + 1} epochs: must be at least 1, got {spin.value()}")
        problems += self._init_problems()
        try:
            from mrcnn.data.augment import parse_augmentation

            parse_augmentation(self.augmentation_text())
        except ValueError as e:
            problems.append(f"Augmentation: {e}")
        problems += self.albumentations_problems()
        return problems + run_dir_problems(self.run_dir.text().strip())

    def _dataset_problems(self) -> list[str]:
        if self.kind() == "shapes":
            return []
        problems = []
        try:
            self.dataset_class_count()
        except ValueError as e:
            problems.append(str(e))
        return problems + coco_folder_problems(self.train_images.text().strip(),
                                               self.val_json.text().strip(),
                                               self.val_images.text().strip())

    def _config_problems(self) -> list[str]:
        from mrcnn.config import Config, ConfigError

        problems = []
        try:
            self.base_values()
        except ValueError as e:
            return [f"Base config: {e}"]
        if self.max_dim.value() % 64:
            side = self.max_dim.value()
            problems.append(f"Image size: max {side} px is not divisible by 64 (try "
                            f"{max(64, side // 64 * 64)} or {(side // 64 + 1) * 64})")
        try:
            if self._learning_rate() <= 0:
                problems.append(f"Learning rate: must be > 0, got {self.learning_rate.text()}")
        except ValueError as e:
            problems.append(str(e))
        if problems:
            return problems
        try:
            Config.from_dict(self.config_values()).validate()
        except ConfigError as e:
            problems.append(f"Config: {e}")
        except ValueError:
            pass  # NUM_CLASSES unknown: the dataset problem already says why
        return problems

    def _init_problems(self) -> list[str]:
        choice = self.init_choice()
        if choice == "none":
            return []
        path = self.init_path()
        if not path:
            missing = "file chosen" if choice == "file" else f"{choice} weights"
            return [f"Init weights: no {missing}"]
        try:
            weights_class_count(path)
        except (FileNotFoundError, ValueError) as e:
            return [f"Init weights: {e}"]
        unknown = [n for n in self.exclude_layers() if not n.replace("_", "").isalnum()]
        return [f"Exclude: not layer names: {' '.join(unknown)}"] if unknown else []

    def request(self) -> TrainRequest:
        """The first stage's ``mrcnn.train`` request; writes the edited config it points to."""
        run_dir = self.run_dir.text().strip()
        config_path = write_requested_config(run_dir, self.config_values())
        layers, until = self.stages()[0]
        args = sections.dataset_args(self, self.kind())
        args += ["--config", config_path, "--layers", layers, "--epochs", str(until)]
        if self.init_choice() != "none":
            args += ["--init", self.init_path(), "--exclude", *self.exclude_layers()]
        if self.augmentation_text():
            args += ["--augment", self.augmentation_text()]
        args += self.albumentations_args()
        if self.mixed_precision.isChecked():
            # The training process resolves it on its own device (bf16 / fp16 / fp32).
            args += ["--precision", "auto"]
        # BN trained from small batches: refresh its moving statistics before each
        # checkpoint, or inference (which uses them) lags training badly.
        args += precise_bn_args(self)
        args += sections.run_args(self) + ["--run-dir", run_dir]
        device = self.device()
        data = "shapes" if self.kind() == "shapes" else Path(self.train_json.text()).name
        description = " · ".join((data, layers, f"{until} epoch{'s' if until != 1 else ''}",
                                  device.label.split(":")[0]))
        return TrainRequest(run_dir, args, dict(device.env), description)

    def _start(self):
        problems = self.validate()
        if problems:
            self.problems_label.setText("Cannot start:\n" + "\n".join(f"• {p}" for p in problems))
            self.problems_label.show()
            return
        self.problems_label.hide()
        sections.save_settings(self.settings, self, self.init_choice())
        self.accept()
