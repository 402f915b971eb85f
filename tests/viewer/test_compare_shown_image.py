"""Compare… traces the image on screen: a dataset row (with its ground truth), a file, or the
pixels of a saved trace whose image file is gone (issue 19 item 2). Fake loaders, no TensorFlow."""

import numpy as np
import pytest
import shiboken6

import viewer.compare as compare_module
from mrcnn.trace_data import Trace
from viewer.datasets import DatasetSpec
from viewer.workers import TraceWorker

TIMEOUT_MS = 10000
SHAPES_NAMES = ["BG", "square", "circle", "triangle"]


class _Model:
    """Stands in for a loaded MaskRCNN: only its config's class count is read."""

    def __init__(self, weights):
        self.weights = weights
        self.config = type("C", (), {"NUM_CLASSES": 4})()


def _factory(fake_trace, calls):
    """worker_factory recording what each trace got: weights, image shape, names, gt."""
    def trace_fn(model, image, names, gt=None):
        calls.append({"weights": getattr(model, "weights", None), "image": image.copy(),
                      "names": names, "gt": gt})
        return Trace(stages=dict(fake_trace.stages), meta=dict(fake_trace.meta))

    def factory(image_path, spec, model, names, source=None):
        return TraceWorker(image_path, spec, model, names, trace_fn=trace_fn, stats_fn=False,
                           source=source, load_model_fn=lambda s, step: (_Model(s.weights),
                                                                         SHAPES_NAMES))
    return factory


@pytest.fixture
def compares(window, monkeypatch, fake_trace):
    """The compare windows Compare… opens, each tracing with the fake worker factory."""
    calls, made = [], []
    factory = _factory(fake_trace, calls)

    class Injected(compare_module.CompareWindow):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, worker_factory=factory, **kwargs)
            made.append(self)

    monkeypatch.setattr(compare_module, "CompareWindow", Injected)
    window.document.worker_factory = factory
    yield made, calls
    for win in made:
        if shiboken6.isValid(win):
            win.close()


def _compare(window, qtbot, made, config):
    window.training.compareCheckpoints.emit("/r/checkpoints/a.h5", "/r/checkpoints/b.h5", config)
    assert made, "Compare… opened no window"
    qtbot.waitUntil(lambda: not made[-1].is_busy(), timeout=TIMEOUT_MS)
    return made[-1]


def test_compare_traces_the_dataset_row_on_screen_with_its_ground_truth(window, qtbot, compares,
                                                                       dialogs, tmp_path):
    made, calls = compares
    window.open_dataset(DatasetSpec("shapes", count=3, height=64, width=64, seed=2), row=1)
    qtbot.waitUntil(lambda: window.session.trace is not None
                    and not window.document.runner.is_busy(), timeout=TIMEOUT_MS)
    assert window.document.image_file is None  # generated images have no file
    win = _compare(window, qtbot, made, str(tmp_path / "config.json"))
    assert not dialogs, dialogs
    assert [c["weights"] for c in calls] == ["/r/checkpoints/a.h5", "/r/checkpoints/b.h5"]
    dataset = window.session.dataset
    gt = dataset.ground_truth(1)
    for call in calls:
        np.testing.assert_array_equal(call["image"], dataset.load_image(1))
        np.testing.assert_array_equal(call["gt"]["boxes"], gt["boxes"])
        np.testing.assert_array_equal(call["gt"]["class_ids"], gt["class_ids"])
        assert call["names"] == SHAPES_NAMES
    assert "shapes-2-1" in win.windowTitle()
    assert all(side.trace is not None and side.error is None for side in win.sides)


def test_compare_traces_a_saved_traces_image_when_its_file_is_gone(window, qtbot, compares,
                                                                   dialogs, fake_trace, tmp_path):
    made, calls = compares
    trace = Trace(stages=dict(fake_trace.stages), meta=dict(fake_trace.meta,
                                                           image_path="/gone/photo.png"))
    path = trace.save(tmp_path / "saved.npz")
    assert window.open_trace(path) and window.document.image_file is None
    win = _compare(window, qtbot, made, "")
    assert not dialogs, dialogs
    assert len(calls) == 2
    for call in calls:
        np.testing.assert_array_equal(call["image"], fake_trace.image)
        has_gt = "gt" in fake_trace
        assert (call["gt"] is not None) == has_gt
        if has_gt:
            np.testing.assert_array_equal(call["gt"]["boxes"], fake_trace["gt"]["boxes"])
    assert "photo.png" in win.windowTitle()


def test_compare_with_nothing_on_screen_says_open_an_image(window, compares, dialogs):
    made, _ = compares
    window.training.compareCheckpoints.emit("a.h5", "b.h5", "")
    assert not made and dialogs[-1][0] == "No image to compare on"
