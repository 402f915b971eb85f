"""mrcnn.trace_views: the max RPN score per feature cell, against hand-computed grids."""

import numpy as np

from mrcnn.trace_data import Trace
from mrcnn.trace_views import level_cell_shape, max_score_per_cell


def _trace(levels, scores, level_shapes, stride=1):
    return Trace(stages={"anchors": {"boxes": np.zeros((len(levels), 4), np.float32),
                                     "levels": np.asarray(levels, np.int32)},
                         "rpn/scores": {"scores": np.asarray(scores, np.float32)}},
                 meta={"level_shapes": level_shapes, "config": {"RPN_ANCHOR_STRIDE": stride}})


def test_max_over_the_anchors_of_each_cell_in_y_x_ratio_order():
    # P2: 2 x 3 cells, 2 anchors per cell (order y, x, ratio); P3: 1 x 1 cell, 2 anchors.
    p2 = [0.1, 0.4,  0.9, 0.2,  0.0, 0.0,
          0.3, 0.3,  0.5, 0.6,  0.7, 0.05]
    trace = _trace([2] * 12 + [3] * 2, p2 + [0.25, 0.75], [[2, 3], [1, 1]])
    np.testing.assert_allclose(max_score_per_cell(trace, 2), [[0.4, 0.9, 0.0],
                                                              [0.3, 0.6, 0.7]], rtol=1e-6)
    np.testing.assert_allclose(max_score_per_cell(trace, 3), [[0.75]], rtol=1e-6)
    assert level_cell_shape(trace, 2) == (2, 3)


def test_anchor_stride_rounds_the_cell_grid_up():
    # A 3 x 5 feature map with RPN_ANCHOR_STRIDE 2 has anchors on a ceil(3/2) x ceil(5/2) grid.
    scores = np.arange(6, dtype=np.float32) / 10  # one anchor per cell
    trace = _trace([2] * 6, scores, [[3, 5]], stride=2)
    assert level_cell_shape(trace, 2) == (2, 3)
    np.testing.assert_allclose(max_score_per_cell(trace, 2), [[0.0, 0.1, 0.2], [0.3, 0.4, 0.5]])


def test_unknown_or_inconsistent_levels_give_none():
    trace = _trace([2] * 5, np.ones(5), [[2, 2]])  # 5 anchors on 4 cells: not whole
    assert max_score_per_cell(trace, 2) is None
    assert max_score_per_cell(trace, 4) is None  # no anchors, no recorded shape
    no_shapes = _trace([2] * 4, np.ones(4), [])
    assert level_cell_shape(no_shapes, 2) is None and max_score_per_cell(no_shapes, 2) is None
