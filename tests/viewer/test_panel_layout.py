"""The right-hand panels are usable in the window a 1600x1000 and a 1280x800 screen give
(issue 19 item 9): no sideways scrolling, no cut columns or labels, enough rows to browse, and
the Training dock leaves the canvas its height. Offscreen Qt, real demo weight statistics."""

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt

from mrcnn.runs import RunDir
from mrcnn.stats import stats_to_dicts, weight_stats_from_file
from mrcnn.trace_data import Trace
from viewer.main_window import DEFAULT_SIZE
from viewer.panels.weights import COLUMNS, LAYER_MIN_WIDTH

DEMO_WEIGHTS = Path(__file__).resolve().parents[2] / "resources" / "demo" / \
    "mask_rcnn_shapes_demo.h5"
# The window mrcnn-viewer opens on such a screen (viewer.status_bar.screen_fitted_size: the
# default size, shrunk to 94% of the screen).
SCREENS = {"1600x1000": (1600, 1000), "1280x800": (1280, 800)}
# Demo-like activations: C2-C5 and P2-P6, 64 channels each (one page of thumbnails).
ACTIVATION_LAYERS = ("res2b_out", "res3b_out", "res4b_out", "res5b_out",
                     "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6")


def _window_size(screen):
    return (min(DEFAULT_SIZE[0], int(screen[0] * 0.94)),
            min(DEFAULT_SIZE[1], int(screen[1] * 0.94)))


@pytest.fixture(scope="module")
def demo_stats():
    return stats_to_dicts(weight_stats_from_file(DEMO_WEIGHTS))


def _sized(window, qtbot, screen):
    window.resize(*_window_size(SCREENS[screen]))
    qtbot.waitUntil(lambda: window.size().width() == _window_size(SCREENS[screen])[0],
                    timeout=5000)
    window._size_docks()
    qtbot.wait(50)


def _raise(window, qtbot, title):
    window.docks[title].show()
    window.docks[title].raise_()
    qtbot.waitUntil(lambda: window.docks[title].widget().isVisible(), timeout=5000)
    qtbot.wait(50)


def _assert_text_shows(label):
    """A word-wrapped label shows all its lines."""
    assert label.isVisible() and label.heightForWidth(label.width()) <= label.height(), \
        label.text()


@pytest.mark.parametrize("screen", SCREENS)
def test_weights_table_fits_without_sideways_scrolling(window, qtbot, demo_stats, screen):
    window.session.set_weight_stats(demo_stats)
    _sized(window, qtbot, screen)
    _raise(window, qtbot, "Weights")
    panel = window.panels["Weights"]
    table = panel.table
    shown = [c for c in range(len(COLUMNS)) if not table.isColumnHidden(c)]
    titles = [COLUMNS[c] for c in shown]
    assert {"Layer", "Weight", "Mean", "Std"} <= set(titles), titles
    viewport = table.viewport().width()
    assert sum(table.columnWidth(c) for c in shown) <= viewport
    assert table.horizontalScrollBar().maximum() == 0
    for column in shown:  # every shown column shows its widest text whole; Layer elides only
        if COLUMNS[column] != "Layer":  # its longest names (mrcnn_class_logits), in the middle
            assert table.columnWidth(column) >= table.sizeHintForColumn(column), COLUMNS[column]
    layer_width = table.columnWidth(COLUMNS.index("Layer"))
    assert layer_width >= LAYER_MIN_WIDTH
    assert table.fontMetrics().horizontalAdvance("res2a_branch2a") + 8 <= layer_width
    assert f"{len(demo_stats)} of {len(demo_stats)} shown" in panel.summary_label.text()
    _assert_text_shows(panel.summary_label)
    hidden = [COLUMNS[c] for c in range(len(COLUMNS)) if table.isColumnHidden(c)]
    assert all(name in panel.summary_label.text() for name in hidden)
    # What the hidden columns would show is on the selected weight's line.
    first = demo_stats[0]
    _assert_text_shows(panel.detail_label)
    assert panel.detail_label.text().startswith(f"{first['layer']}/{first['name']}")
    for word in ("mean", "std", "min", "max", "zeros"):
        assert word in panel.detail_label.text()
    visible_rows = table.viewport().height() // table.rowHeight(0)
    assert visible_rows >= (20 if screen == "1600x1000" else 14)


def _activation_trace(fake_trace):
    rng = np.random.default_rng(0)
    stages = {k: v for k, v in fake_trace.stages.items() if not k.startswith("activations/")}
    for index, name in enumerate(ACTIVATION_LAYERS):
        side = max(2, 32 >> (index % 4 + (index >= 4)))
        stages[f"activations/{name}"] = {
            "values": rng.normal(size=(side, side, 64)).astype(np.float16)}
    return Trace(stages=stages, meta=dict(fake_trace.meta))


def _rows_shown(view, rects):
    """How many of ``rects`` (item rectangles, viewport coordinates) show whole, counting
    distinct rows by their top edge."""
    area = QRect(0, 0, view.viewport().width(), view.viewport().height())
    return len({rect.top() for rect in rects if area.contains(rect)})


@pytest.mark.parametrize("screen", SCREENS)
def test_activations_show_the_layer_tree_and_rows_of_channels(window, qtbot, fake_trace,
                                                              screen):
    window.session.set_trace(_activation_trace(fake_trace))
    _sized(window, qtbot, screen)
    _raise(window, qtbot, "Activations")
    panel = window.panels["Activations"]
    tree = panel.tree
    items = [tree.topLevelItem(g) for g in range(tree.topLevelItemCount())]
    items += [group.child(c) for group in items[:] for c in range(group.childCount())]
    assert len(items) == 11  # two groups, nine layers
    tree_rows = _rows_shown(tree, [tree.visualItemRect(item) for item in items])
    assert tree_rows >= (11 if screen == "1600x1000" else 9), tree_rows
    grid = panel.grid
    grid_rows = _rows_shown(grid, [grid.visualItemRect(grid.item(i)) for i in range(grid.count())])
    assert grid.count() == 64 and grid_rows >= (4 if screen == "1600x1000" else 3), grid_rows
    first_row = [grid.visualItemRect(grid.item(i)).top() for i in range(grid.count())]
    assert first_row.count(first_row[0]) >= 6  # thumbnails per row in the dock's width
    assert panel.image_view.height() >= 180  # the large view keeps room for one channel


def _run_with_checkpoints(root):
    run = RunDir(root / "shapes_20261204-101500").create()
    run.config_path.write_text(json.dumps({"NAME": "shapes", "NUM_CLASSES": 4}))
    run.update_run(status="stopped", reason="stopped for the test", pid=0,
                   args={"layers": "all", "epochs": 3}, dataset={"kind": "shapes"})
    for epoch, step, partial in ((1, 100, False), (2, 200, False), (3, 216, True)):
        run.append_metrics({"event": "step", "step": step, "epoch": epoch, "loss": 1.0 / step})
        path = run.checkpoint_path(epoch, step if partial else None)
        path.write_bytes(b"h5")
        run.register_checkpoint(path, epoch=epoch, step=step, partial=partial)
    return run


@pytest.mark.parametrize("screen", SCREENS)
def test_training_dock_leaves_the_canvas_its_height_and_shows_checkpoints_whole(
        window, qtbot, tmp_path, screen):
    _run_with_checkpoints(tmp_path)
    _sized(window, qtbot, screen)
    canvas_height = window.canvas.height()
    window.training.set_runs_root(tmp_path)
    window.training_actions.show_training()
    qtbot.wait(50)
    dock = window.docks["Training"]
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert dock in window.tabifiedDockWidgets(window.docks["Detections"])
    assert window.canvas.height() >= canvas_height - 2  # not squeezed (a bottom dock took 1/3)
    panel = window.training
    panel.runs_view.setCurrentIndex(panel.model.index(0))
    qtbot.waitUntil(lambda: panel.checkpoint_list.count() == 3, timeout=5000)
    checkpoints = panel.checkpoint_list
    metrics = checkpoints.fontMetrics()
    for row in range(checkpoints.count()):
        text = checkpoints.item(row).text()
        assert "T" not in text.split("   ")[-1]  # a readable time, "2026-12-04 10:15:00"
        rect = checkpoints.visualItemRect(checkpoints.item(row))
        assert metrics.horizontalAdvance(text) + 8 <= checkpoints.viewport().width(), text
        assert rect.bottom() <= checkpoints.viewport().height(), text
    assert panel.plot.height() >= 200 and panel.log_view.height() >= 60
