"""The demo as a first-time user meets it (issue 19, smaller points): while the model loads the
canvas says it is loading (not "Open an image and a model"), and the first trace opens on
Final result as the README says. Fake model loader and trace; the real sample dataset."""

import threading

from mrcnn.trace_data import Trace
from viewer.app import RESULT_STAGE, build_parser, open_startup
from viewer.loading_hint import LOADING_TITLE
from viewer.panels.canvas import EMPTY_HINT
from viewer.workers import LOADING_TF, TraceWorker

TIMEOUT_MS = 15000


class _Model:
    def __init__(self):
        self.config = type("C", (), {"NUM_CLASSES": 4})()


def test_demo_says_it_is_loading_then_opens_on_final_result(window, qtbot, fake_trace):
    gate = threading.Event()
    traced = []

    def loader(spec, step):
        step(LOADING_TF)
        gate.wait(10)  # TensorFlow "loads" until the test has looked at the canvas
        return _Model(), ["BG", "square", "circle", "triangle"]

    def trace_fn(model, image, names, gt=None):
        traced.append(gt)
        return Trace(stages=dict(fake_trace.stages), meta=dict(fake_trace.meta))

    def factory(image_path, spec, model, names, source=None):
        return TraceWorker(image_path, spec, model, names, load_model_fn=loader,
                           trace_fn=trace_fn, stats_fn=False, source=source)

    window.document.worker_factory = factory
    hint = window.canvas.empty_hint
    assert hint.text() == EMPTY_HINT
    try:
        open_startup(window, build_parser().parse_args([]))  # no arguments: the demo
        qtbot.waitUntil(lambda: LOADING_TF in hint.text(), timeout=TIMEOUT_MS)
        assert hint.text().startswith(LOADING_TITLE) and "Open an image" not in hint.text()
        assert window.canvas.stack.currentWidget() is hint
    finally:
        gate.set()
    qtbot.waitUntil(lambda: window.session.trace is not None
                    and not window.document.runner.is_busy(), timeout=TIMEOUT_MS)
    assert traced and traced[0] is not None  # the sample image's ground truth went along
    assert window.session.stage == RESULT_STAGE == "composite"
    assert window.stage_list.item_for(RESULT_STAGE).isSelected()
    assert hint.text() == EMPTY_HINT  # what to open, once nothing is loading


def test_cancelled_loading_gives_the_hint_back(window, qtbot):
    window.session.set_busy(True)
    window.session.set_status("Building model…")
    assert window.canvas.empty_hint.text() == f"{LOADING_TITLE}\nBuilding model…"
    window.session.set_busy(False)
    assert window.canvas.empty_hint.text() == EMPTY_HINT
