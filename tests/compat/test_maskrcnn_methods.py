"""MaskRCNN's matterport methods on a tiny random-weight model, against detect(), the trace and
numpy."""

import numpy as np
import pytest

from mrcnn import imaging
from mrcnn.anchors import get_anchors, get_anchors_pixels
from mrcnn.model import MaskRCNN
from mrcnn.trace import trace


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import keras
    from tiny_config import TinyConfig

    # Random weights from a fixed seed: whatever ran before in this worker process, the model
    # (and whether it detects anything in the image below) is the same.
    keras.utils.set_random_seed(0)
    return MaskRCNN("inference", TinyConfig(), model_dir=str(tmp_path_factory.mktemp("logs")))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(11)
    image = np.full((128, 128, 3), 30, np.uint8)
    image[20:60, 30:90] = rng.integers(100, 255, 3)
    image[70:110, 10:50] = rng.integers(100, 255, 3)
    return image


def test_mold_inputs_and_get_anchors(model, image):
    molded, metas, windows = model.mold_inputs([image])
    expected = imaging.mold_inputs([image], model.config)
    for mine, theirs in zip((molded, metas, windows), expected):
        np.testing.assert_array_equal(mine, theirs)
    anchors = model.get_anchors(molded[0].shape)
    np.testing.assert_array_equal(anchors, get_anchors(model.config, (128, 128)))
    np.testing.assert_array_equal(model.anchors, get_anchors_pixels(model.config, (128, 128)))
    assert anchors.shape == (4092, 4)


def test_detect_molded_equals_detect_on_an_unpadded_image(model, image):
    (expected,) = model.detect([image])
    molded, metas, _ = model.mold_inputs([image])
    (result,) = model.detect_molded(molded, metas)
    assert len(expected["class_ids"]) > 0
    for key in ("rois", "class_ids", "masks"):
        np.testing.assert_array_equal(result[key], expected[key])
    np.testing.assert_allclose(result["scores"], expected["scores"])


def test_unmold_detections_returns_matterports_four_values(model, image):
    molded, metas, windows = model.mold_inputs([image])
    out = model.predict_molded(molded, metas, model.get_anchors(molded[0].shape)[None])
    values = model.unmold_detections(out["detections"][0], out["mrcnn_mask"][0], image.shape,
                                     molded[0].shape, windows[0])
    assert len(values) == 4
    (expected,) = model.detect([image])
    np.testing.assert_array_equal(values[0], expected["rois"])
    np.testing.assert_array_equal(values[3], expected["masks"])


def test_run_graph_equals_the_trace_stages(model, image, capsys):
    graph = model.keras_model
    outputs = model.run_graph([image], [
        ("rpn_class", graph.get_layer("rpn_class").output),
        ("proposals", graph.get_layer("ROI").output),
        ("probs", "mrcnn_class"),  # a layer name works too
        ("detections", graph.get_layer("mrcnn_detection").output),
    ])
    assert list(outputs) == ["rpn_class", "proposals", "probs", "detections"]
    printed = capsys.readouterr().out
    assert "rpn_class" in printed and "shape: (1, 4092, 2)" in printed
    result = trace(model, image, activations=[])
    np.testing.assert_allclose(outputs["rpn_class"][0, :, 1], result["rpn/scores"]["scores"],
                               rtol=1e-5, atol=1e-6)
    post_nms = result["proposals/post_nms"]["boxes"]
    assert outputs["proposals"].shape == (1, model.config.POST_NMS_ROIS_INFERENCE, 4)
    real = len(post_nms)
    # Full 128 px image: original pixels = normalized * (size - 1) (+1 on y2, x2).
    pixels = outputs["proposals"][0, :real] * 127 + np.array([0, 0, 1, 1])
    np.testing.assert_allclose(pixels, post_nms, atol=1e-3)
    np.testing.assert_allclose(outputs["probs"][0, :real], result["heads/class_probs"]["probs"],
                               rtol=1e-5, atol=1e-6)
    (detected,) = model.detect([image])
    count = len(detected["class_ids"])
    np.testing.assert_array_equal(outputs["detections"][0, :count, 4], detected["class_ids"])


def test_run_graph_errors_name_the_output(model, image):
    with pytest.raises(ValueError, match=r"output 'x': no layer named 'no_such_layer'"):
        model.run_graph([image], [("x", "no_such_layer")])
    with pytest.raises(ValueError, match=r"output 'y' is None"):
        model.run_graph([image], [("y", None)])


def test_ancestor_walks_the_keras_graph(model):
    graph = model.keras_model
    pillar = graph.get_layer("ROI").output[0]
    found = model.ancestor(pillar, "rpn_class")
    assert found is graph.get_layer("rpn_class").output
    assert model.ancestor(pillar, "fpn_p[2-6]") is not None
    assert model.ancestor(pillar, "ROI/refined_anchors:0") is None  # not a node in Keras 3


def test_trainable_layers_unwrap_time_distributed(model):
    graph = model.keras_model
    wrapped = graph.get_layer("mrcnn_class_conv1")
    assert "TimeDistributed" in type(wrapped).__name__
    assert model.find_trainable_layer(wrapped) is wrapped.layer
    names = [layer.name for layer in model.get_trainable_layers()]
    assert "conv1" in names and "fpn_c5p5" in names and "rpn_model" in names
    assert all(layer.weights for layer in model.get_trainable_layers())
    assert not any("TimeDistributed" in type(layer).__name__
                   for layer in model.get_trainable_layers())


def test_set_trainable_prints_and_returns_the_heads(model, capsys):
    names = model.set_trainable("heads", verbose=1)
    printed = capsys.readouterr().out.split()
    assert printed == names and "mrcnn_class_logits" in names and "conv1" not in names
    assert all(n.startswith(("mrcnn_", "rpn_", "fpn_")) for n in names)


def test_set_log_dir_and_find_last(model, tmp_path):
    path = tmp_path / "tiny20240102T0304" / "mask_rcnn_tiny_0005.h5"
    model.set_log_dir(str(path))
    assert model.epoch == 5 and model.log_dir.endswith("tiny20240102T0304")
    assert model.checkpoint_path.endswith("mask_rcnn_tiny_{epoch:04d}.h5")
    model.set_log_dir()
    assert model.epoch == 0
    with pytest.raises(FileNotFoundError, match="no run directory starting with 'tiny'"):
        model.find_last()
