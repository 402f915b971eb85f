"""Weight statistics (model and HDF5 file), flags, table, dict round trip; RPN recall."""

import json

import numpy as np
import pytest

from mrcnn.stats import (HISTOGRAM_BINS, WeightStat, compute_stat, format_stats_table,
                         rpn_recall, stats_from_dicts, stats_to_dicts, weight_stats,
                         weight_stats_from_file)
from mrcnn.trace_data import Trace


@pytest.fixture(scope="module")
def keras_model():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(2, 1, name="conv_b")(x)
    return keras.Model(inputs, x)


def test_compute_stat_values_and_histogram():
    values = np.array([[0.0, 1.0], [2.0, -3.0]], np.float32)
    stat = compute_stat("layer", "kernel", values, bins=4)
    assert stat.shape == (2, 2) and stat.size == 4
    assert (stat.min, stat.max) == (-3.0, 2.0)
    assert stat.mean == pytest.approx(0.0) and stat.std == pytest.approx(np.std(values))
    assert stat.zero_fraction == 0.25 and stat.nonfinite == 0
    assert stat.hist_counts.sum() == 4 and len(stat.bin_edges) == 5
    np.testing.assert_allclose(stat.bin_edges[[0, -1]], [-3.0, 2.0])
    assert stat.flags == []


@pytest.mark.parametrize("name, values, dead, exploding", [
    ("kernel", np.zeros((3, 3)), True, False),
    ("kernel", np.full((3, 3), 0.5), True, False),       # constant kernel: std 0
    ("bias", np.zeros(3), False, False),                 # zero bias is a normal start
    ("kernel", np.array([1.0, -2e3]), False, True),
    ("bias", np.array([1.0, np.nan]), False, True),
    ("moving_variance", np.array([1.0, 5e3]), False, False),  # BN statistics can be large
    ("moving_variance", np.array([1.0, np.inf]), False, True),
])
def test_flags(name, values, dead, exploding):
    stat = compute_stat("layer", name, values)
    assert (stat.dead, stat.exploding) == (dead, exploding)


def test_all_nonfinite_and_empty():
    stat = compute_stat("l", "kernel", np.array([np.nan, np.inf]))
    assert stat.nonfinite == 2 and stat.exploding and np.isnan(stat.mean)
    assert stat.hist_counts.sum() == 0
    restored = WeightStat.from_dict(json.loads(json.dumps(stat.to_dict())))
    assert np.isnan(restored.min) and restored.nonfinite == 2


def test_weight_stats_of_model_and_file_agree(keras_model, tmp_path):
    from mrcnn.weights import save_weights

    keras_model.get_layer("conv_b").kernel.assign(np.zeros((1, 1, 4, 2), np.float32))
    stats = weight_stats(keras_model)
    names = [(s.layer, s.name) for s in stats]
    assert names == [("conv_a", "kernel"), ("conv_a", "bias"), ("bn_a", "gamma"), ("bn_a", "beta"),
                     ("bn_a", "moving_mean"), ("bn_a", "moving_variance"), ("conv_b", "kernel"),
                     ("conv_b", "bias")]
    assert stats[0].shape == (3, 3, 3, 4) and len(stats[0].hist_counts) == HISTOGRAM_BINS
    assert stats[6].dead and not stats[0].dead
    path = tmp_path / "w.h5"
    save_weights(keras_model, path)
    from_file = weight_stats_from_file(path)
    assert [(s.layer, s.name) for s in from_file] == names
    for a, b in zip(stats, from_file):
        assert a.shape == b.shape and a.flags == b.flags
        np.testing.assert_array_equal(a.hist_counts, b.hist_counts)
        assert a.mean == pytest.approx(b.mean)


def test_weight_stats_of_maskrcnn_cover_nested_rpn():
    from tiny_config import TinyConfig

    from mrcnn.model import MaskRCNN

    stats = weight_stats(MaskRCNN("inference", TinyConfig()))
    layers = {s.layer for s in stats}
    assert {"conv1", "rpn_conv_shared", "rpn_bbox_pred", "mrcnn_class_logits", "mrcnn_mask"} <= layers
    assert not any(s.flags for s in stats)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        weight_stats_from_file(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5"):
        weight_stats_from_file(bad)


def test_dict_round_trip_and_table():
    stats = [compute_stat("conv", "kernel", np.linspace(-1, 1, 30).reshape(5, 6)),
             compute_stat("conv", "bias", np.array([0.0, 2e4]))]
    restored = stats_from_dicts(json.loads(json.dumps(stats_to_dicts(stats))))
    for a, b in zip(stats, restored):
        assert a.to_dict() == b.to_dict()
    table = format_stats_table(stats)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["WEIGHT", "SHAPE", "MIN"]
    assert "conv/kernel" in lines[1] and "5x6" in lines[1]
    assert "exploding" in lines[2]
    assert lines[-1].startswith("2 weight tensors") and "1 flagged" in lines[-1]
    assert "conv/kernel" not in format_stats_table(stats, anomalies_only=True)


def _recall_trace():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32)
    pre = np.array([[0, 0, 10, 10], [21, 21, 41, 41]], np.float32)
    post = np.array([[0, 0, 10, 10]], np.float32)
    return Trace(stages={"anchors": {"boxes": anchors},
                         "proposals/pre_nms": {"boxes": pre},
                         "proposals/post_nms": {"boxes": post}})


def test_rpn_recall():
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [70, 70, 90, 90]])
    recall = rpn_recall(_recall_trace(), gt)
    assert recall["anchors"] == pytest.approx(2 / 3)
    assert recall["refined_anchors"] == pytest.approx(2 / 3)  # IoU 0.82 with the shifted box
    assert recall["proposals"] == pytest.approx(1 / 3)
    assert recall["counts"] == {"anchors": 3, "refined_anchors": 2, "proposals": 1}
    assert rpn_recall(_recall_trace(), gt, iou=0.9)["refined_anchors"] == pytest.approx(1 / 3)
    assert rpn_recall(_recall_trace(), np.zeros((0, 4)))["anchors"] == 1.0
