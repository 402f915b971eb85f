"""viewer.export: panel PNGs, trace .npz and detections JSON; atomic writes, clear errors."""

import json

import numpy as np
import pyqtgraph as pg
import pytest
import skimage.io
from pycocotools import mask as mask_utils

from mrcnn.stats import compute_stat
from mrcnn.trace_data import Trace
from viewer.export import (export_detections_json, export_trace, export_widget_png,
                           PNG_SCALE)
from viewer.panels.activations import ActivationsPanel
from viewer.panels.gt_panel import GroundTruthPanel
from viewer.panels.timings import TimingsPanel
from viewer.panels.weights import WeightsPanel
from viewer.session import Session

CLASS_NAMES = ["BG", "circle", "square"]


def make_trace() -> Trace:
    """64x48 image, 3 detections with masks (one below score 0.5), GT, activations, timings."""
    rng = np.random.default_rng(0)
    height, width = 64, 48
    masks = np.zeros((height, width, 3), bool)
    masks[5:20, 4:30, 0] = True
    masks[30:60, 10:20, 1] = True
    masks[40:44, 30:47, 2] = True
    masks[41, 33, 2] = False  # a hole, so the RLE is not just a rectangle
    stages = {
        "input": {"image": rng.integers(0, 255, (height, width, 3), dtype=np.uint8)},
        "anchors": {"boxes": np.array([[5, 4, 20, 30]], np.float32), "levels": np.array([2])},
        "detections": {"boxes": np.array([[5, 4, 20, 30], [30, 10, 60, 20], [40, 30, 44, 47]],
                                         np.float32),
                       "class_ids": np.array([1, 2, 1]), "scores": np.array([0.9, 0.6, 0.3]),
                       "roi_indices": np.array([0, 1, 2])},
        "masks": {"masks": masks},
        "gt": {"boxes": np.array([[5, 4, 20, 30], [30, 10, 60, 22]], np.float32),
               "class_ids": np.array([1, 2])},
        "targets/rpn": {"match": np.array([1, -1, 0, 0])},
        "activations/res3d_out": {"values": rng.normal(size=(8, 6, 20)).astype(np.float16)},
    }
    meta = {"class_names": CLASS_NAMES, "timings": {"backbone": 0.02, "rpn": 0.01, "heads": 0.03}}
    return Trace(stages=stages, meta=meta)


@pytest.fixture
def session():
    session = Session()
    session.set_trace(make_trace())
    rng = np.random.default_rng(2)
    session.set_weight_stats([compute_stat("conv1", "kernel", rng.normal(size=(3, 3, 3, 8))).to_dict(),
                              compute_stat("fc", "kernel", np.zeros((4, 4))).to_dict()])
    return session


def _assert_png_has_content(path):
    image = skimage.io.imread(path)
    assert image.size > 0 and image.shape[0] > 10 and image.shape[1] > 10
    pixels = image.reshape(-1, image.shape[-1]) if image.ndim == 3 else image.reshape(-1, 1)
    assert (pixels != pixels[0]).any(), f"{path} is a single flat colour"
    return image


@pytest.mark.parametrize("panel_class", [ActivationsPanel, WeightsPanel, TimingsPanel,
                                         GroundTruthPanel])
def test_each_panel_exports_a_png_with_content(qtbot, session, tmp_path, panel_class):
    panel = panel_class(session)
    qtbot.addWidget(panel)
    panel.resize(640, 420)
    panel.show()
    qtbot.waitExposed(panel)
    if panel_class is ActivationsPanel:
        panel.show_layer("res3d_out")
        panel.show_channel(3)
    if panel_class is WeightsPanel:
        panel.select_weight("conv1", "kernel")
    path = tmp_path / f"{panel_class.__name__}.png"
    assert panel.export_png(path) == path
    _assert_png_has_content(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


@pytest.mark.parametrize("kind", ["plot", "layout"])
def test_pyqtgraph_widgets_export_at_twice_their_size(qtbot, tmp_path, kind):
    if kind == "plot":
        widget = pg.PlotWidget()
        widget.plot([0, 1, 2, 3], [1, 3, 2, 4], pen="r")
    else:  # the canvas: a GraphicsLayoutWidget holding a ViewBox with an image
        widget = pg.GraphicsLayoutWidget()
        widget.addViewBox().addItem(pg.ImageItem(np.random.default_rng(0).random((16, 24))))
    qtbot.addWidget(widget)
    widget.resize(300, 200)
    widget.show()
    qtbot.waitExposed(widget)
    image = _assert_png_has_content(export_widget_png(widget, tmp_path / "plot.png"))
    assert image.shape[1] == PNG_SCALE * widget.width()


def test_detections_json_round_trip(tmp_path):
    trace = make_trace()
    path = export_detections_json(trace, tmp_path / "detections.json")
    items = json.loads(path.read_text())
    assert [item["class_name"] for item in items] == ["circle", "square", "circle"]
    masks = trace["masks"]["masks"]
    for i, item in enumerate(items):
        assert item["box"] == trace["detections"]["boxes"][i].tolist()
        assert item["class_id"] == int(trace["detections"]["class_ids"][i])
        assert item["score"] == pytest.approx(float(trace["detections"]["scores"][i]))
        assert item["mask_area"] == int(masks[:, :, i].sum())
        assert isinstance(item["mask_rle"]["counts"], str)
        decoded = mask_utils.decode(item["mask_rle"])
        np.testing.assert_array_equal(decoded.astype(bool), masks[:, :, i])

    filtered = json.loads(export_detections_json(trace, path, score_threshold=0.5).read_text())
    assert [item["score"] for item in filtered] == pytest.approx([0.9, 0.6])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detections.json"]


def test_detections_json_without_masks_or_detections(tmp_path):
    trace = make_trace()
    del trace.stages["masks"]
    items = json.loads(export_detections_json(trace, tmp_path / "d.json").read_text())
    assert len(items) == 3 and items[0]["mask_rle"] is None and items[0]["mask_area"] is None
    del trace.stages["detections"]
    with pytest.raises(ValueError, match="no 'detections' stage"):
        export_detections_json(trace, tmp_path / "d.json")


def test_export_trace_round_trip(tmp_path):
    trace = make_trace()
    path = export_trace(trace, tmp_path / "trace.bin")
    assert path == tmp_path / "trace.npz"
    loaded = Trace.load(path)
    assert set(loaded.stages) == set(trace.stages)
    np.testing.assert_array_equal(loaded["masks"]["masks"], trace["masks"]["masks"])
    assert loaded.meta["class_names"] == CLASS_NAMES


def test_unwritable_paths_raise_oserror_naming_the_path(qtbot, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    trace = make_trace()
    label = pg.PlotWidget()
    qtbot.addWidget(label)
    for target, write in ((blocker / "out.json", lambda p: export_detections_json(trace, p)),
                          (blocker / "out.npz", lambda p: export_trace(trace, p)),
                          (tmp_path / "missing" / "out.png", lambda p: export_widget_png(label, p)),
                          (tmp_path, lambda p: export_widget_png(label, p))):
        with pytest.raises(OSError) as error:
            write(target)
        assert str(target) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]
