"""Issue 19 canvas plans without Qt: RPN cell grid and default level, Top-N / level filters of the
dense stages, the selection legend, label placement, overlay colours. Hand-computed numbers."""

import numpy as np
import pytest

from mrcnn.anchors import generate_anchors
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE
from mrcnn.trace_data import Trace
from viewer.panels.canvas_arrays import heat_rect
from viewer.panels.canvas_filters import (cell_grid_lines, default_level, filter_rows,
                                          post_nms_levels)
from viewer.panels.canvas_labels import place_labels
from viewer.panels.canvas_plans import ViewState, plan
from viewer.panels.canvas_selection import plan_highlight
from viewer.panels.canvas_styles import STYLES, class_colour


def _level_trace(side=128, stride=4):
    """A 128 x 128 image, no padding, P2 with 32 x 32 cells of 4 px, one anchor per cell."""
    cells = side // stride
    return Trace(meta={"image_meta": {"scale": 1.0, "window": [0, 0, side, side],
                                      "molded_shape": [side, side, 3]},
                       "level_shapes": [[cells, cells]], "config": {"RPN_ANCHOR_STRIDE": 1}})


# ---- item 4: RPN scores -------------------------------------------------------------------

def test_heat_cells_are_centred_on_the_anchor_centres_of_the_generator():
    trace = _level_trace()
    x, y, width, height = heat_rect(trace, 2)
    assert (x, y, width, height) == (-2.0, -2.0, 128.0, 128.0)  # half a 4 px cell up-left
    anchors = generate_anchors([32], [1.0], (32, 32), 4, 1)     # matterport's generator
    centres_y = (anchors[:, 0] + anchors[:, 2]) / 2
    centres_x = (anchors[:, 1] + anchors[:, 3]) / 2
    i, j = np.divmod(np.arange(32 * 32), 32)                   # row-major cells
    np.testing.assert_allclose(y + (i + 0.5) * height / 32, centres_y)
    np.testing.assert_allclose(x + (j + 0.5) * width / 32, centres_x)


def test_cell_grid_lines_lie_between_the_cells():
    lines = cell_grid_lines((-4.0, -36.0, 128.0, 128.0), (16, 16))
    assert lines.shape == (34, 4)
    # Vertical lines x = -4, 4, ..., 124 from y -36 to 92; then horizontal y = -36 ... 92.
    np.testing.assert_array_equal(lines[0], [-36, -4, 92, -4])
    np.testing.assert_array_equal(lines[1], [-36, 4, 92, 4])
    np.testing.assert_array_equal(lines[16], [-36, 124, 92, 124])
    np.testing.assert_array_equal(lines[17], [-36, -4, -36, 124])
    np.testing.assert_array_equal(lines[33], [92, -4, 92, 124])
    assert len(cell_grid_lines((0, 0, 1024, 1024), (256, 256))) == 0  # P2 of 1024: a mesh


def test_rpn_plan_draws_the_grid_says_the_convention_and_has_a_colour_bar(fake_trace):
    overlay = plan("rpn_scores", fake_trace, ViewState(level=4))
    rect = heat_rect(fake_trace, 4)                 # 10 x 10 cells of 32 px over 320 molded
    assert rect == (-16.0, -48.0, 320.0, 320.0)     # window starts 32 rows down, minus 16
    grid = overlay.boxes["grid"]
    assert len(grid) == 22 and grid[0].tolist() == [-48, -16, 272, -16]
    assert overlay.colour_bar == ("objectness", 0.0, 1.0)
    assert "centred on its anchors' centre" in overlay.note and "16 px" in overlay.note
    assert ("grid", "feature cells") in overlay.legend


def _anchor_trace(levels, match=None, scores=None):
    stages = {"anchors": {"boxes": np.zeros((len(levels), 4)), "levels": np.asarray(levels)}}
    if match is not None:
        stages["targets/rpn"] = {"match": np.asarray(match)}
    if scores is not None:
        stages["rpn/scores"] = {"scores": np.asarray(scores, np.float32)}
    return Trace(stages=stages)


def test_default_level_most_positives_else_best_score_else_p2():
    levels = [2, 2, 2, 3, 3, 4, 5]
    match = [NEGATIVE, POSITIVE, NEUTRAL, POSITIVE, POSITIVE, POSITIVE, NEGATIVE]
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.99]
    assert default_level(_anchor_trace(levels, match, scores)) == 3     # 2 positives at P3
    assert default_level(_anchor_trace(levels, [NEGATIVE] * 7, scores)) == 5  # none: best score
    assert default_level(_anchor_trace(levels, None, scores)) == 5
    assert default_level(_anchor_trace(levels)) == 2
    assert default_level(None) == 2


# ---- item 5: Top-N, level and score filters ------------------------------------------------

def test_filter_rows_top_n_level_and_threshold():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.95, 0.3])
    levels = np.array([2, 3, 3, 2, 4, 3])
    rows, note = filter_rows(scores, levels, 0.0, 3, 0)
    np.testing.assert_array_equal(rows, [0, 2, 4])           # 0.95, 0.9, 0.8 in row order
    assert note == "top 3 of 6"
    rows, note = filter_rows(scores, levels, 0.2, 0, 3)
    np.testing.assert_array_equal(rows, [2, 5])
    assert note == "all 2 at P3 with score ≥ 0.20"
    rows, _ = filter_rows(scores, None, 0.0, 2, 3)            # levels unknown: level ignored
    np.testing.assert_array_equal(rows, [0, 4])
    assert len(filter_rows(np.zeros(0), np.zeros(0), 0.0, 50, 0)[0]) == 0


def test_dense_stages_default_to_the_best_fifty(fake_trace):
    pre, post = fake_trace["proposals/pre_nms"], fake_trace["proposals/post_nms"]
    overlay = plan("refined_anchors", fake_trace, ViewState())
    best = np.sort(np.argsort(-pre["scores"], kind="stable")[:50])
    np.testing.assert_array_equal(overlay.pick[1], best)
    assert all(len(overlay.boxes[s]) == 50 for s in ("dotted", "dashed", "solid"))
    assert "top 50 of 500" in overlay.note
    overlay = plan("proposals", fake_trace, ViewState(top_n=10, box_level=4))
    levels = post_nms_levels(fake_trace)
    at_p4 = np.flatnonzero(levels == 4)
    expected = np.sort(at_p4[np.argsort(-post["scores"][at_p4], kind="stable")[:10]])
    np.testing.assert_array_equal(overlay.pick[1], expected)
    np.testing.assert_array_equal(levels, fake_trace["anchors"]["levels"][
        pre["anchor_indices"][post["indices"]]])
    assert len(overlay.boxes["faint"]) <= 10
    assert f"top 10 of {len(at_p4)} at P4 by score (100 in all)" in overlay.note
    everything = plan("proposals", fake_trace, ViewState(top_n=0))
    assert len(everything.pick[1]) == len(post["scores"])


# ---- item 6: the selection's legend ----------------------------------------------------------

def test_highlight_names_each_linked_box_with_level_index_and_score(fake_trace):
    detection = 1
    linked = {"detections": detection, **fake_trace.lineage(detection)}
    out = plan_highlight(fake_trace, "detections", linked, "roi_refinement")
    anchor, roi = linked["anchors"], linked["proposals/post_nms"]
    level = int(fake_trace["anchors"]["levels"][anchor])
    assert out.anchor_level == level
    styles = [style for style, _ in out.entries]
    assert styles[0] == "selected" and "link:anchors" in styles and "link:refined" in styles
    texts = dict(out.entries)
    det = fake_trace["detections"]
    name = fake_trace.class_names[int(det["class_ids"][detection])]
    assert texts["selected"] == f"detection #{detection} · {name} {det['scores'][detection]:.2f}"
    score = fake_trace["rpn/scores"]["scores"][anchor]
    assert texts["link:anchors"] == f"anchor #{anchor} · P{level} · RPN score {score:.2f}"
    post = fake_trace["proposals/post_nms"]["scores"][roi]
    assert texts["link:proposals/post_nms"] == f"proposal / ROI #{roi} · score {post:.2f}"
    np.testing.assert_array_equal(out.boxes["link:anchors"][0],
                                  fake_trace["anchors"]["boxes"][anchor])
    assert "link:refined" not in plan_highlight(fake_trace, "detections", linked,
                                                "detections").boxes
    assert plan_highlight(fake_trace, None, {}, "detections").entries == []


def test_every_link_style_has_its_own_colour():
    links = [name for name in STYLES if name.startswith("link:")] + ["selected"]
    colours = {STYLES[name][0][:3] for name in links}
    assert len(colours) == len(links)


# ---- item 10: labels, class colours, visible neutral anchors ----------------------------------

def test_labels_avoid_each_other_and_stay_in_the_image():
    # Boxes sharing the top edge y = 0, labels 30 x 10 px in a 100 x 100 image.
    boxes = [[0, 0, 40, 50], [0, 10, 20, 60], [0, 0, 10, 30]]
    spots = place_labels(boxes, [(30, 10)] * 3, (100, 100))
    assert spots[0] == (0.0, 0.0)     # above would leave the image: inside top-left
    assert spots[1] == (10.0, 20.0)   # inside top-left (10, 0) overlaps label 0: below the box
    assert spots[2] == (0.0, 10.0)    # (0, 0) taken; below its box (y2 = 10) is free
    # A 30 x 10 image has room for one label only: the second (lower score) is hidden.
    assert place_labels([[0, 0, 10, 30]] * 2, [(30, 10)] * 2, (10, 30)) == [(0.0, 0.0), None]
    assert place_labels([[50, 20, 80, 60]], [(30, 10)], (100, 100)) == [(20.0, 40.0)]  # above


def test_twenty_detections_on_one_edge_do_not_pile_up():
    boxes = [[0, 30 * i, 60, 30 * i + 28] for i in range(20)]
    spots = place_labels(boxes, [(26, 8)] * 20, (400, 640))
    rects = [(x, y, 26, 8) for x, y in filter(None, spots)]
    assert len(rects) == 20
    for a in range(len(rects)):
        for b in range(a + 1, len(rects)):
            ra, rb = rects[a], rects[b]
            assert not (ra[0] < rb[0] + 26 and rb[0] < ra[0] + 26 and ra[1] < rb[1] + 8
                        and rb[1] < ra[1] + 8)


def test_class_colours_are_distinct_and_never_ground_truth_white():
    colours = [class_colour(c) for c in range(1, 81)]
    assert len(set(colours)) == 80
    assert (255, 255, 255) not in colours


def test_neutral_anchors_are_saturated_not_grey():
    def saturation(rgb):
        return (max(rgb) - min(rgb)) / max(max(rgb), 1)
    for state in ("neutral", "negative", "positive"):
        assert saturation(STYLES[state][0][:3]) > 0.6, state
        assert STYLES[state][0][3] >= 150, state   # opaque enough to see
    assert len({STYLES[s][0][:3] for s in ("neutral", "negative", "positive")}) == 3


@pytest.mark.parametrize("threshold", [0.0, 0.9])
def test_detection_legend_lists_the_classes_drawn(fake_trace, threshold):
    overlay = plan("composite", fake_trace, ViewState(score_threshold=threshold))
    det = fake_trace["detections"]
    drawn = np.unique(det["class_ids"][det["scores"] >= threshold])
    assert overlay.legend == [(f"class:{c}", fake_trace.class_names[c]) for c in drawn]
    scores = [float(text.split()[-1]) for _, text, _ in overlay.labels]
    assert scores == sorted(scores, reverse=True)     # placed best first


def test_mask_outline_is_the_ring_of_the_mask():
    from viewer.panels.canvas_arrays import mask_outline

    mask = np.zeros((6, 7), bool)
    mask[1:5, 1:6] = True                 # 4 x 5 block: 14 ring pixels, 2 x 3 = 6 inside
    ring = mask_outline(mask)
    assert ring.sum() == 14 and not ring[2:4, 2:5].any() and ring[1, 1] and ring[4, 5]
    edge = np.ones((3, 3), bool)          # touching the image border: the border is outline
    assert mask_outline(edge).sum() == 8
