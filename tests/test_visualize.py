"""Figures: each function returns a Figure that saves to a non-empty, non-flat PNG; no Qt, no pyplot."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn import visualize
from mrcnn.stats import compute_stat
from mrcnn.trace_data import STAGE_ORDER, Trace

H, W = 64, 80


def _check_png(fig, path):
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=40)
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.size > 0 and path.stat().st_size > 0
    assert pixels[..., :3].reshape(-1, 3).std(axis=0).max() > 0.01, "figure is one flat colour"


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    image = np.full((H, W, 3), 60, np.uint8)
    image[10:40, 20:60] = rng.integers(100, 256, (30, 40, 3))
    return image


@pytest.fixture(scope="module")
def instances():
    boxes = np.array([[10, 20, 40, 60], [30, 5, 60, 30]], np.int32)
    masks = np.zeros((H, W, 2), bool)
    masks[12:38, 22:58, 0] = True
    masks[32:58, 7:28, 1] = True
    return boxes, masks, np.array([1, 2]), np.array([0.9, 0.6], np.float32)


def fake_trace(image, instances) -> Trace:
    """A small, consistent trace built from numpy alone (2 levels of 2x2 and 1x1 cells)."""
    rng = np.random.default_rng(1)
    boxes, masks, class_ids, scores = instances
    anchors = np.array([[0, 0, 32, 40], [0, 40, 32, 80], [32, 0, 64, 40], [32, 40, 64, 80],
                        [0, 0, 64, 80]], np.float32)
    levels = np.array([2, 2, 2, 2, 3], np.int32)
    probs = rng.dirichlet(np.ones(3), size=4).astype(np.float32)
    proposals = anchors[[0, 1, 2, 4]]
    stages = {
        "input": {"image": image, "molded": image},
        "anchors": {"boxes": anchors, "levels": levels},
        "rpn/scores": {"scores": rng.random(5).astype(np.float32)},
        "rpn/deltas": {"deltas": rng.normal(0, 0.1, (5, 4)).astype(np.float32)},
        "proposals/pre_nms": {"boxes": anchors + 1, "unclipped": anchors + 1,
                              "scores": np.linspace(1, 0.5, 5).astype(np.float32),
                              "anchor_indices": np.arange(5, dtype=np.int32)},
        "proposals/post_nms": {"boxes": proposals, "scores": np.linspace(1, 0.5, 4),
                               "indices": np.array([0, 1, 2, 4], np.int32)},
        "targets/rpn": {"match": np.array([1, -1, 0, -1, 1], np.int32),
                        "deltas": np.zeros((2, 4), np.float32),
                        "positive_indices": np.array([0, 4], np.int32)},
        "targets/rois": {"boxes": proposals[:3], "class_ids": np.array([1, 0, 0], np.int32),
                         "deltas": np.zeros((3, 4), np.float32),
                         "masks": np.zeros((3, 28, 28), np.float32),
                         "proposal_indices": np.array([0, 1, 2], np.int32)},
        "heads/class_probs": {"probs": probs},
        "heads/refined": {"boxes": np.repeat(proposals[:, None], 3, axis=1) + 2},
        "detections/pre_nms": {"boxes": boxes.astype(np.float32), "class_ids": class_ids,
                               "scores": scores, "roi_indices": np.array([0, 1], np.int32)},
        "detections": {"boxes": boxes, "class_ids": class_ids, "scores": scores,
                       "roi_indices": np.array([0, 1], np.int32),
                       "pre_nms_indices": np.array([0, 1], np.int32)},
        "masks/raw": {"masks": rng.random((2, 28, 28)).astype(np.float32)},
        "masks": {"masks": masks},
        "gt": {"boxes": boxes, "class_ids": class_ids, "masks": masks},
        "activations/fpn_p2": {"values": rng.normal(size=(16, 20, 5)).astype(np.float16)},
    }
    meta = {"class_names": ["BG", "square", "circle"], "level_shapes": [[2, 2], [1, 1]],
            "config": {"NUM_CLASSES": 3, "RPN_ANCHOR_STRIDE": 1}}
    return Trace(stages=stages, meta=meta)


@pytest.fixture(scope="module")
def trace(image, instances):
    return fake_trace(image, instances)


def test_display_instances(image, instances, tmp_path):
    boxes, masks, class_ids, scores = instances
    _check_png(visualize.display_instances(image, boxes, masks, class_ids,
                                           ["BG", "square", "circle"], scores),
               tmp_path / "instances.png")


def test_display_instances_empty(image, tmp_path):
    fig = visualize.display_instances(image, np.zeros((0, 4)), np.zeros((H, W, 0), bool),
                                      np.zeros(0, int), ["BG"])
    _check_png(fig, tmp_path / "empty.png")


def test_draw_boxes_before_after(image, instances, tmp_path):
    boxes, masks, _, _ = instances
    fig = visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 3, masks=masks,
                               captions=["a", "b"], visibilities=[2, 1])
    # Dotted boxes before refinement, solid after.
    assert {p.get_linestyle() for p in fig.axes[0].patches} == {"dotted", "solid"}
    _check_png(fig, tmp_path / "boxes.png")
    _check_png(visualize.draw_boxes(image, refined_boxes=boxes), tmp_path / "refined_only.png")


def test_display_top_masks(image, instances, tmp_path):
    _, masks, class_ids, _ = instances
    _check_png(visualize.display_top_masks(image, masks, class_ids, ["BG", "square", "circle"]),
               tmp_path / "top.png")


def test_display_weight_stats(tmp_path):
    rng = np.random.default_rng(0)
    stats = [compute_stat("conv", "kernel", rng.normal(size=(3, 3, 4, 8))),
             compute_stat("conv", "bias", np.zeros(8)),
             compute_stat("dead", "kernel", np.zeros((3, 3))),
             compute_stat("big", "kernel", np.array([1.0, 5e3]))]
    _check_png(visualize.display_weight_stats(stats), tmp_path / "weights.png")


def test_plot_precision_recall(tmp_path):
    fig = visualize.plot_precision_recall(0.75, np.array([0, 1, 1, 0.66, 0]),
                                          np.array([0, 0.33, 0.66, 0.66, 1]))
    _check_png(fig, tmp_path / "pr.png")


def test_plot_overlaps(tmp_path):
    overlaps = np.array([[0.9, 0.1], [0.2, 0.7], [0.0, 0.0]])
    fig = visualize.plot_overlaps([1, 2], [1, 1, 2], [0.9, 0.8, 0.3], overlaps,
                                  ["BG", "square", "circle"])
    _check_png(fig, tmp_path / "overlaps.png")


def test_display_activations(tmp_path):
    values = np.random.default_rng(0).normal(size=(8, 10, 20)).astype(np.float16)
    fig = visualize.display_activations(values, max_channels=6)
    assert sum(1 for ax in fig.axes if ax.images) == 6
    _check_png(fig, tmp_path / "act.png")


def test_stage_figure_every_stage(trace, tmp_path):
    keys = [k for k in STAGE_ORDER] + ["activations/fpn_p2"]
    assert set(keys) == set(trace.stages)
    for key in keys:
        _check_png(visualize.stage_figure(trace, key), tmp_path / f"{key.replace('/', '_')}.png")


def test_stage_figure_no_detections(image, instances, tmp_path):
    empty = fake_trace(image, instances)
    empty.stages["detections"] = {k: v[:0] for k, v in empty["detections"].items()}
    empty.stages["masks/raw"] = {"masks": np.zeros((0, 28, 28), np.float32)}
    empty.stages["masks"] = {"masks": np.zeros((H, W, 0), bool)}
    for key in ("detections", "masks/raw", "masks"):
        _check_png(visualize.stage_figure(empty, key), tmp_path / f"{key.replace('/', '_')}.png")


def test_stage_figure_unknown_key(trace):
    with pytest.raises(KeyError, match="no stage"):
        visualize.stage_figure(trace, "nope")


def test_no_qt_and_no_pyplot():
    code = ("import sys, numpy as np; from mrcnn import visualize; "
            "visualize.draw_boxes(np.zeros((8, 8, 3), np.uint8), np.array([[1, 1, 5, 5]])); "
            "bad = [m for m in sys.modules if m.startswith(('PySide', 'PyQt', 'matplotlib.pyplot',"
            " 'tensorflow'))]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
