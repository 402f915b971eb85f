"""Canvas plans and their numpy helpers, without Qt: numbers against hand-computed references."""

import numpy as np
import pytest

from mrcnn.targets import POSITIVE
from mrcnn.trace_data import Trace
from mrcnn.trace_views import max_score_per_cell
from viewer.panels import canvas_plans
from viewer.panels.canvas_arrays import (GRID_CELL, grid_cell_box, grid_index_at, heat_rect,
                                         heat_rgba, mask_image, molded_rect, outline_arrays,
                                         pick_box, raw_mask_grid)
from viewer.panels.canvas_plans import (NO_DATA_NOTE, ViewState, class_colour, plan,
                                        rows_above, sample_anchor_rows)

LUT = np.stack([np.arange(256)] * 3, axis=1).astype(np.uint8)  # grey ramp: colour = value


def test_outlines_are_closed_rectangles_separated_by_nan():
    x, y = outline_arrays([[10, 20, 30, 40], [0, 0, 1, 2]])
    np.testing.assert_array_equal(x[:5], [20, 40, 40, 20, 20])
    np.testing.assert_array_equal(y[:5], [10, 10, 30, 30, 10])
    assert np.isnan(x[5]) and np.isnan(y[11]) and len(x) == 12
    assert len(outline_arrays(np.zeros((0, 4)))[0]) == 0


def test_pick_box_prefers_the_smallest_containing_box():
    boxes = [[0, 0, 100, 100], [10, 10, 30, 30], [200, 200, 210, 210]]
    assert pick_box(boxes, x=20, y=20) == 1
    assert pick_box(boxes, x=50, y=50) == 0
    assert pick_box(boxes, x=150, y=150) is None
    assert pick_box(np.zeros((0, 4)), 1, 1) is None


def test_rows_above_keeps_the_best_max_boxes_in_row_order(monkeypatch):
    scores = np.array([0.1, 0.5, 0.9, 0.5, 0.7])
    rows, note = rows_above(scores, 0.5)
    np.testing.assert_array_equal(rows, [1, 2, 3, 4])
    assert note == ""
    monkeypatch.setattr(canvas_plans, "MAX_BOXES", 2)
    rows, note = rows_above(scores, 0.5)
    np.testing.assert_array_equal(rows, [2, 4])
    assert note == " (best 2 of 4 shown)"


def test_anchor_sample_keeps_every_positive():
    levels = np.full(1000, 2)
    match = np.zeros(1000, np.int32)
    match[[3, 500, 999]] = POSITIVE
    rows = sample_anchor_rows(levels, 2, "sample", match)
    assert canvas_plans.ANCHOR_SAMPLE <= len(rows) <= canvas_plans.ANCHOR_SAMPLE + 3
    assert {3, 500, 999} <= set(rows.tolist()) and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(sample_anchor_rows(levels, 2, "all", match), np.arange(1000))
    assert len(sample_anchor_rows(levels, 3, "sample", match)) == 0


def test_anchor_plan_counts_match_states(fake_trace):
    overlay = plan("anchors", fake_trace, ViewState(level=3, anchor_mode="all"))
    levels, match = fake_trace["anchors"]["levels"], fake_trace["targets/rpn"]["match"]
    for state, style in canvas_plans.MATCH_STYLES.items():
        assert len(overlay.boxes[style]) == int(np.sum(match[levels == 3] == state))
    kind, rows, boxes = overlay.pick
    assert kind == "anchor" and len(rows) == int(np.sum(levels == 3))
    np.testing.assert_array_equal(boxes, fake_trace["anchors"]["boxes"][rows])


def test_rpn_scores_plan_heat_is_the_shared_max_per_cell(fake_trace):
    overlay = plan("rpn_scores", fake_trace, ViewState(level=2))
    values, rect = overlay.heat
    np.testing.assert_allclose(values, np.clip(max_score_per_cell(fake_trace, 2), 0, 1))
    rows = np.flatnonzero(fake_trace["anchors"]["levels"] == 2)
    best = rows[np.argmax(fake_trace["rpn/scores"]["scores"][rows])]
    assert best in overlay.pick[1] and len(overlay.boxes["dotted"]) == 50
    assert rect == heat_rect(fake_trace, 2)


def test_heat_rect_centres_cells_on_their_anchors():
    # Molded 64 x 64 holds the original at scale 0.5 below 16 rows of padding; P2 is 16 x 16.
    trace = Trace(meta={"image_meta": {"scale": 0.5, "window": [16, 0, 48, 64],
                                       "molded_shape": [64, 64, 3]},
                        "level_shapes": [[16, 16]], "config": {"RPN_ANCHOR_STRIDE": 1}})
    assert molded_rect(trace, (16, 16)) == (0.0, -32.0, 128.0, 128.0)
    # Feature stride: 128 original px / 16 cells = 8; the map starts half a cell before.
    assert heat_rect(trace, 2) == (-4.0, -36.0, 128.0, 128.0)
    assert heat_rect(trace, 3) is None


def test_heat_rgba_colour_and_opacity_follow_the_value():
    rgba = heat_rgba(np.array([[0.0, 1.0], [0.5, 2.0]]), LUT)
    np.testing.assert_array_equal(rgba[..., 0], [[0, 255], [127, 255]])
    np.testing.assert_array_equal(rgba[..., 3], [[50, 220], [135, 220]])


def _mask_trace():
    image = np.zeros((10, 12, 3), np.uint8)
    full = np.zeros((10, 12, 1), bool)
    full[2:4, 3:6, 0] = True
    raw = np.zeros((1, 28, 28), np.float32)
    raw[0, :14] = 1.0  # top half of the box
    gt_masks = np.zeros((10, 12, 1), bool)
    gt_masks[8:10, 0:2, 0] = True
    return Trace(stages={"input": {"image": image},
                         "detections": {"boxes": np.array([[2, 3, 6, 7]], np.int32),
                                        "class_ids": np.array([2]), "scores": np.array([0.9])},
                         "masks": {"masks": full}, "masks/raw": {"masks": raw},
                         "gt": {"boxes": np.array([[8, 0, 10, 2]]), "masks": gt_masks}})


def test_mask_image_paints_full_raw_and_gt_masks():
    trace = _mask_trace()
    rows = np.array([0])
    full = mask_image(trace, "full", rows, True, LUT, class_colour)
    # A 2 x 3 mask is all outline: drawn opaque in its class colour, only inside its box.
    assert np.all(full[2:4, 3:6] == class_colour(2) + (255,))
    assert np.sum(full[..., 3] == 255) == 6
    assert np.all(full[8:10, 0:2] == (255, 255, 255, 60))     # ground truth underneath
    raw = mask_image(trace, "raw", rows, False, LUT, class_colour)
    np.testing.assert_array_equal(raw[2:4, 3:7, 3], 200)    # top half: p = 1, alpha 120 + 80
    np.testing.assert_array_equal(raw[4:6, 3:7, 3], 0)
    assert raw[..., 3].sum() == 8 * 200
    assert not mask_image(trace, "", rows, False, LUT, class_colour).any()


def test_raw_mask_grid_places_masks_row_major():
    raw = np.stack([np.full((28, 28), v, np.float32) for v in (0.0, 0.5, 1.0)])
    grid = raw_mask_grid(raw, np.array([2, 0, 1]), LUT)   # 3 masks: 2 columns, 2 lines
    assert grid.shape == (2 * GRID_CELL, 2 * GRID_CELL, 4)
    assert grid[1, 1, 0] == 255 and grid[1, GRID_CELL + 1, 0] == 0   # raw[2], then raw[0]
    assert grid[GRID_CELL + 1, 1, 0] == 127 and grid[0, 0, 3] == 0    # raw[1]; border clear
    assert grid[GRID_CELL + 1, GRID_CELL + 1, 3] == 0                  # no 4th mask
    assert grid_cell_box(3, 2) == [GRID_CELL, GRID_CELL, 2 * GRID_CELL, 2 * GRID_CELL]
    assert grid_index_at(GRID_CELL + 3, 3, columns=2, count=3) == 1
    assert grid_index_at(GRID_CELL + 3, GRID_CELL + 3, columns=2, count=3) is None
    assert grid_index_at(-1, 3, columns=2, count=3) is None


@pytest.mark.parametrize("stage", list(canvas_plans.PLANS))
def test_every_stage_plans_from_the_trace_alone(fake_trace, stage):
    overlay = plan(stage, fake_trace, ViewState(score_threshold=0.5))
    assert overlay.note and overlay.note != NO_DATA_NOTE
    np.testing.assert_array_equal(overlay.boxes["gt"], fake_trace["gt"]["boxes"])
    if overlay.pick is not None and overlay.pick[0] == "detection":
        scores = fake_trace["detections"]["scores"]
        np.testing.assert_array_equal(overlay.pick[1], np.flatnonzero(scores >= 0.5))


def test_hidden_overlays_and_missing_data():
    trace = _mask_trace()
    overlay = plan("proposals", trace, ViewState(overlays={"gt": False}))
    assert overlay.note == NO_DATA_NOTE and "gt" not in overlay.boxes
    shown = plan("input", trace, ViewState())
    np.testing.assert_array_equal(shown.boxes["window"], [[0, 0, 10, 12]])
    assert shown.pick[0] == "gt" and shown.base == "molded"
    assert "window" not in plan("input", trace, ViewState(overlays={"window": False})).boxes
