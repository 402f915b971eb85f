"""The viewer with a real (tiny, random-weight) model through the real worker: no injected steps.

One module-scoped model (config JSON + weights written by the test); TensorFlow runs only on the
worker thread the window starts, as it does for users.
"""

import json

import numpy as np
import pytest

from viewer.datasets import DatasetSpec
from viewer.stages import STAGE_KEYS
from viewer.workers import ModelSpec
from tiny_config import tiny_config_values

pytestmark = pytest.mark.slow  # ~30-40 s on 2 cores: TF import, two model builds, two traces

TRACE_TIMEOUT_MS = 240_000
# tests/tiny_config.py's TinyConfig, as the JSON a user would pass with --config.
TINY_CONFIG = tiny_config_values()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(ModelSpec of a tiny random model, config dict): 128 px, resnet18, 4 classes."""
    from mrcnn.config import Config

    folder = tmp_path_factory.mktemp("tiny_model")
    config = Config.from_dict(TINY_CONFIG)
    config.to_json(folder / "config.json")
    from mrcnn.model import MaskRCNN

    MaskRCNN("inference", config).save_weights(str(folder / "tiny.h5"))
    return ModelSpec(weights=str(folder / "tiny.h5"), config=str(folder / "config.json")), \
        json.loads((folder / "config.json").read_text())


def _wait_idle(window, qtbot):
    qtbot.waitUntil(lambda: not window.document.runner.is_busy(), timeout=TRACE_TIMEOUT_MS)


def test_mismatched_weights_then_real_trace_of_a_dataset_image(window, qtbot, dialogs, tiny_model,
                                                               tmp_path):
    spec, config = tiny_model
    # 1. Weights for 4 classes with a config for 5: the dialog names the layer and both shapes.
    wrong = tmp_path / "five_classes.json"
    wrong.write_text(json.dumps(dict(config, NUM_CLASSES=5, NAME="five")))
    window.set_model(ModelSpec(weights=spec.weights, config=str(wrong)))
    qtbot.waitUntil(lambda: bool(dialogs), timeout=TRACE_TIMEOUT_MS)
    title, message = dialogs[-1]
    assert title == "Weights do not fit the model"
    fc = config["FPN_CLASSIF_FC_LAYERS_SIZE"]
    assert f"mrcnn_class_logits: kernel shape in model ({fc}, 5) vs in file ({fc}, 4)" in message
    assert "What to do" in message
    assert window.document.model is None and window.session.weight_stats is None

    # 2. The window keeps working: a shapes image with its ground truth, the right config.
    window.open_dataset(DatasetSpec("shapes", count=3, height=128, width=128, seed=0), row=0,
                        model=spec)
    qtbot.waitUntil(lambda: window.session.trace is not None
                    and "detections" in window.session.trace, timeout=TRACE_TIMEOUT_MS)
    _wait_idle(window, qtbot)
    trace = window.session.trace
    assert window.session.dataset is not None and window.session.dataset_row == 0
    assert window.dataset_panel.current_row() == 0
    assert trace.class_names == ["BG", "square", "circle", "triangle"]

    # Ground truth: boxes from the dataset's masks, targets, and the GT panel's recall.
    gt = window.session.dataset.ground_truth(0)
    np.testing.assert_array_equal(trace["gt"]["boxes"], gt["boxes"])
    assert {"targets/rpn", "targets/rois"} <= set(trace.stages)
    gt_panel = window.panels["Ground truth"]
    assert gt_panel.gt_table.rowCount() == len(gt["boxes"]) > 0
    assert set(gt_panel.recall) == {"Anchors", "Refined anchors", "Proposals"}
    assert window.canvas.curves["gt"].isVisible()

    # Every stage can be stepped to, and each draws something with a note.
    assert window.session.stage_keys() == list(STAGE_KEYS)
    window.session.step_stage(-len(STAGE_KEYS))
    seen = [window.session.stage]
    for _ in STAGE_KEYS[1:]:
        window.session.step_stage(1)
        seen.append(window.session.stage)
        note = window.canvas.info.text()
        assert note and "no data" not in note, (window.session.stage, note)
    assert seen == list(STAGE_KEYS)

    # Detections table rows = the trace's detections at or above the threshold.
    scores = trace["detections"]["scores"]
    for threshold in (0.0, float(np.median(scores)) if len(scores) else 0.5, 1.0):
        window.session.set_score_threshold(threshold)
        expected = int(np.sum(scores >= window.session.score_threshold))
        assert window.detections_table.model.rowCount() == expected

    # Weight statistics were computed on the worker and reached the weights panel.
    weights = window.panels["Weights"]
    assert weights.model.rowCount() > 50
    assert {row["layer"] for row in weights.model.rows} >= {"conv1", "mrcnn_class_logits"}
    assert weights.selected_row == 0

    # Activations: a layer and its first channel show without a click.
    activations = window.panels["Activations"]
    assert activations.layer is not None and activations.channel == 0

    # The next dataset image reuses the loaded model (no second load, same statistics).
    model, stats = window.document.model, window.session.weight_stats
    window.next_image(1)
    qtbot.waitUntil(lambda: window.session.dataset_row == 1
                    and window.session.trace is not trace, timeout=TRACE_TIMEOUT_MS)
    _wait_idle(window, qtbot)
    assert window.document.model is model and window.session.weight_stats is stats
    assert "gt" in window.session.trace
