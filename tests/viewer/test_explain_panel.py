"""Explain panel: worker results shown over the image, cached, exported; errors shown; no TF.

The worker is the real ExplainWorker on a real thread (JobRunner) with a numpy ``explain_fn``
standing in for TensorFlow: a Gaussian blob on the detection's box.
"""

import subprocess
import sys
import threading

import numpy as np
import pytest

from mrcnn.explain_errors import LayerNotFeedingError
from mrcnn.explain_render import overlay
from viewer.explain_worker import ExplainWorker
from viewer.panels.explain_panel import ExplainPanel
from viewer.session import Session

TIMEOUT_MS = 5000


def blob_map(image, box) -> np.ndarray:
    """[H, W] float32 Gaussian centred on ``box`` [y1, x1, y2, x2], peak 1."""
    height, width = image.shape[:2]
    cy, cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    yy, xx = np.mgrid[:height, :width]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 12.0 ** 2)).astype(np.float32)


class FakeExplain:
    """Records calls; returns blob_map of the detection's box; optional gate / error."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error
        self.gate = None  # threading.Event: block until set

    def __call__(self, model, image, detection, trace=None, **options):
        self.calls.append((detection, options))
        if self.gate is not None:
            self.gate.wait(5)
        if self.error is not None:
            raise self.error
        if options.get("gt") is not None:
            return blob_map(image, trace["gt"]["boxes"][options["gt"]])
        return blob_map(image, trace["detections"]["boxes"][detection])


@pytest.fixture
def fake():
    return FakeExplain()


@pytest.fixture
def panel(qtbot, fake_trace, fake):
    session = Session()
    session.set_trace(fake_trace)
    widget = ExplainPanel(session, model_provider=lambda: "model",
                          worker_factory=lambda m, t, r: ExplainWorker(m, t, r, explain_fn=fake))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.runner.cancel()
    widget.runner.wait()


def _select(qtbot, panel, index):
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT_MS):
        panel.session.select("detection", index)


def test_selected_detection_is_explained_and_drawn(qtbot, panel, fake, fake_trace):
    _select(qtbot, panel, 2)
    box = fake_trace["detections"]["boxes"][2]
    expected = blob_map(fake_trace.image, box)
    np.testing.assert_array_equal(panel.saliency, expected)
    np.testing.assert_array_equal(panel.rendered(), overlay(fake_trace.image, expected, 0.6, box))
    assert fake.calls[0][0] == 2
    assert fake.calls[0][1]["method"] == "gradcam" and fake.calls[0][1]["layer"] is None
    assert panel.title.text().startswith("Detection 2:")
    shown = panel.image_item.image
    assert shown.shape == fake_trace.image.shape and (shown == panel.rendered()).all()


def test_cached_per_detection_method_layer_target(qtbot, panel, fake):
    _select(qtbot, panel, 1)
    _select(qtbot, panel, 3)
    panel.session.select("detection", 1)  # cached: no new job
    assert len(fake.calls) == 2 and panel.status.text() == "(cached)"
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT_MS):
        panel.target.setCurrentIndex(1)  # mask logits: a new map
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT_MS):
        panel.layer.setCurrentText("fpn_p3")
    assert [(c[0], c[1]["target"], c[1]["layer"]) for c in fake.calls[2:]] == [
        (1, "mask", None), (1, "mask", "fpn_p3")]
    panel.layer.setCurrentIndex(0)   # back to auto (mask): cached
    panel.target.setCurrentIndex(0)  # and class: cached
    assert len(fake.calls) == 4 and panel.saliency is not None


def test_opacity_slider_and_png_export(qtbot, panel, fake_trace, tmp_path):
    from matplotlib.image import imread

    _select(qtbot, panel, 0)
    box = fake_trace["detections"]["boxes"][0]
    panel.opacity.setValue(0)
    np.testing.assert_array_equal(panel.rendered(), overlay(fake_trace.image, panel.saliency,
                                                            0.0, box))
    panel.opacity.setValue(100)
    opaque = panel.rendered()
    assert (opaque != fake_trace.image).any(axis=-1).mean() > 0.05
    np.testing.assert_array_equal(panel.image_item.image, opaque)
    panel.export_png(tmp_path / "map.png")
    written = np.round(imread(tmp_path / "map.png")[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(written, opaque)


def test_stale_result_is_dropped(qtbot, panel, fake, fake_trace):
    fake.gate = threading.Event()
    panel.session.select("detection", 0)   # blocks in the worker
    qtbot.waitUntil(lambda: len(fake.calls) == 1, timeout=TIMEOUT_MS)
    fake.gate.set()
    fake.gate = None
    _select(qtbot, panel, 4)
    panel.runner.wait()
    qtbot.wait(50)
    expected = blob_map(fake_trace.image, fake_trace["detections"]["boxes"][4])
    np.testing.assert_array_equal(panel.saliency, expected)
    assert panel.title.text().startswith("Detection 4:")


def test_errors_are_shown_and_the_panel_keeps_working(qtbot, panel, fake):
    fake.error = LayerNotFeedingError("explain: layer 'fpn_p4' feeds P4 only, but detection 1's "
                                      "ROI is pooled from P2")
    with qtbot.waitSignal(panel.runner.failed, timeout=TIMEOUT_MS):
        panel.session.select("detection", 1)
    assert "Cannot explain this selection" in panel.status.text()
    assert "pooled from P2" in panel.status.text() and panel.saliency is None
    assert panel.explain_button.isEnabled()
    fake.error = None
    _select(qtbot, panel, 2)
    assert panel.saliency is not None


def test_no_model_says_so(qtbot, fake_trace):
    session = Session()
    session.set_trace(fake_trace)
    widget = ExplainPanel(session, model_provider=lambda: None)
    qtbot.addWidget(widget)
    session.select("detection", 0)
    assert "No model" in widget.status.text() and not widget.runner.is_busy()
    with pytest.raises(ValueError, match="nothing to export"):
        widget.export_png("unused.png")


def test_drise_waits_for_the_button_and_reports_progress(qtbot, panel, fake):
    panel.method.setCurrentIndex(2)  # D-RISE
    panel.masks.setValue(200)
    panel.session.select("detection", 3)
    assert fake.calls == [] and "Press Explain" in panel.status.text()
    assert not panel.layer.isEnabled()
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT_MS):
        panel.explain_button.click()
    (detection, options), = fake.calls
    assert detection == 3 and options["method"] == "drise" and options["num_masks"] == 200
    assert callable(options["progress"]) and options["cancel"]() is False


def test_new_trace_clears_the_cache(qtbot, panel, fake_trace):
    _select(qtbot, panel, 0)
    assert panel.cache
    panel.session.set_trace(fake_trace)
    assert not panel.cache and panel.saliency is None


def test_main_window_docks_the_explain_panel(window):
    assert isinstance(window.panels.get("Explain"), ExplainPanel)
    assert window.panels["Explain"].model_provider() is None  # the window's model: none yet
    # its jobs queue on the model thread, behind the traces (never two threads on one model)
    assert window.panels["Explain"].runner._thread is window.document.runner._thread


def test_panel_and_worker_import_no_tensorflow():
    code = ("import sys, viewer.panels.explain_panel, viewer.explain_worker; "
            "assert 'tensorflow' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_selected_gt_object_is_explained_through_its_diagnosis(qtbot, panel, fake, fake_trace):
    """A GT row selected (Diagnosis / Ground truth tab): the worker gets gt=, not a detection;
    the title says what its diagnosis points to; the GT box is outlined; cached apart."""
    from viewer.diagnosis_view import diagnosis_of

    verdicts = diagnosis_of(fake_trace).gt
    g = next((v.index for v in verdicts if v.cause != "detected"), 0)
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT_MS):
        panel.session.select("gt", g)
    assert fake.calls[-1][0] is None and fake.calls[-1][1]["gt"] == g
    box = fake_trace["gt"]["boxes"][g]
    expected = blob_map(fake_trace.image, box)
    np.testing.assert_array_equal(panel.saliency, expected)
    np.testing.assert_array_equal(panel.rendered(), overlay(fake_trace.image, expected, 0.6, box))
    title = panel.title.text()
    assert title.startswith(f"GT {g}: ") and "explaining" in title
    assert ("found" if verdicts[g].cause == "detected" else "missed") in title
    _select(qtbot, panel, g)  # detection g: its own map, not the GT's cached one
    assert fake.calls[-1] == (g, fake.calls[-1][1]) and "gt" not in fake.calls[-1][1]
    panel.session.select("gt", g)
    assert panel.status.text() == "(cached)" and len(fake.calls) == 2
