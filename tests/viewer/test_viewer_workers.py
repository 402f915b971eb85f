"""Worker thread (progress, finished, failed, cancel), error texts, recent files, open-model dialog."""

import os
import threading

import numpy as np
import pytest

from mrcnn import errors
from viewer.model_store import ModelHandle
from viewer.workers import (LOADING_TF, JobRunner, ModelSpec, TraceWorker, demo_model_spec,
                            describe_error)


def _fake_image(path):
    return np.zeros((32, 48, 3), np.uint8)


def _fake_loader(spec, step):
    step(LOADING_TF)
    step("Building model")
    step("Loading weights")
    return "the model", ["BG", "a", "b", "c"]


def _worker(fake_trace, trace_fn=None, spec=ModelSpec(weights="w.h5")):
    return TraceWorker("image.png", spec, read_image_fn=_fake_image, load_model_fn=_fake_loader,
                       trace_fn=trace_fn or (lambda model, image, names: fake_trace),
                       stats_fn=lambda model: [{"layer": "conv1"}])


def test_worker_reports_steps_and_finishes(qtbot, fake_trace):
    runner = JobRunner()
    steps = []
    runner.progress.connect(steps.append)
    with qtbot.waitSignal(runner.finished, timeout=10000) as finished:
        runner.start(_worker(fake_trace))
    result = finished.args[0]
    assert result.trace is fake_trace and result.model == "the model"
    assert result.class_names == ["BG", "a", "b", "c"]
    assert result.weight_stats == [{"layer": "conv1"}]
    assert result.trace.meta["image_path"] == "image.png"
    assert steps[:4] == ["Reading image", LOADING_TF, "Building model", "Loading weights"]
    assert "Tracing image" in steps
    assert not runner.is_busy()
    runner.wait()


def test_worker_failure_becomes_title_and_message(qtbot, fake_trace):
    def bad_loader(spec, step):
        raise errors.WeightsMismatchError("mrcnn_class_logits: model (1024, 4), file (1024, 81)")

    runner = JobRunner()
    worker = _worker(fake_trace)
    worker.load_model_fn = bad_loader
    with qtbot.waitSignal(runner.failed, timeout=10000) as failed:
        runner.start(worker)
    title, message = failed.args
    assert title == "Weights do not fit the model"
    assert "mrcnn_class_logits" in message and "NUM_CLASSES" in message
    runner.wait()


def test_cancel_drops_the_result(qtbot, fake_trace):
    release = threading.Event()
    entered = threading.Event()

    def slow_trace(model, image, names):
        entered.set()
        release.wait(10)
        return fake_trace

    runner = JobRunner()
    finished, cancelled = [], []
    runner.finished.connect(finished.append)
    runner.cancelled.connect(lambda: cancelled.append(True))
    worker = runner.start(_worker(fake_trace, slow_trace))
    assert runner.is_busy()
    assert entered.wait(10)
    runner.cancel()
    assert not runner.is_busy() and worker.cancel_requested and cancelled
    # Not qtbot.waitSignal(worker.done): its slot would run on the worker thread, and a signal
    # arriving just before the wait starts stops the timeout timer from there (Qt ignores
    # that) after quitting a loop not yet running: the wait then never ends.
    release.set()
    assert runner.wait(10000)
    qtbot.wait(50)  # the job's queued signals arrive, and are dropped
    assert finished == []  # the cancelled run's trace never arrives
    runner.wait()


def test_newer_job_supersedes_older(qtbot, fake_trace):
    release = threading.Event()
    runner = JobRunner()
    finished = []
    runner.finished.connect(finished.append)
    old = runner.start(_worker(fake_trace, lambda m, i, n: release.wait(10) and fake_trace))
    with qtbot.waitSignal(runner.finished, timeout=10000):
        runner.start(_worker(fake_trace))
    release.set()
    assert runner.wait(10000)  # see test_cancel_drops_the_result: no waitSignal(old.done)
    qtbot.wait(50)
    assert len(finished) == 1
    runner.wait()


def test_window_traces_with_injected_worker_and_walks_the_folder(window, fake_trace, tmp_path,
                                                                 qtbot):
    import skimage.io

    for name in ("a.png", "b.png", "c.png"):
        skimage.io.imsave(tmp_path / name, np.full((20, 30, 3), 100, np.uint8), check_contrast=False)
    opened = []

    traced_with = []

    def factory(image_path, spec, model, names):
        opened.append((os.path.basename(image_path) if image_path else None, model))
        return TraceWorker(image_path, spec, model, names, load_model_fn=_fake_loader,
                           trace_fn=lambda m, image, n: traced_with.append(m) or fake_trace,
                           stats_fn=False)

    window.document.worker_factory = factory
    window.open_image(tmp_path / "a.png", ModelSpec(weights="w.h5"))
    qtbot.waitUntil(lambda: window.session.trace is fake_trace, timeout=10000)
    # The window holds a handle; the model itself stays on the model thread, where jobs get it.
    handle = window.document.model
    assert isinstance(handle, ModelHandle) and traced_with == ["the model"]
    assert "Traced a.png" in window.status_label.text()
    assert window.recent.paths()[0].endswith("a.png")
    window.activateWindow()
    window.canvas.view.setFocus()
    qtbot.keyClick(window.canvas.view, "n")
    qtbot.waitUntil(lambda: window.session.image_path.endswith("b.png"), timeout=10000)
    assert opened[-1] == ("b.png", handle)  # the loaded model is reused ...
    assert traced_with[-1] == "the model"  # ... resolved on the model thread
    window.next_image(-1)
    window.next_image(-1)
    qtbot.waitUntil(lambda: window.session.image_path.endswith("c.png"), timeout=10000)


def test_busy_indicator_and_cancel_button(window, fake_trace, qtbot):
    release = threading.Event()
    window.document.worker_factory = lambda path, spec, model, names: TraceWorker(
        path, spec, "model", names, read_image_fn=_fake_image,
        trace_fn=lambda m, i, n: release.wait(10) and fake_trace, stats_fn=False)
    window.open_image("x.png", ModelSpec(weights="w.h5"))
    qtbot.waitUntil(lambda: window.status_label.text().startswith("Tracing image"), timeout=5000)
    assert window.busy_bar.isVisible() and window.cancel_button.isVisible()
    window.cancel_button.click()
    assert not window.cancel_button.isVisible() and window.status_label.text() == "Cancelled."
    release.set()
    window.document.runner.wait()
    qtbot.wait(50)
    assert window.session.trace is None


# The library's own error types; TensorFlow's OOM error by its name (no TF import here).
ERROR_TYPES = {"ResourceExhaustedError": type("ResourceExhaustedError", (Exception,), {}),
               "MemoryError": MemoryError, "WeightsMismatchError": errors.WeightsMismatchError,
               "WeightsFileError": errors.WeightsFileError, "ConfigError": errors.ConfigError,
               "TraceFileError": errors.TraceFileError, "DatasetError": errors.DatasetError,
               "ImageFileError": errors.ImageFileError,
               "ClassNamesError": errors.ClassNamesError, "KeyError": KeyError}


@pytest.mark.parametrize("name, text, title", [
    ("ResourceExhaustedError", "OOM when allocating tensor", "Out of memory"),
    ("MemoryError", "", "Out of memory"),
    ("WeightsMismatchError", "bad shapes", "Weights do not fit the model"),
    ("WeightsFileError", "x.h5: not HDF5", "Cannot read weights"),
    ("ConfigError", "IMAGE_MAX_DIM must be a multiple of 64", "Invalid config"),
    ("TraceFileError", "t.npz: not a trace", "Cannot open trace"),
    ("DatasetError", "cannot read image", "Cannot open image"),
    ("ImageFileError", "x.png: cannot read image file", "Cannot open image"),
    ("ClassNamesError", "names.txt: 3 class names for NUM_CLASSES=5", "Cannot read class names"),
    ("KeyError", "boom", "Unexpected error"),
])
def test_describe_error(name, text, title):
    error = MemoryError() if name == "MemoryError" else ERROR_TYPES[name](text)
    got_title, message = describe_error(error)
    assert got_title == title
    assert text in message
    if title != "Unexpected error":
        assert "What to do" in message


def test_recent_files_and_folder_walk(settings, tmp_path):
    from viewer.recent import MAX_RECENT, RecentFiles, sibling_image

    recent = RecentFiles(settings)
    assert recent.paths() == []
    for i in range(MAX_RECENT + 3):
        recent.add(tmp_path / f"{i}.png")
    recent.add(tmp_path / "1.png")
    paths = recent.paths()
    assert len(paths) == MAX_RECENT and paths[0].endswith("1.png") and paths.count(paths[0]) == 1
    assert RecentFiles(settings).paths() == paths  # persisted
    recent.clear()
    assert recent.paths() == []
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert sibling_image(tmp_path / "a.png", 1).name == "b.jpg"
    assert sibling_image(tmp_path / "b.jpg", 1).name == "a.png"  # wraps
    assert sibling_image(tmp_path / "a.png", -1).name == "b.jpg"
    (tmp_path / "b.jpg").unlink()
    assert sibling_image(tmp_path / "a.png", 1) is None


def test_open_model_dialog(qtbot, tmp_path):
    from viewer.dialogs.open_model import OpenModelDialog

    dialog = OpenModelDialog(demo=None)
    qtbot.addWidget(dialog)
    if demo_model_spec() is None:
        assert not dialog.demo_radio.isEnabled()
    dialog.files_radio.setChecked(True)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not ok.isEnabled()
    weights = tmp_path / "m.h5"
    weights.write_bytes(b"")
    dialog.weights_edit.setText(str(weights))
    dialog.config_edit.setText("c.json")
    assert ok.isEnabled()
    assert dialog.spec() == ModelSpec(weights=str(weights), config="c.json")
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "demo.h5").write_bytes(b"")
    (demo_dir / "config.json").write_text("{}")
    demo = demo_model_spec(demo_dir)
    assert demo.demo and demo.weights.endswith("demo.h5") and demo.config.endswith("config.json")
    with_demo = OpenModelDialog(demo=demo)
    qtbot.addWidget(with_demo)
    assert with_demo.demo_radio.isEnabled() and with_demo.spec() == demo  # fp32: unchanged


@pytest.mark.slow
def test_a_runs_checkpoint_traces_a_file_image_with_the_runs_class_names(tmp_path):
    """The checkpoint of a run, no class names file: the run's names (run.json), as on a
    dataset image, on a file image and so in both compare panes (the same worker)."""
    import json

    import keras
    import skimage.io
    from tiny_config import TinyConfig

    from mrcnn.model import MaskRCNN

    run = tmp_path / "runs" / "shapes_1"
    (run / "checkpoints").mkdir(parents=True)
    config = TinyConfig()
    config.to_json(run / "config.json")
    keras.utils.set_random_seed(0)
    MaskRCNN("inference", config).save_weights(str(run / "checkpoints" / "epoch_0001.h5"))
    keras.backend.clear_session()
    names = ["BG", "square", "circle", "triangle"]
    (run / "run.json").write_text(json.dumps({"status": "finished", "class_names": names}))
    image = tmp_path / "photo.png"
    skimage.io.imsave(image, np.full((128, 128, 3), 90, np.uint8), check_contrast=False)

    worker = TraceWorker(str(image), ModelSpec(weights=str(run / "checkpoints" /
                                                           "epoch_0001.h5")), stats_fn=False)
    results, failures = [], []
    worker.finished.connect(results.append)
    worker.failed.connect(lambda *error: failures.append(error))
    worker.run()  # synchronously: this test is the worker thread
    assert not failures, failures
    assert results[0].class_names == names and results[0].trace.class_names == names
