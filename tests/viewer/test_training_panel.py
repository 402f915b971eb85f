"""The Training panel and its place in the main window.

Fast tests drive the panel with past run directories written here and with a fake trainer
(``test_training_process.FakeRequest``); the ``slow`` ones start real ``mrcnn train`` children
on a tiny config (each pays TensorFlow's start-up, ~30-60 s on a shared CPU).
"""

import json
from pathlib import Path
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from mrcnn.runs import RunDir
from test_training_process import FAKE_TRAINER, FakeRequest, gone
from viewer.training import closing as panel_module
from viewer.training.panel import TrainingPanel
from viewer.training.window_actions import checkpoint_label
from viewer.training.request import TrainRequest
from viewer.training.runs import INTERRUPTED, LOSS_NAMES
from tiny_config import tiny_config_values

REAL_RUN_TIMEOUT_MS = 300_000
# tests/tiny_config.py's TinyConfig, as the JSON a user would pass with --config.
TINY_CONFIG = tiny_config_values()


@pytest.fixture
def panel(qtbot, settings, tmp_path):
    widget = TrainingPanel(settings)
    widget.set_runs_root(tmp_path / "runs")
    qtbot.addWidget(widget)
    widget.resize(1100, 360)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def fake(tmp_path):
    """fake(mode) -> a FakeRequest running the fake trainer in mode ``mode``."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)

    def make(mode, name=None):
        request = FakeRequest(str(tmp_path / "runs" / (name or f"fake_{mode}")), [], {},
                              f"fake {mode}")
        request.script, request.mode = str(script), mode
        return request

    return make


def write_past_run(root, name, status, steps=4, epochs=2, pid=0):
    """A run directory as mrcnn.train leaves it (tiny h5 stand-ins for the checkpoints)."""
    run = RunDir(root / name).create()
    run.config_path.write_text(json.dumps(TINY_CONFIG))
    run.update_run(status=status, reason=f"{status} for the test", pid=pid,
                   args={"layers": "heads", "epochs": epochs}, dataset={"kind": "shapes"})
    per_epoch = steps // epochs
    for step in range(1, steps + 1):
        run.append_metrics({"event": "step", "step": step, "epoch": (step - 1) // per_epoch + 1,
                            **{n: 10.0 / step + i for i, n in enumerate(LOSS_NAMES)}})
        if step % per_epoch == 0:
            epoch = step // per_epoch
            run.append_metrics({"event": "epoch", "epoch": epoch, "step": step,
                                **{f"val_{n}": 5.0 / epoch for n in LOSS_NAMES}})
            path = run.checkpoint_path(epoch)
            path.write_bytes(b"h5")
            run.register_checkpoint(path, epoch=epoch, step=step)
    return run


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def curve(panel, split, name):
    return panel.plot.curves[split, name].getData()


def select_checkpoints(panel, rows):
    panel.checkpoint_list.clearSelection()
    for row in rows:
        panel.checkpoint_list.item(row).setSelected(True)


# ---- past runs --------------------------------------------------------------------------------


def test_past_runs_are_listed_and_read_lazily(qtbot, panel, tmp_path):
    root = tmp_path / "runs"
    write_past_run(root, "done", "finished")
    write_past_run(root, "crashed", "running", pid=dead_pid())
    (root / "not_a_run").mkdir()
    panel.set_runs_root(root)
    names = {panel.model.record(row).name: panel.model.record(row)
             for row in range(panel.model.rowCount())}
    assert set(names) == {"done", "crashed"}
    assert all(record.curves is None for record in names.values())  # metrics not read yet
    assert names["crashed"].status == INTERRUPTED

    panel.select_record(names["done"])
    xs, ys = curve(panel, "train", "loss")
    assert xs.tolist() == [1, 2, 3, 4] and np.allclose(ys, [10.0 / s for s in (1, 2, 3, 4)])
    xs, ys = curve(panel, "val", "mrcnn_mask_loss")
    assert xs.tolist() == [2, 4] and ys.tolist() == [5.0, 2.5]
    assert panel.checkpoint_list.count() == 2
    assert panel.progress_bar.value() == 1000
    assert not panel.resume_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.error_label.isHidden()

    panel.select_record(names["crashed"])
    assert panel.resume_button.isEnabled()
    assert not panel.error_label.isHidden() and "process is gone" in panel.error_label.text()
    assert "interrupted" in panel.model.data(panel.model.index(panel.model.row_of(
        names["crashed"])))


def test_runs_root_is_remembered(qtbot, settings, tmp_path):
    write_past_run(tmp_path / "elsewhere", "old", "stopped")
    first = TrainingPanel(settings)
    qtbot.addWidget(first)
    first.set_runs_root(tmp_path / "elsewhere")
    second = TrainingPanel(settings)
    qtbot.addWidget(second)
    assert second.runs_root == str(tmp_path / "elsewhere")
    assert second.model.rowCount() == 1


def test_load_and_compare_checkpoints(qtbot, panel, tmp_path):
    run = write_past_run(tmp_path / "runs", "done", "finished", steps=6, epochs=3)
    panel.set_runs_root(tmp_path / "runs")
    panel.select_record(panel.model.record(0))
    paths = [entry["path"] for entry in run.checkpoints()]
    select_checkpoints(panel, [1])
    assert panel.load_button.isEnabled() and not panel.compare_button.isEnabled()
    with qtbot.waitSignal(panel.loadCheckpoint) as loaded:
        qtbot.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    assert loaded.args == [paths[1], str(run.config_path)]
    select_checkpoints(panel, [2, 0])
    assert panel.compare_button.isEnabled() and not panel.load_button.isEnabled()
    with qtbot.waitSignal(panel.compareCheckpoints) as compared:
        qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    assert compared.args == [paths[0], paths[2], str(run.config_path)]
    assert checkpoint_label(paths[0]) == "done/epoch_0001.h5"


# ---- live runs (fake trainer) ----------------------------------------------------------------


def test_fake_run_shows_progress_log_and_stops(qtbot, panel, fake):
    record = panel.start(fake("polite"))
    assert panel.record is record and panel.model.record(0) is record
    qtbot.waitUntil(lambda: len(record.curves) >= 3, timeout=20000)
    assert "epoch 1/1" in panel.progress_label.text()
    assert "fake trainer up" in panel.log_view.toPlainText()
    xs, ys = curve(panel, "train", "loss")
    assert np.allclose(ys, 1.0 / xs)
    assert panel.stop_button.isEnabled() and not panel.resume_button.isEnabled()
    with qtbot.waitSignal(record.process.exited, timeout=20000):
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert record.status == "stopped" and "[stopped]" in panel.progress_label.text()
    assert not panel.stop_button.isEnabled()


def test_stop_pressed_again_kills(qtbot, panel, fake):
    record = panel.start(fake("stubborn"))
    qtbot.waitUntil(lambda: record.status == "running" and len(record.log) >= 2, timeout=20000)
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert panel.stop_button.text() == "Kill" and panel.stop_button.isEnabled()
    with qtbot.waitSignal(record.process.exited, timeout=20000):
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert record.status == "stopped" and gone(record.process.pid)
    assert panel.stop_button.text() == "Stop" and panel.resume_button.isEnabled() is False


def test_a_run_trained_by_another_process_is_stopped_by_stop_file(qtbot, panel, tmp_path):
    run = write_past_run(tmp_path / "runs", "elsewhere", "running", pid=os.getpid())
    panel.set_runs_root(tmp_path / "runs")
    panel.select_record(panel.model.record(0))
    assert f"pid {os.getpid()}" in panel.progress_label.text()
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert run.stop_requested() and not panel.stop_button.isEnabled()


def test_failed_fake_run_shows_why(qtbot, panel, fake):
    record = panel.start(fake("oom"))
    qtbot.waitUntil(lambda: record.status == "failed", timeout=20000)
    assert panel.error_label.isVisible()
    assert "ResourceExhaustedError" in panel.error_label.text()
    assert "fake trainer up" in panel.error_label.toolTip()  # the log tail


def test_new_run_opens_the_training_dialog(qtbot, panel, fake, monkeypatch):
    opened = {}

    class FakeDialog:
        def __init__(self, parent, runs_root, current_dataset):
            opened.update(parent=parent, runs_root=runs_root, dataset=current_dataset)

        def exec(self):
            return True

        def request(self):
            return fake("polite", name="from_dialog")

    monkeypatch.setitem(sys.modules, "viewer.dialogs.train_dialog",
                        types.SimpleNamespace(TrainDialog=FakeDialog))
    panel.current_dataset = lambda: "the dataset"
    with qtbot.waitSignal(panel.runStarted) as started:
        qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)
    assert opened == {"parent": panel, "runs_root": panel.runs_root, "dataset": "the dataset"}
    assert started.args[0].endswith("from_dialog")
    record = panel.record
    with qtbot.waitSignal(record.process.exited, timeout=20000):
        record.stop(grace_ms=5000, kill_ms=1000)


def test_dialog_stages_run_one_after_another(qtbot, panel, fake, monkeypatch):
    import viewer.training.stages as stages_module

    first = fake("finish", name="staged")
    later = []

    def fake_stage_args(request, layers, until):
        assert request is first
        later.append(FakeRequest(request.run_dir, [*request.args, "--layers", layers, "--resume"],
                                 {}, f"stage {layers}"))
        later[-1].script, later[-1].mode = request.script, "finish"
        return later[-1]

    class FakeDialog:
        def __init__(self, *args, **kwargs):
            pass

        def exec(self):
            return True

        def request(self):
            return first

        def stages(self):
            return [("heads", 1), ("4+", 2), ("all", 3)]

    monkeypatch.setattr(stages_module, "stage_args", fake_stage_args)
    monkeypatch.setitem(sys.modules, "viewer.dialogs.train_dialog",
                        types.SimpleNamespace(TrainDialog=FakeDialog))
    panel.new_run()
    record = panel.record
    assert record.stage == (1, 3) and len(record.pending_stages) == 2
    qtbot.waitUntil(lambda: record.stage == (3, 3) and record.status == "finished",
                    timeout=30000)
    assert record.request is later[-1] and [r.args[-2] for r in later] == ["4+", "all"]
    assert panel.model.rowCount() == 1  # one run directory, one row


def test_tensorboard_button(qtbot, panel, tmp_path, monkeypatch):
    write_past_run(tmp_path / "runs", "done", "finished")
    panel.set_runs_root(tmp_path / "runs")
    panel.select_record(panel.model.record(0))
    panel.tensorboard.finder = lambda: None
    qtbot.mouseClick(panel.tb_button, Qt.MouseButton.LeftButton)
    assert "pip install tensorboard" in panel.tb_label.text()

    script = tmp_path / "fake_tb.py"
    script.write_text("import sys, time\nport = sys.argv[sys.argv.index('--port') + 1]\n"
                      "print(f'TensorBoard at http://127.0.0.1:{port}/', flush=True)\n"
                      "time.sleep(60)\n")
    panel.tensorboard.finder = lambda: [sys.executable, str(script)]
    with qtbot.waitSignal(panel.tensorboard.ready, timeout=20000):
        qtbot.mouseClick(panel.tb_button, Qt.MouseButton.LeftButton)
    url = panel.tensorboard.url
    assert url in panel.tb_label.text() and panel.tb_button.text() == "Stop TensorBoard"
    assert panel.tensorboard.logdir == str(tmp_path / "runs" / "done" / "tb")
    qtbot.mouseClick(panel.tb_copy, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == url
    panel.shutdown()  # the window closing
    assert not panel.tensorboard.is_running()


# ---- main window ------------------------------------------------------------------------------


def test_window_training_dock_and_menu(window, tmp_path, dialogs, monkeypatch):
    dock = window.docks["Training"]
    assert dock.isHidden()  # the canvas keeps its height until training is asked for
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Train" in titles
    train_menu = window.menuBar().actions()[titles.index("&Train")].menu()
    texts = [a.text() for a in train_menu.actions()]
    assert {"New training run…", "Dataset inspector…", "Compare checkpoints…"} <= set(texts)
    new_run = train_menu.actions()[texts.index("New training run…")]
    assert new_run.shortcut().toString() == "Ctrl+Shift+T"

    specs = []
    monkeypatch.setattr(window.document, "set_model", specs.append)
    config = tmp_path / "config.json"
    config.write_text("{}")
    window.training.loadCheckpoint.emit("/r/checkpoints/epoch_0001.h5", str(config))
    assert specs[0].weights == "/r/checkpoints/epoch_0001.h5" and specs[0].config == str(config)

    window.document.image_file = None
    window.training.compareCheckpoints.emit("a.h5", "b.h5", str(config))
    assert dialogs and dialogs[-1][0] == "No image to compare on"
    made = []

    class FakeCompare:
        def __init__(self, image_path, specs, labels, parent=None):
            made.append((image_path, specs, labels, parent))

        def show(self):
            made.append("shown")

        def raise_(self):
            pass

        activateWindow = raise_

    monkeypatch.setitem(sys.modules, "viewer.compare",
                        types.SimpleNamespace(CompareWindow=FakeCompare))
    window.document.image_file = str(tmp_path / "image.png")
    window.training.compareCheckpoints.emit("/r/checkpoints/a.h5", "/r/checkpoints/b.h5",
                                            str(config))
    image, (spec_a, spec_b), labels, parent = made[0]
    assert image == window.document.image_file and parent is window and made[1] == "shown"
    assert (spec_a.weights, spec_b.weights, spec_a.config) == ("/r/checkpoints/a.h5",
                                                               "/r/checkpoints/b.h5", str(config))
    assert labels == ("r/a.h5", "r/b.h5")

    window.session.dataset = None
    window.training_actions.open_dataset_inspector()
    assert "Open a dataset first" in window.status_label.text()
    inspected = []
    monkeypatch.setitem(sys.modules, "viewer.inspector", types.SimpleNamespace(
        DatasetInspector=lambda dataset, parent=None: types.SimpleNamespace(
            show=lambda: inspected.append((dataset, parent)))))
    window.session.dataset = "loaded dataset"
    window.training_actions.open_dataset_inspector()
    assert inspected == [("loaded dataset", window)]
    window.session.dataset = None


def test_closing_the_window_asks_before_stopping_a_fake_run(window, qtbot, fake, monkeypatch,
                                                            tmp_path):
    window.training.set_runs_root(tmp_path / "runs")
    record = window.training.start(fake("stubborn"))
    assert window.docks["Training"].isVisible()  # a started run shows the dock
    qtbot.waitUntil(lambda: record.process.pid > 0, timeout=20000)
    pid, answers = record.process.pid, [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda parent, title, *rest: answers.pop(0)))
    assert not window.close()
    assert window.isVisible() and record.is_live() and not answers
    monkeypatch.setattr(panel_module, "CLOSE_GRACE_MS", 200)
    monkeypatch.setattr(panel_module, "CLOSE_KILL_MS", 300)
    answers.append(QMessageBox.StandardButton.Yes)
    assert window.close()
    assert gone(pid) and record.status == "stopped"


# ---- real mrcnn train children ---------------------------------------------------------------


def real_request(tmp_path, name, *args) -> TrainRequest:
    config = tmp_path / "tiny_config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    run_dir = str(tmp_path / "runs" / name)
    if not args:
        args = ("--dataset", "shapes", "--shapes-train", "4", "--shapes-val", "2",
                "--shapes-size", "128", "--steps-per-epoch", "2", "--validation-steps", "1",
                "--epochs", "2", "--layers", "heads")
    return TrainRequest(run_dir, [*args, "--config", str(config), "--run-dir", run_dir],
                        {"TF_CPP_MIN_LOG_LEVEL": "2"}, f"{name} · tiny")


def dialog_request(qtbot, settings, tmp_path, name):
    """The request the training dialog makes for a tiny shapes run (base config: TINY_CONFIG),
    filled in the way a user would fill it."""
    from viewer.dialogs.train_dialog import TrainDialog
    from viewer.training.devices import Device

    base = tmp_path / "tiny_base.json"
    base.write_text(json.dumps(TINY_CONFIG))
    dialog = TrainDialog(None, runs_root=str(tmp_path / "runs"), settings=settings,
                         devices=[Device("CPU", {"CUDA_VISIBLE_DEVICES": "-1"}, ())],
                         demo_spec=None)
    qtbot.addWidget(dialog)
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("shapes"))
    dialog.shapes_train.setValue(4)
    dialog.shapes_val.setValue(2)
    dialog.shapes_size.setValue(128)
    dialog.base_file.setText(str(base))
    dialog.base_combo.setCurrentIndex(dialog.base_combo.findData("file"))
    dialog.images_per_gpu.setValue(1)
    dialog.steps_per_epoch.setValue(2)
    dialog.validation_steps.setValue(1)
    dialog.stage_epochs[0].setValue(2)
    dialog.stage_layers[0].setCurrentText("heads")  # fast: not the from-scratch default
    dialog.train_bn.setChecked(False)
    for check in dialog.stage_checks[1:]:
        check.setChecked(False)
    dialog.run_dir.setText(str(tmp_path / "runs" / name))
    assert dialog.validate() == []
    return dialog.request()


@pytest.mark.slow
def test_real_run_progress_curves_stop_and_resume_request(qtbot, panel, settings, tmp_path):
    # Started as a user does: the training dialog's request, run by the panel.
    record = panel.start(dialog_request(qtbot, settings, tmp_path, "real"))
    events = []
    record.process.event.connect(events.append)
    qtbot.waitUntil(lambda: any(e["event"] == "epoch" for e in events),
                    timeout=REAL_RUN_TIMEOUT_MS)
    steps = [e for e in events if e["event"] == "step"]
    epoch = next(e for e in events if e["event"] == "epoch")
    for name in LOSS_NAMES:
        xs, ys = curve(panel, "train", name)
        assert xs.tolist() == [s["step"] for s in steps]
        assert np.allclose(ys, [s[name] for s in steps])
        assert curve(panel, "val", name)[1].tolist() == pytest.approx([epoch[f"val_{name}"]])
    text = panel.progress_label.text()
    assert "epoch 1/2" in text and "step 2/4" in text and "img/s" in text and "ETA" in text
    assert panel.progress_bar.value() == 500

    with qtbot.waitSignal(record.process.exited, timeout=REAL_RUN_TIMEOUT_MS) as exited:
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert exited.args[0] == "stopped", record.process.log_tail()
    assert record.process.exit_code == 0 and gone(record.process.pid)
    run = RunDir(record.path)
    assert run.read_run()["status"] == "stopped"
    listed = run.checkpoints()
    assert listed[-1]["partial"] and os.path.isfile(listed[-1]["path"])
    assert panel.checkpoint_list.count() == len(listed) == 2
    assert panel.resume_button.isEnabled()
    # Resume passes only --run-dir and --resume: mrcnn.train re-reads the rest from run.json.
    from mrcnn.train import parse_args

    resumed = parse_args(record.resume_request().args)
    assert resumed.resume and resumed.epochs == 2
    assert json.loads(Path(resumed.config).read_text())["STEPS_PER_EPOCH"] == 2
    assert resumed.dataset == "shapes" and os.path.samefile(resumed.run_dir, record.path)


@pytest.mark.slow
def test_real_run_with_a_bad_dataset_shows_its_error(qtbot, panel, tmp_path):
    request = real_request(tmp_path, "bad", "--dataset", "coco", "--train-json",
                           "/nonexistent.json", "--train-images", str(tmp_path))
    record = panel.start(request)
    with qtbot.waitSignal(record.process.exited, timeout=REAL_RUN_TIMEOUT_MS):
        pass
    assert record.status == "failed" and record.process.exit_code == 1
    assert panel.error_label.isVisible() and "nonexistent.json" in panel.error_label.text()
    # One line says what failed; the traceback only with --debug (issue 18).
    assert "training failed" in panel.log_view.toPlainText()
    assert "Traceback" not in panel.log_view.toPlainText()
    assert not panel.resume_button.isEnabled()  # nothing was written to resume


@pytest.mark.slow
def test_closing_the_window_never_orphans_a_real_run(window, qtbot, tmp_path, monkeypatch):
    window.training.set_runs_root(tmp_path / "runs")
    record = window.training.start(real_request(tmp_path, "closing"))
    qtbot.waitUntil(lambda: record.process.pid > 0, timeout=20000)
    pid = record.process.pid
    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, *rest: asked.append(title) or QMessageBox.StandardButton.Yes))
    monkeypatch.setattr(panel_module, "CLOSE_GRACE_MS", 1000)
    monkeypatch.setattr(panel_module, "CLOSE_KILL_MS", 1000)
    assert window.close()
    assert asked == ["Stop training?"]
    assert gone(pid) and not record.is_live()
