"""Main window: open a trace, step stages by keyboard, linked selection, threshold, export, errors."""

import json
import os

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from viewer.session import Selection
from viewer.stages import STAGE_KEYS, available_stages


def test_docks_and_panels(window):
    assert {"Stages", "Detections"} <= set(window.docks)
    for title in ("Activations", "Weights", "Timings"):
        module = {"Activations": "activations", "Weights": "weights", "Timings": "timings"}[title]
        if os.path.exists(os.path.join(os.path.dirname(__file__), "../../viewer/panels",
                                       module + ".py")):
            assert title in window.docks


def test_open_trace_and_step_every_stage_by_keyboard(window, trace_file, qtbot, fake_trace):
    assert window.open_trace(trace_file)
    keys = [stage.key for stage in available_stages(window.session.trace)]
    assert keys == list(STAGE_KEYS)  # the fake trace has every stage
    stage_list = window.stage_list.list
    stage_list.setFocus()
    qtbot.keyClick(stage_list, Qt.Key.Key_Home)
    seen, notes = [window.session.stage], {window.canvas.info.text()}
    for _ in keys[1:]:
        qtbot.keyClick(stage_list, Qt.Key.Key_Down)
        seen.append(window.session.stage)
        notes.add(window.canvas.info.text())
        current = stage_list.currentItem().data(Qt.ItemDataRole.UserRole)
        assert current == window.session.stage
    assert seen == keys
    assert len(notes) >= len(keys) - 2  # the canvas redrew something different per stage
    qtbot.keyClick(stage_list, Qt.Key.Key_Down)  # clamped at the end
    assert window.session.stage == keys[-1]
    qtbot.keyClick(stage_list, Qt.Key.Key_PageUp)
    assert window.session.stage == keys[-2]
    qtbot.keyClick(stage_list, Qt.Key.Key_Left)
    assert window.session.stage == keys[-3]
    qtbot.keyClick(stage_list, Qt.Key.Key_Home)
    assert window.session.stage == keys[0]
    qtbot.keyClick(stage_list, Qt.Key.Key_End)
    assert window.session.stage == keys[-1]
    # Keys the canvas does not use reach the window and step too.
    window.canvas.view.setFocus()
    qtbot.keyClick(window.canvas.view, Qt.Key.Key_PageUp)
    assert window.session.stage == keys[-2]


def _assert_linked_everywhere(window, detection):
    trace = window.session.trace
    lineage = trace.lineage(detection)
    table = window.detections_table
    assert table.selected_detection() == detection
    highlighted = window.canvas.highlighted
    np.testing.assert_allclose(highlighted["detections"], trace["detections"]["boxes"][detection])
    for key, row in lineage.items():
        np.testing.assert_allclose(highlighted[key], trace[key]["boxes"][row])
    curves = window.canvas.curves
    assert curves["selected"].isVisible() and len(curves["selected"].xData) == 6
    # Each stage of the lineage in its own style, one box each, and named in the legend line.
    links = set(lineage) | ({"refined"} if window.session.stage == "roi_refinement" else set())
    for key in links:
        assert curves[f"link:{key}"].isVisible() and len(curves[f"link:{key}"].xData) == 6, key
    shown = {name[5:] for name in curves if name.startswith("link:") and curves[name].isVisible()}
    assert shown == links
    text = window.canvas.selection_line.text()
    assert f"detection #{detection}" in text and f"anchor #{lineage['anchors']}" in text


def test_selection_from_table_reaches_canvas_in_every_stage(window, trace_file):
    window.open_trace(trace_file)
    window.detections_table.view.selectRow(2)
    detection = int(window.detections_table.model.rows[2])
    assert window.session.selection == Selection("detection", detection)
    for key in window.session.stage_keys():
        window.session.set_stage(key)
        _assert_linked_everywhere(window, detection)


def test_canvas_click_selects_detection_and_table_follows(window, trace_file, qtbot):
    window.open_trace(trace_file)
    window.session.set_stage("detections")
    window.fit_view()
    qtbot.wait(10)
    boxes = window.session.trace["detections"]["boxes"]
    target = 3
    y1, x1, y2, x2 = boxes[target]
    pos = window.canvas.scene_pos_of((x1 + x2) / 2, (y1 + y2) / 2)
    qtbot.mouseClick(window.canvas.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: window.session.selection is not None, timeout=2000)
    assert window.session.selection == Selection("detection", target)
    _assert_linked_everywhere(window, target)
    # A click outside every box clears the selection (and the table row).
    window.canvas.click_at(-500, -500)
    assert window.session.selection is None
    assert window.detections_table.selected_detection() is None


def test_click_on_proposal_picks_the_smallest_box_and_links_forward(window, trace_file):
    window.open_trace(trace_file)
    window.session.set_stage("proposals")
    trace = window.session.trace
    roi = int(trace["detections"]["roi_indices"][0])
    box = trace["proposals/post_nms"]["boxes"][roi]
    window.canvas.click_at(float(box[1] + 1), float(box[0] + 1))
    kind, row = window.session.selection.kind, window.session.selection.index
    assert kind == "proposal"
    boxes = trace["proposals/post_nms"]["boxes"]
    point_in = ((boxes[:, 0] <= box[0] + 1) & (boxes[:, 2] >= box[0] + 1)
                & (boxes[:, 1] <= box[1] + 1) & (boxes[:, 3] >= box[1] + 1))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas[row] == areas[point_in].min()
    window.session.select("proposal", roi)
    assert window.detections_table.selected_detection() == 0  # the proposal became detection 0


def test_threshold_slider_filters_table_and_canvas(window, trace_file):
    window.open_trace(trace_file)
    window.session.set_stage("composite")
    scores = window.session.trace["detections"]["scores"]
    cut = float(np.sort(scores)[2])  # keeps the 3 best
    window.canvas.threshold_slider.setValue(int(np.floor(cut * 100)))
    expected = int(np.sum(scores >= window.session.score_threshold))
    assert window.detections_table.model.rowCount() == expected
    drawn = sum(len(c.xData) // 6 for name, c in window.canvas.curves.items()
                if name.startswith("class:") and c.isVisible())
    assert drawn == expected
    assert sum(label.isVisible() for label in window.canvas.labels) == expected
    window.canvas.threshold_slider.setValue(100)
    assert window.detections_table.model.rowCount() == int(np.sum(scores >= 1.0))
    window.canvas.threshold_slider.setValue(0)
    assert window.detections_table.model.rowCount() == len(scores)


def test_export_png_trace_and_detections(window, trace_file, tmp_path, qtbot):
    import skimage.io

    window.open_trace(trace_file)
    window.session.set_stage("composite")
    qtbot.wait(50)
    png = window.exports.export_view_png(tmp_path / "view.png")
    assert png is not None and os.path.getsize(png) > 0
    image = skimage.io.imread(png)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].reshape(-1, 3).std(axis=0).max() > 5  # not one flat colour
    saved = window.exports.save_trace(tmp_path / "again.npz")
    from mrcnn.trace_data import Trace

    again = Trace.load(saved)
    np.testing.assert_array_equal(again["detections"]["boxes"],
                                  window.session.trace["detections"]["boxes"])
    out = window.exports.export_detections(tmp_path / "detections.json")
    records = json.loads(open(out).read())
    assert len(records) == len(window.session.trace["detections"]["scores"])
    assert {"box", "class_name", "score"} <= set(records[0])


def test_export_to_missing_folder_shows_error(window, trace_file, tmp_path, dialogs):
    window.open_trace(trace_file)
    assert window.exports.export_view_png(tmp_path / "no" / "such" / "view.png") is None
    assert dialogs and dialogs[-1][0] == "Export failed"


def test_bad_image_shows_error_and_window_keeps_working(window, trace_file, tmp_path, qtbot,
                                                         dialogs):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png at all")
    window.open_image(bad)
    qtbot.waitUntil(lambda: bool(dialogs), timeout=20000)
    title, message = dialogs[-1]
    assert title == "Cannot open image"
    assert "broken.png" in message and "What to do" in message
    assert not window.document.runner.is_busy() and not window.cancel_button.isVisible()
    # Still works: a trace opens and the stages step.
    assert window.open_trace(trace_file)
    window.session.step_stage(-100)
    window.session.step_stage(1)
    assert window.session.stage == window.session.stage_keys()[1]


def test_bad_npz_shows_error_and_keeps_the_current_trace(window, trace_file, tmp_path, dialogs):
    window.open_trace(trace_file)
    before = window.session.trace
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert not window.open_trace(bad)
    assert dialogs[-1][0] == "Cannot open trace" and "broken.npz" in dialogs[-1][1]
    assert not window.open_trace(tmp_path / "missing.npz")
    assert window.session.trace is before
    window.session.set_stage("detections")
    window.detections_table.view.selectRow(0)
    assert window.session.selection is not None


def test_drop_a_trace_file_opens_it(window, trace_file, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(trace_file))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.session.trace is not None, timeout=3000)
    assert window.recent.paths()[0] == os.path.abspath(trace_file)


def test_shortcuts_dialog_on_question_mark(window, qtbot):
    from viewer.dialogs.shortcuts import SHORTCUTS

    window.show_shortcuts()
    dialog = window._shortcuts_dialog
    assert dialog.isVisible() and dialog.table.rowCount() == len(SHORTCUTS)
    shortcut_texts = {s.toString() for a in window.actions() for s in a.shortcuts()}
    assert {"?", "N", "P", "Ctrl+Right", "Ctrl+Left"} <= shortcut_texts


def test_stage_tooltips_and_disabled_stages(window, fake_trace):
    from mrcnn.trace_data import Trace

    partial = Trace(stages={"input": fake_trace["input"]}, meta={})
    window.session.set_trace(partial)
    for stage_key in STAGE_KEYS:
        item = window.stage_list.item_for(stage_key)
        assert item.toolTip()
        enabled = bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)
        assert enabled == (stage_key == "input")
    assert "needs" in window.stage_list.item_for("detections").toolTip()
    window.session.set_trace(fake_trace)
    text = window.stage_list.item_for("proposals").text()
    assert "100" in text and "ms" in text  # count and time per stage


@pytest.mark.parametrize("key", ["anchors", "rpn_scores", "raw_masks", "masks"])
def test_stage_specific_items(window, trace_file, key):
    window.open_trace(trace_file)
    window.session.set_stage(key)
    canvas = window.canvas
    if key == "anchors":
        trace = window.session.trace
        canvas.set_level(int(trace["anchors"]["levels"][trace["targets/rpn"]["positive_indices"][0]]))
        assert canvas.curves["positive"].isVisible()  # the fake trace has RPN targets
        canvas.anchor_box.setCurrentText("all")
        levels = window.session.trace["anchors"]["levels"]
        drawn = sum(len(canvas.curves[s].xData) // 6 for s in ("positive", "negative", "neutral")
                    if canvas.curves[s].isVisible())
        assert drawn == int(np.sum(levels == canvas.level))
    elif key == "rpn_scores":
        canvas.set_level(3)
        shape = window.session.trace.meta["level_shapes"][1]
        assert canvas.heat_item.isVisible() and canvas.heat_item.image.shape[:2] == tuple(shape)
    elif key == "raw_masks":
        assert canvas.grid_view.isVisible() and canvas.grid_item.image is not None
    else:
        rgba = canvas.mask_item.image
        assert canvas.mask_item.isVisible() and rgba[..., 3].max() > 0
        window.session.set_overlay("masks", False)
        window.session.set_overlay("gt", False)
        assert not canvas.mask_item.isVisible() and not canvas.curves["gt"].isVisible()
        assert not canvas.overlay_boxes["masks"].isChecked()


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_canvas_gets_most_of_the_window(window, qtbot, trace_file, size):
    window.open_trace(trace_file)
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0], timeout=5000)
    window._size_docks()
    qtbot.wait(50)
    canvas = window.canvas
    assert canvas.height() >= 0.8 * window.height()  # no bottom dock squeezes it
    assert canvas.width() >= 0.45 * window.width()
    right = window.docks["Detections"]
    assert window.dockWidgetArea(right) == Qt.DockWidgetArea.RightDockWidgetArea
    for title in ("Ground truth", "Activations", "Weights", "Timings"):
        if title in window.docks:
            assert window.dockWidgetArea(window.docks[title]) == \
                Qt.DockWidgetArea.RightDockWidgetArea
            assert window.tabifiedDockWidgets(window.docks[title])
    assert 200 <= window.docks["Stages"].width() <= 300


def test_empty_window_shows_hints_not_blank_panels(window):
    assert window.canvas.stack.currentWidget() is window.canvas.empty_hint
    assert "Ctrl+O" in window.canvas.empty_hint.text()
    assert window.detections_table.hint.isVisible()
    for title in ("Ground truth", "Activations", "Weights", "Timings"):
        panel = window.panels.get(title)
        if panel is not None:
            assert panel.stack.currentWidget() is panel.hint, title


def test_trace_without_detections_steps_through_every_stage(window, tmp_path, qtbot, dialogs):
    """An untrained model finds nothing: every panel must still draw (masks [H, W, 0])."""
    from mrcnn.synthetic_trace import make_fake_trace

    trace = make_fake_trace()
    count = len(trace["detections"]["scores"])
    for key in ("detections", "masks/raw"):  # every per-detection array, down to no rows
        trace.stages[key] = {name: np.asarray(a)[:0] if np.ndim(a) and len(a) == count else a
                             for name, a in trace.stages[key].items()}
    trace.stages["masks"] = {"masks": np.asarray(trace["masks"]["masks"])[..., :0]}
    path = trace.save(tmp_path / "empty.npz")
    assert window.open_trace(str(path))
    assert window.session.trace["masks"]["masks"].shape[-1] == 0
    for stage in available_stages(window.session.trace):
        window.session.set_stage(stage.key)
        qtbot.wait(1)
    assert window.detections_table.model.rowCount() == 0 and dialogs == []
    assert "found nothing" in window.detections_table.hint.text()


def test_raw_mask_grid_click_selects_and_outlines_the_detection(window, trace_file, qtbot):
    import pyqtgraph as pg

    from viewer.panels.canvas_arrays import GRID_CELL

    window.open_trace(trace_file)
    window.session.set_stage("raw_masks")
    grid = window.canvas.grid_view
    rows = grid.rows
    assert grid.isVisible() and len(rows) == len(window.session.trace["detections"]["scores"])
    assert grid.item.image.shape[:2] == (GRID_CELL * -(-len(rows) // grid.columns),
                                         GRID_CELL * grid.columns)
    qtbot.wait(10)
    # The centre of cell 1 (row 0, column 1) of the grid image.
    scene = grid.vb.mapViewToScene(pg.Point(1.5 * GRID_CELL, 0.5 * GRID_CELL))
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.mapFromScene(scene))
    qtbot.waitUntil(lambda: window.session.selection is not None, timeout=2000)
    assert window.session.selection == Selection("detection", int(rows[1]))
    x, y = grid.outline.xData, grid.outline.yData
    np.testing.assert_array_equal(x[:5], [GRID_CELL, 2 * GRID_CELL, 2 * GRID_CELL, GRID_CELL,
                                          GRID_CELL])
    np.testing.assert_array_equal(y[:5], [0, 0, GRID_CELL, GRID_CELL, 0])
