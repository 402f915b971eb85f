"""Saliency metrics, Grad-CAM weight formulas and overlays against hand / scipy references."""

import numpy as np
import pytest

from mrcnn.explain import cam_from_gradients, finish_map, gradcam_pp_weights
from mrcnn.explain_metrics import (average_ranks, delete_pixels, mass_in_box, pointing_hit,
                                   random_fraction_mask, spearman, top_fraction_mask)
from mrcnn.explain_render import colorize, overlay


def test_pointing_hit_box_edges_and_tolerance():
    saliency = np.zeros((20, 30))
    saliency[5, 10] = 1.0
    assert pointing_hit(saliency, [5, 10, 6, 11])          # y2 / x2 exclusive
    assert not pointing_hit(saliency, [6, 10, 9, 14])      # one row below the peak
    assert pointing_hit(saliency, [6, 10, 9, 14], tolerance=1)
    assert not pointing_hit(saliency, [0, 0, 5, 10])


def test_mass_in_box_counts_positive_mass_only():
    saliency = np.zeros((10, 10))
    saliency[2:4, 2:4] = 1.0    # 4 inside
    saliency[8, 8] = 4.0        # 4 outside
    saliency[0, 9] = -100.0     # negatives do not count
    assert mass_in_box(saliency, [2, 2, 4, 4]) == pytest.approx(0.5)
    assert mass_in_box(np.zeros((4, 4)), [0, 0, 2, 2]) == 0.0


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (16, 16)).astype(float)   # many ties, like relu'd maps
    b = a + rng.normal(0, 2, a.shape)
    np.testing.assert_allclose(average_ranks(a), rankdata(a.ravel()))
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.ones_like(a)) == 0.0


def test_fraction_masks_and_deletion():
    saliency = np.arange(100, dtype=float).reshape(10, 10)
    top = top_fraction_mask(saliency, 0.2)
    assert top.sum() == 20 and top[8:].all() and not top[:8].any()
    random = random_fraction_mask((10, 10), 0.2, np.random.default_rng(1))
    assert random.sum() == 20
    image = np.full((10, 10, 3), 7, np.uint8)
    deleted = delete_pixels(image, top, (123.7, 116.8, 103.9))
    assert (deleted[8:] == [124, 117, 104]).all() and (deleted[:8] == 7).all()
    assert (image == 7).all()  # a copy


def test_gradcam_weights_against_loops():
    rng = np.random.default_rng(2)
    activations = rng.random((3, 4, 5))
    gradients = rng.normal(size=(3, 4, 5))
    pooled = cam_from_gradients(activations, gradients, per_position=False)
    expected = np.zeros((3, 4))
    for c in range(5):
        expected += gradients[:, :, c].mean() * activations[:, :, c]
    np.testing.assert_allclose(pooled, np.maximum(expected, 0))
    element = cam_from_gradients(activations, gradients)
    np.testing.assert_allclose(element, np.maximum((gradients * activations).sum(-1), 0))
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3), weight = sum alpha relu(g).
    weights = np.zeros(5)
    for c in range(5):
        total = activations[:, :, c].sum()
        for y in range(3):
            for x in range(4):
                g = gradients[y, x, c]
                weights[c] += g * g / (2 * g * g + total * g ** 3) * max(g, 0.0)
    np.testing.assert_allclose(gradcam_pp_weights(activations, gradients, per_position=False),
                               weights)


def test_finish_map_scales_to_one_and_keeps_zero():
    out = finish_map(np.array([[-1.0, 0.5], [2.0, np.nan]]))
    np.testing.assert_allclose(out, [[0, 0.25], [1, 0]])
    assert out.dtype == np.float32
    assert finish_map(np.zeros((2, 2))).max() == 0.0


def test_overlay_blends_by_saliency_and_outlines_box():
    image = np.full((6, 8, 3), 100, np.uint8)
    saliency = np.zeros((6, 8))
    saliency[1, 1] = 1.0
    out = overlay(image, saliency, opacity=1.0)
    np.testing.assert_array_equal(out[1, 1], colorize(np.ones((1, 1)))[0, 0])
    assert (out[0, 0] == 100).all()  # zero saliency keeps the image
    assert (overlay(image, saliency, opacity=0.0) == image).all()
    boxed = overlay(image, saliency, opacity=0.0, box=[2, 2, 5, 6])
    assert (boxed[2, 2:6] == 255).all() and (boxed[4, 2:6] == 255).all()
    assert (boxed[3, 3] == 100).all()
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, np.zeros((5, 8)))
    with pytest.raises(ValueError, match="opacity"):
        overlay(image, saliency, opacity=1.5)
