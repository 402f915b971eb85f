"""Sanity checks of saliency maps from the literature, as plain functions (tests and bench).

- pointing game (Zhang et al. 2016): is the map's peak inside the detection's box?
- mass in box: the share of the map's positive mass inside the box;
- model randomisation (Adebayo et al. 2018): rank correlation of maps before / after the
  head's weights are randomised (a map that does not change does not explain the model);
- deletion (Petsiuk et al. 2018): deleting the most salient pixels lowers the score more than
  deleting as many random pixels.
Boxes are ``[y1, x1, y2, x2]`` original-image pixels, y2 / x2 exclusive (as ``detect()``).
"""

from __future__ import annotations

import numpy as np


def box_slices(box, shape):
    """(row slice, column slice) of pixel box ``[y1, x1, y2, x2]`` clipped to ``shape``."""
    y1, x1, y2, x2 = (int(round(float(v))) for v in box)
    return slice(max(y1, 0), min(y2, shape[0])), slice(max(x1, 0), min(x2, shape[1]))


def pointing_hit(saliency, box, tolerance=0) -> bool:
    """True when the map's maximum (first one, row-major) lies inside ``box`` grown by
    ``tolerance`` pixels on every side (Zhang et al. allow 15 px at 224 px)."""
    y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    y1, x1, y2, x2 = (float(v) for v in box)
    return bool(y1 - tolerance <= y < y2 + tolerance and x1 - tolerance <= x < x2 + tolerance)


def mass_in_box(saliency, box) -> float:
    """Share (0..1) of the map's positive mass inside ``box``; 0 for an all-zero map."""
    positive = np.maximum(np.asarray(saliency, np.float64), 0.0)
    total = positive.sum()
    if total <= 0:
        return 0.0
    rows, cols = box_slices(box, positive.shape)
    return float(positive[rows, cols].sum() / total)


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of a flat array, ties given their mean rank (as scipy.stats.rankdata)."""
    values = np.asarray(values, np.float64).ravel()
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, and each run's mean rank.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps of equal size (0 when either is constant)."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def top_fraction_mask(saliency, fraction) -> np.ndarray:
    """[H, W] bool: the ``fraction`` of pixels with the highest saliency (ties broken stably)."""
    flat = np.asarray(saliency).ravel()
    count = int(round(fraction * flat.size))
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(-flat, kind="stable")[:count]] = True
    return mask.reshape(np.shape(saliency))


def random_fraction_mask(shape, fraction, rng) -> np.ndarray:
    """[H, W] bool: ``fraction`` of the pixels, chosen uniformly at random."""
    size = int(np.prod(shape))
    mask = np.zeros(size, bool)
    mask[rng.choice(size, int(round(fraction * size)), replace=False)] = True
    return mask.reshape(shape)


def delete_pixels(image, mask, fill) -> np.ndarray:
    """Copy of ``image`` [H, W, C] with the ``mask`` pixels set to ``fill`` (C,), as uint8."""
    out = np.array(image, copy=True)
    out[np.asarray(mask, bool)] = np.clip(np.round(np.asarray(fill)), 0, 255).astype(out.dtype)
    return out


def detection_scores(model, images, trace, detection) -> np.ndarray:
    """[len(images)] probability of the detection's class for its ROI held fixed, per image.

    The ROI and class come from ``trace`` (of the unmodified image); each image (same size) is
    molded and run through backbone, FPN and the classifier head on that one ROI.
    """
    from mrcnn.explain import detection_target
    from mrcnn.explain_graphs import explain_graphs

    det = detection_target(trace, detection)
    molded, metas, _, _ = model.mold(list(images))
    probs = explain_graphs(model).class_probs(molded, metas, det.roi)
    return probs[:, det.class_id]
