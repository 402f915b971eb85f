"""Side panels (activations, weights, timings, ground truth) follow the Session; no TensorFlow.

Each test builds a Session and a small synthetic Trace, changes the session, and checks what the
panel shows against numpy (napari's model/view testing style, offscreen Qt via pytest-qt).
"""


import numpy as np
import pytest
from PySide6.QtCore import Qt

from mrcnn.stats import compute_stat
from mrcnn.trace_data import Trace
from viewer.panels import activations as activations_module
from viewer.panels.activations import (CHANNELS_PER_PAGE, OTHER_GROUP, ActivationsPanel,
                                       group_of)
from viewer.panels.gt_panel import GroundTruthPanel, gt_recall, recall_summary
from viewer.panels.timings import TimingsPanel
from viewer.panels.weights import COLUMNS, WeightsPanel, normalise_stat
from viewer.session import Selection, Session

CLASS_NAMES = ["BG", "circle", "square", "triangle"]


def make_trace(activations=True, gt=True, timings=True) -> Trace:
    """A tiny trace: 64x64 image, three activation layers (one with 300 channels), GT, targets."""
    rng = np.random.default_rng(0)
    stages = {"input": {"image": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)},
              "anchors": {"boxes": np.array([[0, 0, 10, 12], [30, 0, 40, 10]], np.float32),
                          "levels": np.array([2, 2])},
              "proposals/pre_nms": {"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 50]],
                                                      np.float32)},
              "proposals/post_nms": {"boxes": np.array([[0, 0, 10, 10], [25, 25, 45, 45]],
                                                       np.float32)}}
    if activations:
        stages["activations/res2c_out"] = {
            "values": rng.normal(size=(8, 8, 300)).astype(np.float16)}
        stages["activations/fpn_p2"] = {"values": rng.normal(size=(16, 16, 8)).astype(np.float16)}
        stages["activations/mrcnn_mask_conv1"] = {
            "values": rng.normal(size=(14, 14, 4)).astype(np.float16)}
    if gt:
        masks = np.zeros((64, 64, 3), bool)
        masks[0:10, 0:10, 0] = True
        masks[20:40, 20:30, 1] = True
        stages["gt"] = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]],
                                          np.float32),
                        "class_ids": np.array([1, 2, -1]), "masks": masks}
        stages["targets/rpn"] = {"match": np.array([1, 1, -1, -1, -1, 0])}
        stages["targets/rois"] = {"class_ids": np.array([1, 1, 2, 0, 0, 0, 0])}
    meta = {"class_names": CLASS_NAMES}
    if timings:
        meta["timings"] = {"backbone": 0.030, "rpn": 0.010, "heads": 0.060}
        meta["counts"] = {"anchors": 2, "proposals/post_nms": 2}
    return Trace(stages=stages, meta=meta)


@pytest.fixture
def session():
    return Session()


def _panel(qtbot, cls, session):
    panel = cls(session)
    qtbot.addWidget(panel)
    panel.resize(700, 500)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


# ---- activations -------------------------------------------------------------------------------

def test_activations_hint_without_trace_or_activations(qtbot, session):
    panel = _panel(qtbot, ActivationsPanel, session)
    assert panel.stack.currentWidget() is panel.hint
    session.set_trace(make_trace(activations=False))
    assert panel.stack.currentWidget() is panel.hint
    assert panel.tree.topLevelItemCount() == 0


def test_activations_tree_groups_layers_with_shapes(qtbot, session):
    panel = _panel(qtbot, ActivationsPanel, session)
    session.set_trace(make_trace())
    assert panel.stack.currentWidget() is not panel.hint
    groups = {panel.tree.topLevelItem(i).text(0): panel.tree.topLevelItem(i)
              for i in range(panel.tree.topLevelItemCount())}
    assert list(groups) == ["Backbone (C2-C5)", "FPN (P2-P6)", OTHER_GROUP]
    backbone = groups["Backbone (C2-C5)"].child(0)
    assert (backbone.text(0), backbone.text(1)) == ("res2c_out", "8 x 8 x 300")
    assert groups["FPN (P2-P6)"].child(0).text(0) == "fpn_p2"
    assert groups[OTHER_GROUP].child(0).text(0) == "mrcnn_mask_conv1"
    assert group_of("C3") == "Backbone (C2-C5)" and group_of("P6") == "FPN (P2-P6)"
    # The first layer in tree order and its channel 0 show at once: the large view is never
    # left black waiting for a click; only that layer's first page is rendered.
    assert panel.layer == "res2c_out" and panel.channel == 0
    assert panel.rendered_thumbnails() == 64
    np.testing.assert_array_equal(
        panel.image_item.image, session.trace["activations/res2c_out"]["values"][:, :, 0])
    assert "res2c_out channel 0" in panel.range_label.text()


def test_activations_pages_render_only_the_visible_page(qtbot, session, monkeypatch):
    rendered = []
    original = activations_module.channel_to_rgb
    monkeypatch.setattr(activations_module, "channel_to_rgb",
                        lambda channel, lut: rendered.append(1) or original(channel, lut))
    panel = _panel(qtbot, ActivationsPanel, session)
    session.set_trace(make_trace())
    tree_item = panel.tree.findItems("res2c_out", Qt.MatchExactly | Qt.MatchRecursive, 0)[0]
    panel.tree.setCurrentItem(tree_item)  # user picks the layer in the tree
    assert panel.layer == "res2c_out"
    assert CHANNELS_PER_PAGE == 64 and panel.page_count() == 5
    assert panel.rendered_thumbnails() == 64 and len(rendered) == 64
    assert not panel.prev_button.isEnabled() and panel.next_button.isEnabled()

    qtbot.mouseClick(panel.next_button, Qt.LeftButton)
    assert panel.page == 1 and panel.rendered_thumbnails() == 64
    assert panel.grid.item(0).data(Qt.UserRole) == 64
    panel.set_page(99)  # clamped to the last page: channels 256..299
    assert panel.page == 4 and panel.rendered_thumbnails() == 300 - 4 * 64
    assert not panel.next_button.isEnabled()
    assert len(rendered) == 64 + 64 + 44  # never more than one page per change

    panel.show_layer("fpn_p2")
    assert panel.page_count() == 1 and panel.rendered_thumbnails() == 8


def test_activations_channel_click_shows_numpy_range(qtbot, session):
    panel = _panel(qtbot, ActivationsPanel, session)
    trace = make_trace()
    session.set_trace(trace)
    panel.show_layer("res2c_out")
    panel.set_page(1)
    item = panel.grid.item(5)  # channel 69
    rect = panel.grid.visualItemRect(item)
    qtbot.mouseClick(panel.grid.viewport(), Qt.LeftButton, pos=rect.center())
    plane = trace["activations/res2c_out"]["values"][:, :, 69]
    assert panel.channel == 69
    low, high, mean = panel.channel_range
    assert low == float(plane.min()) and high == float(plane.max())
    assert mean == pytest.approx(float(plane.astype(np.float64).mean()))
    assert f"{float(plane.min()):.4g}" in panel.range_label.text()
    assert f"{float(plane.max()):.4g}" in panel.range_label.text()
    np.testing.assert_array_equal(panel.image_item.image, plane.astype(np.float32))

    session.set_trace(make_trace(activations=False))  # a new trace clears the view
    assert panel.channel is None and panel.rendered_thumbnails() == 0


# ---- weights -----------------------------------------------------------------------------------

def _weight_stats():
    rng = np.random.default_rng(1)
    return [compute_stat("conv1", "kernel", rng.normal(size=(3, 3, 3, 8))).to_dict(),
            compute_stat("res2a_branch2a", "kernel", np.zeros((1, 1, 8, 8))).to_dict(),
            compute_stat("res2a_branch2a", "bias", np.array([1e5, 1.0, -2.0])).to_dict(),
            compute_stat("bn_conv1", "gamma", rng.uniform(0.5, 1.5, size=8)).to_dict()]


def test_weights_hint_without_stats(qtbot, session):
    panel = _panel(qtbot, WeightsPanel, session)
    assert panel.stack.currentWidget() is panel.hint
    session.set_weight_stats(_weight_stats())
    assert panel.stack.currentWidget() is not panel.hint
    session.set_weight_stats(None)
    assert panel.stack.currentWidget() is panel.hint and panel.proxy.rowCount() == 0


def test_weights_flags_are_highlighted_and_filtered(qtbot, session):
    panel = _panel(qtbot, WeightsPanel, session)
    session.set_weight_stats(_weight_stats())
    assert panel.proxy.rowCount() == 4
    flags_column = COLUMNS.index("Flags")
    looks = {}
    for r in range(panel.proxy.rowCount()):
        index = panel.proxy.index(r, 0)
        key = (panel.proxy.index(r, 0).data(), panel.proxy.index(r, 1).data())
        looks[key] = (index.data(Qt.BackgroundRole), index.data(Qt.ToolTipRole),
                      panel.proxy.index(r, flags_column).data(Qt.DecorationRole),
                      panel.proxy.index(r, flags_column).data())
    dead, exploding = looks[("res2a_branch2a", "kernel")], looks[("res2a_branch2a", "bias")]
    assert dead[0] is not None and exploding[0] is not None
    assert dead[0].color() != exploding[0].color()
    assert dead[1].startswith("Dead") and exploding[1].startswith("Exploding")
    assert not dead[2].isNull() and not exploding[2].isNull()
    assert (dead[3], exploding[3]) == ("dead", "exploding")
    assert looks[("conv1", "kernel")][:3] == (None, None, None)

    qtbot.mouseClick(panel.flagged_check, Qt.LeftButton)
    assert {(row["layer"], row["name"]) for row in panel.visible_rows()} == {
        ("res2a_branch2a", "kernel"), ("res2a_branch2a", "bias")}
    panel.filter_edit.setText("BIAS")
    assert [(row["layer"], row["name"]) for row in panel.visible_rows()] == [
        ("res2a_branch2a", "bias")]
    panel.flagged_check.setChecked(False)
    panel.filter_edit.setText("conv1")  # matches conv1/kernel and bn_conv1/gamma
    assert len(panel.visible_rows()) == 2


def test_weights_sorting_is_numeric(qtbot, session):
    panel = _panel(qtbot, WeightsPanel, session)
    stats = _weight_stats()
    session.set_weight_stats(stats)
    panel.table.sortByColumn(COLUMNS.index("Max"), Qt.DescendingOrder)
    assert [row["max"] for row in panel.visible_rows()] == sorted(
        (s["max"] for s in stats), reverse=True)


def test_weights_histogram_equals_stat_counts(qtbot, session):
    panel = _panel(qtbot, WeightsPanel, session)
    stats = _weight_stats()
    session.set_weight_stats(stats)
    panel.select_weight("conv1", "kernel")
    x, y = panel.histogram_curve.getData()
    np.testing.assert_allclose(x, stats[0]["bin_edges"])
    np.testing.assert_array_equal(y, stats[0]["hist_counts"])
    assert "conv1/kernel" in panel.plot.getPlotItem().titleLabel.text
    panel.select_weight(stats[1]["layer"], stats[1]["name"])
    # New stats reset the selection to their first weight, whose histogram shows at once.
    session.set_weight_stats(stats[:2])
    assert panel.selected_row == 0
    np.testing.assert_array_equal(panel.histogram_curve.getData()[1], stats[0]["hist_counts"])
    session.set_weight_stats([])
    assert panel.selected_row is None and panel.histogram_curve.getData()[0] is None
    assert panel.stack.currentWidget() is panel.hint


def test_weights_accepts_both_key_spellings():
    stat = {"layer": "fc", "name": "kernel", "shape": [2, 3], "min": -1.0, "max": None,
            "mean": 0.0, "std": 0.5, "zeros": 0.25, "hist_counts": [1, 2],
            "hist_edges": [-1.0, 0.0, 1.0], "dead": False, "exploding": True}
    row = normalise_stat(stat)
    assert row["zeros"] == 0.25 and np.isnan(row["max"]) and row["flags"] == ["exploding"]
    np.testing.assert_array_equal(row["hist_edges"], [-1.0, 0.0, 1.0])


# ---- timings -----------------------------------------------------------------------------------

def test_timings_totals_bars_and_counts(qtbot, session):
    panel = _panel(qtbot, TimingsPanel, session)
    assert panel.stack.currentWidget() is panel.hint
    session.set_trace(make_trace())
    assert panel.stack.currentWidget() is not panel.hint
    assert panel.total_ms == pytest.approx(100.0)
    # "rpn" is the stage list's "RPN scores"; keys no stage claims keep their own names.
    assert [(n, round(ms, 6), round(p, 6)) for n, ms, p in panel.rows] == [
        ("RPN scores", 10.0, 10.0), ("backbone", 30.0, 30.0), ("heads", 60.0, 60.0)]
    table = panel.timing_table
    assert table.rowCount() == 4 and table.item(3, 0).text() == "Total"
    assert table.item(3, 1).text() == "100.00" and table.item(2, 2).text() == "60.0"
    np.testing.assert_allclose(panel.bars.opts["width"], [10.0, 30.0, 60.0])
    counts = {panel.count_table.item(r, 0).text(): panel.count_table.item(r, 1).text()
              for r in range(panel.count_table.rowCount())}
    assert counts == {"anchors": "2", "proposals/post_nms": "2"}


def test_timings_total_key_and_fallback_counts(qtbot, session):
    panel = _panel(qtbot, TimingsPanel, session)
    trace = make_trace(timings=False)
    trace.meta["timings"] = {"backbone": 0.02, "heads": 0.02, "total": 0.05}
    session.set_trace(trace)
    assert panel.total_ms == pytest.approx(50.0)
    assert [round(p, 6) for _, _, p in panel.rows] == [40.0, 40.0]  # of the timed total
    # Without meta["counts"] the panel counts items itself (Trace.counts()), leaving out the
    # input image and activations, whose "count" is a height.
    expected = [k for k in trace.counts() if k != "input" and not k.startswith("activations/")]
    assert [panel.count_table.item(r, 0).text()
            for r in range(panel.count_table.rowCount())] == expected
    session.set_trace(None)
    assert panel.stack.currentWidget() is panel.hint and panel.timing_table.rowCount() == 0


def test_timings_use_the_stage_lists_names_and_show_the_total_apart(qtbot, session):
    """A real trace's keys (mrcnn.trace): rows named as the stage list names them, GT targets
    their own row, no "Final result" row, the total apart - and the stage list agrees."""
    from viewer.panels.stage_list import StageListPanel
    from viewer.stages import stage_by_key

    timings = {"mold": 0.004, "features": 0.21, "rpn": 0.03, "proposals": 0.05,
               "classifier": 0.04, "detection": 0.01, "mask": 0.03, "postprocess": 0.02,
               "targets": 0.05}
    timings["total"] = sum(timings.values())  # 0.444 s, as mrcnn.trace sums it
    trace = make_trace(timings=False)
    trace.meta["timings"] = timings
    panel = _panel(qtbot, TimingsPanel, session)
    stages = StageListPanel(session)
    qtbot.addWidget(stages)
    session.set_trace(trace)
    expected = [("Input & resize", 4.0), ("RPN scores", 240.0), ("Proposals (NMS)", 50.0),
                ("ROI refinement", 40.0), ("Detections (NMS)", 10.0), ("Raw masks 28x28", 30.0),
                ("Full-size masks", 20.0), ("GT targets (RPN + ROI)", 50.0)]
    assert [(n, round(ms, 6)) for n, ms, _ in panel.rows] == expected
    assert panel.total_ms == pytest.approx(444.0)
    assert sum(ms for _, ms, _ in panel.rows) == pytest.approx(panel.total_ms)
    assert "Final result" not in [n for n, _, _ in panel.rows]
    assert "total 444.0 ms" in panel.total_label.text()
    for name, ms in expected[:-1]:  # the stage list shows the same milliseconds
        key = next(s.key for s in _view_stages() if s.title == name)
        assert f"{ms:.0f} ms" in stages.item_for(key).text(), (name, stages.item_for(key).text())
    final = stages.item_for("composite").text()
    assert "ms" not in final and stage_by_key("composite").title in final
    assert stages.total.text() == "Total 444 ms (50 ms of it GT targets (RPN + ROI))"


def _view_stages():
    from viewer.stages import VIEW_STAGES

    return VIEW_STAGES


# ---- ground truth ------------------------------------------------------------------------------

def test_gt_recall_hand_computed():
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float)
    # IoU 100/120 with gt0 -> recalled; nothing near gt1.
    assert gt_recall([[0, 0, 10, 12]], gt) == 0.5
    # IoU exactly 0.5 counts (>=); 400/600 with gt1 also passes.
    assert gt_recall([[0, 0, 10, 20], [20, 20, 40, 50]], gt) == 1.0
    # IoU 225/575 = 0.39 with gt1: not recalled.
    assert gt_recall([[25, 25, 45, 45]], gt) == 0.0
    assert gt_recall(np.zeros((0, 4)), gt) == 0.0
    assert gt_recall([[0, 0, 1, 1]], np.zeros((0, 4))) == 1.0


def test_gt_panel_tables_summaries_and_recall(qtbot, session):
    panel = _panel(qtbot, GroundTruthPanel, session)
    assert panel.stack.currentWidget() is panel.hint
    trace = make_trace()
    session.set_trace(trace)
    assert panel.stack.currentWidget() is not panel.hint
    # The crowd region (class -1) is listed but is not an object to recall.
    assert panel.recall == {"Anchors": (2, 0.5), "Refined anchors": (2, 1.0),
                            "Proposals": (2, 0.5)}
    assert recall_summary(trace) == panel.recall
    assert panel.recall_table.item(1, 2).text() == "100.0 %"
    table = panel.gt_table
    assert table.rowCount() == 3
    assert [table.item(r, 1).text() for r in range(3)] == ["circle", "square", "crowd"]
    assert table.item(1, 2).text() == "20, 20, 40, 40" and table.item(1, 3).text() == "400"
    assert table.item(1, 4).text() == "200"  # mask pixels
    assert panel.rpn_summary == {"positive": 2, "negative": 3, "neutral": 1}
    assert panel.roi_summary == {"positive": 3, "negative": 4,
                                 "per_class": {"circle": 2, "square": 1}}
    assert "positive 2" in panel.rpn_label.text() and "circle: 2" in panel.roi_label.text()


def test_gt_panel_selection_is_linked(qtbot, session):
    panel = _panel(qtbot, GroundTruthPanel, session)
    session.set_trace(make_trace())
    with qtbot.waitSignal(session.selectionChanged):
        rect = panel.gt_table.visualItemRect(panel.gt_table.item(1, 1))
        qtbot.mouseClick(panel.gt_table.viewport(), Qt.LeftButton, pos=rect.center())
    assert session.selection == Selection("gt", 1)
    session.select("gt", 2)
    assert {i.row() for i in panel.gt_table.selectedIndexes()} == {2}
    session.select("detection", 0)
    assert panel.gt_table.selectedIndexes() == []
    assert session.selection == Selection("detection", 0)  # the panel did not echo a change


def test_gt_panel_without_targets(qtbot, session):
    panel = _panel(qtbot, GroundTruthPanel, session)
    trace = make_trace()
    del trace.stages["targets/rpn"], trace.stages["targets/rois"], trace.stages["anchors"]
    session.set_trace(trace)
    assert panel.rpn_summary is None and panel.roi_summary is None
    assert "No RPN targets" in panel.rpn_label.text()
    assert list(panel.recall) == ["Refined anchors", "Proposals"]
