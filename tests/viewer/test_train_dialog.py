"""Training dialog: the request it builds (parsed back by mrcnn.train), its checks, devices."""

import json
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrcnn.runs import RunDir
from mrcnn.train import build_parser, parse_args
from viewer.dialogs.train_dialog import (CLASS_COUNT_LAYERS, REQUESTED_CONFIG, TrainDialog,
                                         coco_class_count, stage_args, weights_class_count)
from viewer.training.devices import list_devices, parse_nvidia_smi, read_proc_gpus
from viewer.training.request import TrainRequest

TWO_GPUS = "0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, NVIDIA A100-SXM4-40GB, 40960 MiB\n"


def fake_devices(text=TWO_GPUS):
    return list_devices(runner=lambda command, timeout: text, which=lambda name: "/bin/x")


def write_coco(path, categories=3, images=2, categories_last=True):
    data = {"images": [{"id": i + 1, "file_name": f"{i}.png", "height": 32, "width": 32}
                       for i in range(images)],
            "annotations": []}
    cats = [{"id": i + 1, "name": f"thing{i}"} for i in range(categories)]
    data = {**data, "categories": cats} if categories_last else {"categories": cats, **data}
    Path(path).write_text(json.dumps(data))
    return str(path)


def write_weights(path, num_classes, with_heads=True):
    """A tiny Keras-2 (matterport layout) HDF5: conv1 and, optionally, the class-count heads."""
    layers = {"conv1": [("conv1/kernel:0", (3, 3, 3, 4)), ("conv1/bias:0", (4,))]}
    if with_heads:
        layers["mrcnn_class_logits"] = [("mrcnn_class_logits/kernel:0", (8, num_classes)),
                                        ("mrcnn_class_logits/bias:0", (num_classes,))]
        layers["mrcnn_bbox_fc"] = [("mrcnn_bbox_fc/kernel:0", (8, 4 * num_classes))]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers], dtype=bytes)
        for layer, weights in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights], dtype=bytes)
            for name, shape in weights:
                group.create_dataset(name, data=np.zeros(shape, np.float32))
    return str(path)


@pytest.fixture
def make_dialog(qtbot, settings, tmp_path):
    def make(**kwargs):
        kwargs.setdefault("runs_root", str(tmp_path / "runs"))
        kwargs.setdefault("settings", settings)
        kwargs.setdefault("devices", fake_devices())
        kwargs.setdefault("demo_spec", None)
        dialog = TrainDialog(**kwargs)
        qtbot.addWidget(dialog)
        return dialog
    return make


@pytest.fixture
def coco_dialog(make_dialog, tmp_path):
    """A valid COCO dialog (3 categories -> NUM_CLASSES 4) with an image folder."""
    (tmp_path / "images").mkdir()
    dialog = make_dialog()
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("coco"))
    dialog.train_json.setText(write_coco(tmp_path / "train.json"))
    dialog.train_images.setText(str(tmp_path / "images"))
    dialog.train_json.editingFinished.emit()
    return dialog


# ---- the request -------------------------------------------------------------------------------


def test_shapes_request_parses_back_field_by_field(make_dialog, tmp_path):
    dialog = make_dialog()
    # Random weights default to all layers with TRAIN_BN (test_train_dialog_defaults); this
    # user chooses matterport's heads-then-more recipe anyway.
    dialog.stage_layers[0].setCurrentText("heads")
    dialog.stage_checks[1].setChecked(True)
    dialog.train_bn.setChecked(False)
    dialog.shapes_train.setValue(30)
    dialog.shapes_val.setValue(5)
    dialog.shapes_size.setValue(96)  # defaults base: image side rounds up to 128
    dialog.images_per_gpu.setValue(3)
    dialog.learning_rate.setText("0.002")
    dialog.stage_epochs[0].setValue(2)
    dialog.stage_layers[1].setCurrentText("4+")
    dialog.stage_epochs[1].setValue(3)
    dialog.aug_hflip.setChecked(True)
    dialog.aug_scale.setChecked(True)
    dialog.aug_brightness.setChecked(True)
    dialog.mixed_precision.setChecked(True)
    dialog.seed.setValue(7)
    dialog.tb_images.setValue(3)
    dialog.local_workers.setValue(2)
    dialog.device_combo.setCurrentIndex(2)  # GPU 1
    run_dir = str(tmp_path / "runs" / "mine")
    dialog.run_dir.setText(run_dir)
    assert dialog.validate() == []

    request = dialog.request()
    args = build_parser().parse_args(request.args)
    expected = {"dataset": "shapes", "shapes_train": 30, "shapes_val": 5, "shapes_size": 96,
                "config": str(Path(run_dir) / REQUESTED_CONFIG), "init": "none",
                "exclude": None, "layers": "heads", "epochs": 2, "learning_rate": None,
                "steps_per_epoch": None, "validation_steps": None,
                "augment": "hflip,scale=0.8-1.2,brightness=0.1", "augment_albumentations": "",
                "run_dir": run_dir,
                "resume": False, "mixed_precision": False, "precision": "auto", "seed": 7,
                "train_json": None, "precise_bn": 0,
                "train_images": None, "val_json": None, "val_images": None, "skip_bad": False,
                "stop_with_parent": None,  # program() adds it, not the dialog's args
                "tb_images": 3, "local_workers": 2}
    assert vars(args) == expected
    assert request.run_dir == run_dir
    assert request.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
    assert request.description == "shapes · heads · 2 epochs · GPU 1"
    assert dialog.stages() == [("heads", 2), ("4+", 5)]
    parse_args(request.args)  # mrcnn.train's own checks pass too

    config = json.loads(Path(args.config).read_text())
    assert config["NUM_CLASSES"] == 4 and config["NAME"] == "shapes"
    assert (config["IMAGE_MIN_DIM"], config["IMAGE_MAX_DIM"]) == (128, 128)
    assert (config["IMAGES_PER_GPU"], config["LEARNING_RATE"]) == (3, 0.002)
    assert config["BACKBONE"] == "resnet18" and config["STEPS_PER_EPOCH"] == 100
    assert config["RPN_ANCHOR_SCALES"] == [8, 16, 32, 64, 128]  # the shapes defaults kept
    from mrcnn.config import Config

    assert Config.from_dict(config).validate().IMAGE_MAX_DIM == 128


def test_coco_request_with_validation_set(coco_dialog, tmp_path):
    (tmp_path / "val_images").mkdir()
    coco_dialog.val_json.setText(write_coco(tmp_path / "val.json"))
    coco_dialog.val_images.setText(str(tmp_path / "val_images"))
    coco_dialog.stage_checks[1].setChecked(False)
    assert coco_dialog.classes_label.text().startswith("NUM_CLASSES 4")
    assert coco_dialog.validate() == []
    request = coco_dialog.request()
    args = build_parser().parse_args(request.args)
    assert (args.dataset, args.train_json, args.train_images) == \
        ("coco", str(tmp_path / "train.json"), str(tmp_path / "images"))
    assert (args.val_json, args.val_images) == (str(tmp_path / "val.json"),
                                               str(tmp_path / "val_images"))
    assert args.augment == "" and not args.mixed_precision and args.precision is None
    assert coco_dialog.stages() == [("all", 1)]  # random weights: all layers at once
    config = json.loads(Path(args.config).read_text())
    # Matterport's defaults for COCO, the dataset's class count.
    assert (config["NAME"], config["NUM_CLASSES"]) == ("coco", 4)
    assert config["BACKBONE"] == "resnet101" and config["IMAGE_MAX_DIM"] == 1024
    assert request.description.startswith("train.json · all · 1 epoch")


def test_base_config_file_keeps_its_fields_and_gets_the_edits(make_dialog, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"NAME": "cells", "IMAGE_MAX_DIM": 256, "IMAGE_MIN_DIM": 192,
                                "BACKBONE": "resnet50", "NUM_CLASSES": 81,
                                "DETECTION_MIN_CONFIDENCE": 0.5}))
    dialog = make_dialog()
    dialog.base_file.setText(str(base))
    dialog.base_combo.setCurrentIndex(dialog.base_combo.findData("file"))
    assert (dialog.min_dim.value(), dialog.max_dim.value()) == (192, 256)
    assert dialog.backbone.currentText() == "resnet50"
    dialog.max_dim.setValue(320)
    assert dialog.validate() == []
    config = json.loads(Path(build_parser().parse_args(dialog.request().args).config)
                        .read_text())
    assert config["NAME"] == "cells" and config["DETECTION_MIN_CONFIDENCE"] == 0.5
    assert config["IMAGE_MAX_DIM"] == 320 and config["NUM_CLASSES"] == 4  # from the dataset


def test_prefill_from_the_viewers_coco_dataset(make_dialog, tmp_path):
    from viewer.datasets import DatasetSpec

    (tmp_path / "images").mkdir()
    spec = DatasetSpec("coco", annotations=write_coco(tmp_path / "a.json", categories=5),
                       image_dir=str(tmp_path / "images"))

    class Loaded:  # the part of viewer.datasets.LoadedDataset the dialog reads
        class_names = ["BG", "a", "b", "c", "d", "e"]

    Loaded.spec = spec
    dialog = make_dialog(current_dataset=Loaded())
    assert dialog.kind() == "coco"
    assert (dialog.train_json.text(), dialog.train_images.text()) == (spec.annotations,
                                                                      spec.image_dir)
    assert dialog.dataset_class_count() == 6
    assert "runs" in dialog.run_dir.text() and "coco_" in dialog.run_dir.text()


# ---- stages ------------------------------------------------------------------------------------


def test_stage_args_resume_with_other_layers_and_epochs(make_dialog, tmp_path):
    dialog = make_dialog()
    dialog.run_dir.setText(str(tmp_path / "runs" / "staged"))
    dialog.stage_checks[1].setChecked(True)  # off by default from scratch
    first = dialog.request()
    layers, until = dialog.stages()[1]
    second = stage_args(first, layers, until, learning_rate=0.0001)
    parsed = build_parser().parse_args(second.args)
    assert (parsed.layers, parsed.epochs, parsed.resume, parsed.learning_rate) == \
        ("all", 3, True, 0.0001)
    assert parsed.run_dir == first.run_dir and parsed.config == \
        build_parser().parse_args(first.args).config
    assert second.env == first.env and second.description == "shapes · all · to epoch 3 · GPU 0"
    assert first.args.count("--layers") == 1 and "--resume" not in first.args  # not mutated

    # What mrcnn.train does with it once stage 1 wrote run.json: saved argv, then these on top.
    RunDir(first.run_dir).create().update_run(argv=first.args)
    resumed = parse_args(second.args)
    assert (resumed.layers, resumed.epochs, resumed.resume, resumed.shapes_train) == \
        ("all", 3, True, 500)
    assert stage_args(second, "5+", 4).args.count("--resume") == 1


# ---- checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, field, words", [
    (lambda d, p: d.train_json.setText(""), "Train JSON", "no file chosen"),
    (lambda d, p: d.train_json.setText(str(p / "missing.json")), "Train JSON", "not found"),
    (lambda d, p: (p / "bad.json").write_text("{oops") and d.train_json.setText(str(p / "bad.json")),
     "Train JSON", "not valid JSON"),
    (lambda d, p: (p / "cats.json").write_text('{"images": []}')
     and d.train_json.setText(str(p / "cats.json")), "Train JSON", "no 'categories'"),
    (lambda d, p: d.train_images.setText(str(p / "nowhere")), "Train images", "not found"),
    (lambda d, p: d.val_json.setText(write_coco(p / "v.json")), "Val images", "no folder chosen"),
    (lambda d, p: d.max_dim.setValue(1000), "Image size", "divisible by 64"),
    (lambda d, p: d.min_dim.setValue(2048), "Config", "IMAGE_MIN_DIM"),
    (lambda d, p: d.learning_rate.setText("0"), "Learning rate", "> 0"),
    (lambda d, p: d.learning_rate.setText("fast"), "Learning rate", "not a number"),
    (lambda d, p: d.stage_epochs[0].setValue(0), "Stage 1 epochs", "at least 1"),
    (lambda d, p: (d.stage_checks[1].setChecked(True), d.stage_epochs[1].setValue(0)),
     "Stage 2 epochs", "at least 1"),
    (lambda d, p: (d.aug_scale.setChecked(True), d.aug_scale_low.setValue(1.5)),
     "Augmentation", "scale_range"),
    (lambda d, p: d.run_dir.setText(""), "Run dir", "empty"),
    (lambda d, p: RunDir(p / "old").create().update_run(status="finished") and None
     or d.run_dir.setText(str(p / "old")), "Run dir", "already holds a run"),
    (lambda d, p: (d.base_file.setText(str(p / "no.json")),
                   d.base_combo.setCurrentIndex(2)), "Base config", "does not exist"),
])
def test_each_bad_field_is_named(coco_dialog, tmp_path, change, field, words):
    assert coco_dialog.validate() == []
    change(coco_dialog, tmp_path)
    problems = coco_dialog.validate()
    assert len(problems) == 1, problems
    assert problems[0].startswith(field + ":") and words in problems[0], problems


@pytest.mark.parametrize("content, words", [
    (None, "not found"), (b"not hdf5 at all", "not an HDF5"), ("empty-h5", "layer_names")])
def test_bad_init_file_is_named(make_dialog, tmp_path, content, words):
    path = tmp_path / "init.h5"
    if content == "empty-h5":
        h5py.File(path, "w").close()
    elif content is not None:
        path.write_bytes(content)
    dialog = make_dialog()
    dialog.init_buttons["file"].setChecked(True)
    dialog.init_file.setText(str(path))
    dialog.init_file.editingFinished.emit()
    problems = dialog.validate()
    assert len(problems) == 1 and problems[0].startswith("Init weights:") \
        and words in problems[0], problems
    assert words in dialog.init_info.text()


def test_start_with_problems_stays_open_then_starts_and_remembers(make_dialog, qtbot, settings,
                                                                   tmp_path):
    dialog = make_dialog()
    dialog.show()
    dialog.learning_rate.setText("-1")
    dialog.stage_epochs[0].setValue(0)
    dialog.start_button.click()
    assert dialog.isVisible() and dialog.result() != TrainDialog.DialogCode.Accepted
    assert dialog.problems_label.isVisible()
    text = dialog.problems_label.text()
    assert "Learning rate: must be > 0" in text and "Stage 1 epochs" in text

    dialog.learning_rate.setText("0.01")
    dialog.stage_epochs[0].setValue(4)
    dialog.aug_vflip.setChecked(True)
    dialog.device_combo.setCurrentIndex(3)  # all GPUs
    dialog.start_button.click()
    assert dialog.result() == TrainDialog.DialogCode.Accepted

    again = make_dialog()
    assert again.learning_rate.text() == "0.01" and again.stage_epochs[0].value() == 4
    assert again.aug_vflip.isChecked() and again.device().label.startswith("All 2 GPUs")
    assert again.device().env["CUDA_VISIBLE_DEVICES"] == "0,1"


# ---- initial weights ---------------------------------------------------------------------------


def test_class_count_mismatch_fills_exclude(make_dialog, tmp_path):
    dialog = make_dialog()
    dialog.init_buttons["file"].setChecked(True)
    dialog.init_file.setText(write_weights(tmp_path / "coco.h5", num_classes=81))
    dialog.init_file.editingFinished.emit()
    assert dialog.exclude.text().split() == list(CLASS_COUNT_LAYERS)
    assert "81 classes, the dataset 4" in dialog.init_info.text()
    assert dialog.validate() == []
    args = build_parser().parse_args(dialog.request().args)
    assert args.init == str(tmp_path / "coco.h5") and args.exclude == list(CLASS_COUNT_LAYERS)

    dialog.exclude.setText("mrcnn_mask")  # the user's edit is what is passed
    assert build_parser().parse_args(dialog.request().args).exclude == ["mrcnn_mask"]

    dialog.init_file.setText(write_weights(tmp_path / "four.h5", num_classes=4))
    dialog.init_file.editingFinished.emit()
    assert dialog.exclude.text() == ""
    assert build_parser().parse_args(dialog.request().args).exclude == []
    assert weights_class_count(write_weights(tmp_path / "bb.h5", 2, with_heads=False)) is None


def test_last_checkpoint_and_demo_choices(make_dialog, tmp_path):
    from viewer.workers import ModelSpec

    dialog = make_dialog()
    assert not dialog.init_buttons["last"].isEnabled()
    assert not dialog.init_buttons["demo"].isEnabled()
    assert "demo" in dialog.init_buttons["demo"].toolTip().lower()

    run = RunDir(tmp_path / "runs" / "earlier").create()
    checkpoint = write_weights(run.checkpoint_path(2), num_classes=4)
    run.register_checkpoint(checkpoint, epoch=2, step=20)
    demo = ModelSpec(weights=write_weights(tmp_path / "demo.h5", num_classes=81), demo=True)
    dialog = make_dialog(demo_spec=demo)
    dialog.init_buttons["last"].setChecked(True)
    assert dialog.init_path() == checkpoint and dialog.exclude.text() == ""
    assert build_parser().parse_args(dialog.request().args).init == checkpoint
    dialog.init_buttons["demo"].setChecked(True)
    assert dialog.exclude.text().split() == list(CLASS_COUNT_LAYERS)
    assert build_parser().parse_args(dialog.request().args).init == demo.weights


def test_coco_class_count_reads_the_tail_of_big_files(tmp_path, monkeypatch):
    import viewer.training.checks as module

    monkeypatch.setattr(module, "BIG_JSON_BYTES", 0)
    monkeypatch.setattr(module, "TAIL_BYTES", 120)
    calls = []
    real_load = json.load
    monkeypatch.setattr(json, "load", lambda f: calls.append(1) or real_load(f))
    assert coco_class_count(write_coco(tmp_path / "last.json", categories=2, images=20)) == 3
    assert not calls  # found in the tail
    assert coco_class_count(write_coco(tmp_path / "first.json", categories=5, images=20,
                                       categories_last=False)) == 6
    assert calls  # not in the tail: the whole file was read


def test_class_count_layers_match_mrcnn_weights():
    import mrcnn.weights  # imports Keras: only here, the dialog must not

    assert list(CLASS_COUNT_LAYERS) == list(mrcnn.weights.CLASS_COUNT_LAYERS)


def test_split_modules_are_reexported_by_the_dialog_module():
    import viewer.dialogs.train_dialog as dialog_module
    from viewer.training import checks, stages

    assert dialog_module.stage_args is stages.stage_args
    for name in ("coco_class_count", "weights_class_count", "widget_value", "set_widget_value",
                 "CLASS_COUNT_LAYERS"):
        assert getattr(dialog_module, name) is getattr(checks, name), name
    assert all(hasattr(dialog_module, name) for name in dialog_module.__all__)


# ---- devices -----------------------------------------------------------------------------------


def test_devices_from_nvidia_smi():
    devices = fake_devices()
    assert [d.label for d in devices] == [
        "CPU", "GPU 0: NVIDIA H100 80GB HBM3 (80 GiB)", "GPU 1: NVIDIA A100-SXM4-40GB (40 GiB)",
        "All 2 GPUs (0, 1)"]
    assert devices[0].env == {"CUDA_VISIBLE_DEVICES": "-1"} and devices[0].is_cpu
    assert devices[1].env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0"}
    assert devices[3].env["CUDA_VISIBLE_DEVICES"] == "0,1" and devices[3].gpu_indices == (0, 1)
    one = fake_devices("0, Tesla T4, 15360 MiB\n")
    assert [d.label for d in one] == ["CPU", "GPU 0: Tesla T4 (15 GiB)"]  # no "all" for one


def test_cpu_only_without_nvidia_smi_or_driver(tmp_path):
    ran = []
    devices = list_devices(runner=lambda *a: ran.append(a), which=lambda name: None,
                           proc_root=tmp_path / "absent")
    assert [d.label for d in devices] == ["CPU"] and not ran


def test_proc_fallback_when_nvidia_smi_fails(tmp_path):
    for bus, model in (("0000:3b:00.0", "NVIDIA L4"), ("0000:1a:00.0", "NVIDIA A10")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: \t\t {model}\nIRQ: 5\n")

    def hung(command, timeout):
        raise subprocess.TimeoutExpired(command, timeout)

    devices = list_devices(runner=hung, which=lambda name: "/bin/x", proc_root=tmp_path)
    assert [d.label for d in devices] == ["CPU", "GPU 0: NVIDIA A10", "GPU 1: NVIDIA L4",
                                          "All 2 GPUs (0, 1)"]  # PCI bus order
    assert read_proc_gpus(tmp_path / "none") == []
    with pytest.raises(ValueError, match="unexpected line"):
        parse_nvidia_smi("No devices were found\n")


def test_stage_args_keeps_a_request_without_description():
    request = TrainRequest("r", ["--layers=heads", "--epochs", "1", "--run-dir", "r"])
    args = stage_args(request, "all", 2).args
    assert args == ["--run-dir", "r", "--layers", "all", "--epochs", "2", "--resume"]


def test_prefill_from_the_viewers_shapes_dataset(make_dialog):
    from viewer.datasets import DatasetSpec

    class Loaded:
        spec = DatasetSpec("shapes", count=20, height=200, width=200, seed=3)
        class_names = ["BG", "square", "circle", "triangle"]

    dialog = make_dialog(current_dataset=Loaded())
    assert dialog.kind() == "shapes" and dialog.shapes_size.value() == 200
    assert (dialog.min_dim.value(), dialog.max_dim.value()) == (256, 256)  # defaults follow
    args = build_parser().parse_args(dialog.request().args)
    assert (args.shapes_size, args.shapes_train, args.seed) == (200, 500, 0)


def test_train_bn_adds_precise_bn_and_sets_the_config(make_dialog, tmp_path):
    dialog = make_dialog()
    dialog.run_dir.setText(str(tmp_path / "runs" / "bn"))
    dialog.train_bn.setChecked(False)
    args = build_parser().parse_args(dialog.request().args)
    assert args.precise_bn == 0
    dialog.run_dir.setText(str(tmp_path / "runs" / "bn2"))
    dialog.train_bn.setChecked(True)
    args = build_parser().parse_args(dialog.request().args)
    assert args.precise_bn == 20
    assert json.loads(Path(args.config).read_text())["TRAIN_BN"] is True


def test_the_child_is_told_to_stop_when_the_viewer_dies():
    import os

    from mrcnn.train import build_parser as train_parser
    from viewer.training.request import TrainRequest

    request = TrainRequest("runs/x", ["--dataset", "shapes", "--run-dir", "runs/x"])
    program, arguments = request.program()
    assert arguments[:3] == ["-u", "-m", "mrcnn.train"]
    parsed = train_parser().parse_args(arguments[3:])
    assert parsed.stop_with_parent == os.getpid()
    # Resuming does not add it twice.
    resumed = request.resume().program()[1]
    assert resumed.count("--stop-with-parent") == 1 and "--resume" in resumed
