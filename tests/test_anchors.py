"""Pyramid anchors: matterport's count, order and values, level ids, normalization and caching."""

import math

import numpy as np
import pytest

from mrcnn import anchors
from mrcnn.boxes import norm_boxes
from mrcnn.config import Config

S2 = math.sqrt(2.0)


def test_tiny_level_by_hand():
    # scale 8, ratios (0.5, 1, 2): sizes (h, w) = (8*sqrt2, 8/sqrt2), (8, 8), (8/sqrt2, 8*sqrt2).
    # 2x2 feature map at stride 4: centres (0,0), (0,4), (4,0), (4,4) in row-major order.
    half = [(4 * S2, 2 * S2), (4.0, 4.0), (2 * S2, 4 * S2)]  # (h/2, w/2) per ratio
    expected = []
    for cy, cx in [(0, 0), (0, 4), (4, 0), (4, 4)]:
        for hh, hw in half:
            expected.append([cy - hh, cx - hw, cy + hh, cx + hw])
    got = anchors.generate_anchors(8, [0.5, 1, 2], (2, 2), 4, 1)
    np.testing.assert_allclose(got, np.array(expected), atol=1e-12)
    # Spot-check literal values: ratio 0.5 anchor at the first cell is tall.
    np.testing.assert_allclose(got[0], [-5.656854, -2.828427, 5.656854, 2.828427], atol=1e-6)
    np.testing.assert_allclose(got[10], [0, 0, 8, 8])


def test_anchor_stride_skips_cells():
    # 3x3 map, anchor stride 2 -> cells 0 and 2 on each axis: 2*2 cells * 1 ratio.
    got = anchors.generate_anchors(4, [1], (3, 3), 8, 2)
    centres = (got[:, :2] + got[:, 2:]) / 2
    np.testing.assert_allclose(centres, [[0, 0], [0, 16], [16, 0], [16, 16]])
    np.testing.assert_allclose(got[:, 2] - got[:, 0], 4)


def test_several_scales_order_is_ratio_major():
    # meshgrid(scales, ratios).flatten(): (s1,r1), (s2,r1), (s1,r2), (s2,r2).
    got = anchors.generate_anchors([4, 8], [1, 4], (1, 1), 1, 1)
    heights = got[:, 2] - got[:, 0]
    widths = got[:, 3] - got[:, 1]
    np.testing.assert_allclose(heights, [4, 8, 2, 4])
    np.testing.assert_allclose(widths, [4, 8, 8, 16])


def test_pyramid_concatenates_levels():
    shapes = [(2, 2), (1, 1)]
    got = anchors.generate_pyramid_anchors([8, 16], [0.5, 1, 2], shapes, [4, 8], 1)
    assert got.shape == (12 + 3, 4)
    np.testing.assert_allclose(got[:12], anchors.generate_anchors(8, [0.5, 1, 2], (2, 2), 4, 1))
    np.testing.assert_allclose(got[12:], anchors.generate_anchors(16, [0.5, 1, 2], (1, 1), 8, 1))
    with pytest.raises(ValueError, match="one scale"):
        anchors.generate_pyramid_anchors([8], [1], shapes, [4, 8], 1)


def test_default_config_1024_count_and_levels():
    config = Config()
    shape = (1024, 1024, 3)
    normalized = anchors.get_anchors(config, shape)
    assert normalized.shape == (261888, 4) and normalized.dtype == np.float32
    counts = anchors.anchors_per_level(config, shape)
    assert counts == [256 * 256 * 3, 128 * 128 * 3, 64 * 64 * 3, 32 * 32 * 3, 16 * 16 * 3]
    level_ids = anchors.anchor_level_ids(config, shape)
    assert level_ids.dtype == np.int32 and level_ids.shape == (261888,)
    np.testing.assert_array_equal(np.bincount(level_ids)[2:], counts)
    assert np.all(np.diff(level_ids) >= 0) and level_ids[0] == 2 and level_ids[-1] == 6
    # Level sizes follow the scales 32..512 (ratio-1 anchors: the middle of each cell's three).
    pixels = anchors.get_anchors_pixels(config, shape)
    starts = np.cumsum([0] + counts[:-1])
    for start, scale in zip(starts, config.RPN_ANCHOR_SCALES):
        np.testing.assert_allclose(pixels[start + 1], [-scale / 2, -scale / 2, scale / 2, scale / 2])


def test_normalization_and_cache(tiny_config):
    shape = (128, 128, 3)
    normalized = anchors.get_anchors(tiny_config, shape)
    pixels = anchors.get_anchors_pixels(tiny_config, shape)
    np.testing.assert_allclose(normalized, norm_boxes(pixels, (128, 128)), rtol=1e-6)
    # Hand check: ratio-1 P2 anchor at cell (1, 1) is [4-4, 4-4, 4+4, 4+4] = [0, 0, 8, 8] px
    # -> [0, 0, 7/127, 7/127] normalized.
    index = (1 * 32 + 1) * 3 + 1
    np.testing.assert_allclose(normalized[index], [0, 0, 7 / 127, 7 / 127], rtol=1e-6)
    assert anchors.get_anchors(tiny_config, shape) is normalized
    assert anchors.get_anchors(type(tiny_config)(), (128, 128)) is normalized  # equal config
    assert not normalized.flags.writeable
    other = anchors.get_anchors(tiny_config, (64, 128, 3))
    assert other is not normalized and len(other) == len(normalized) // 2


def test_cache_key_follows_config_fields(tiny_config):
    base = anchors.get_anchors(tiny_config, (128, 128, 3))

    class Strided(type(tiny_config)):
        RPN_ANCHOR_STRIDE = 2

    strided = anchors.get_anchors(Strided(), (128, 128, 3))
    # ceil(32/2)^2 + ceil(16/2)^2 + ... cells, three ratios each.
    assert len(strided) == 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1 * 1)
    assert len(base) == 3 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2)
    anchors.clear_cache()
    assert anchors.get_anchors(tiny_config, (128, 128, 3)) is not base
