"""D-RISE (Petsiuk et al., CVPR 2021): a black-box saliency map for one detection.

Shape shorthand: N masks, B masks per batch, R proposals, C classes; (Hm, Wm) the molded image,
(wh, ww) its window (the resized image without padding). Boxes normalized ``[y1, x1, y2, x2]``.

Each mask keeps a random set of grid cells (probability ``keep_prob``, cells of ``cell_size``
original-image pixels), upsampled bilinearly and shifted by a random sub-cell offset (RISE's
smooth masks). Masked-out pixels become the mean pixel (0 in the molded image, the input the
model sees as "nothing"). For every masked run the similarity to the target detection is
``max_r IoU(box_r, box_t) * cos(p_r, p_t)`` over the run's proposals r, with box_r the proposal
refined by the target class's deltas and p the class probability vectors: proposals before the
confidence threshold and NMS, so a weakened detection still counts, weakly. The map is the
covariance of similarity and mask, ``sum_i (w_i - mean w) M_i / N``: pixels whose presence
raises the similarity are positive, and the uniform baseline every mask shares (about
``keep_prob * mean w``) cancels.
"""

from __future__ import annotations

import numpy as np

from mrcnn.explain_errors import ExplainCancelled, ExplainError

DEFAULT_NUM_MASKS = 500
DEFAULT_CELL_SIZE = 16      # original-image pixels per mask grid cell
DEFAULT_KEEP_PROB = 0.5     # fraction of grid cells kept per mask
DEFAULT_BATCH_SIZE = 25     # masked images per forward pass


def _interpolation_matrix(cells: int, cell_size: float, out_size: int, offset: float):
    """[out, cells] bilinear weights: output pixel y samples the cell grid at
    (y + offset) / cell_size - 0.5 (cell centres), clamped at the grid's edges."""
    source = (np.arange(out_size) + offset) / cell_size - 0.5
    source = np.clip(source, 0.0, cells - 1.0)
    low = np.minimum(np.floor(source).astype(np.int64), cells - 2) if cells > 1 else \
        np.zeros(out_size, np.int64)
    frac = source - low
    weights = np.zeros((out_size, cells))
    rows = np.arange(out_size)
    weights[rows, low] += 1.0 - frac
    if cells > 1:
        weights[rows, low + 1] += frac
    return weights


def random_masks(count, height, width, cell_size, keep_prob, rng) -> np.ndarray:
    """[count, height, width] float32 smooth random masks in [0, 1] (RISE)."""
    grid_h = int(np.ceil(height / cell_size)) + 1
    grid_w = int(np.ceil(width / cell_size)) + 1
    grids = (rng.random((count, grid_h, grid_w)) < keep_prob).astype(np.float64)
    masks = np.empty((count, height, width), np.float32)
    shifts = rng.uniform(0.0, cell_size, size=(count, 2))
    for i in range(count):
        rows = _interpolation_matrix(grid_h, cell_size, height, shifts[i, 0])
        cols = _interpolation_matrix(grid_w, cell_size, width, shifts[i, 1])
        masks[i] = rows @ grids[i] @ cols.T
    return masks


def box_iou(boxes, box) -> np.ndarray:
    """[N] IoU of boxes [N, 4] with one box (4,), any consistent units."""
    y1 = np.maximum(boxes[:, 0], box[0])
    x1 = np.maximum(boxes[:, 1], box[1])
    y2 = np.minimum(boxes[:, 2], box[2])
    x2 = np.minimum(boxes[:, 3], box[3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    return inter / np.maximum(areas + area - inter, 1e-12)


def run_similarities(outputs, det, bbox_std_dev) -> np.ndarray:
    """[B] best IoU x cosine similarity of each run's proposals to the target detection."""
    from mrcnn.boxes import apply_box_deltas

    rois, probs = outputs["rpn_rois"], outputs["mrcnn_class"]            # (B, R, 4), (B, R, C)
    deltas = outputs["mrcnn_bbox"][:, :, det.class_id] * np.asarray(bbox_std_dev)  # (B, R, 4)
    target_probs = det.class_probs / max(float(np.linalg.norm(det.class_probs)), 1e-12)
    out = np.zeros(len(rois), np.float64)
    for b in range(len(rois)):
        boxes = apply_box_deltas(rois[b], deltas[b])
        cosine = probs[b] @ target_probs / np.maximum(np.linalg.norm(probs[b], axis=1), 1e-12)
        real = np.any(rois[b] != 0, axis=1)  # zero rows pad the proposals
        similarity = box_iou(boxes, det.box) * cosine * real
        out[b] = similarity.max() if len(similarity) else 0.0
    return out


def drise_map(model, molded, meta, anchors, window, det, num_masks=DEFAULT_NUM_MASKS,
              cell_size=DEFAULT_CELL_SIZE, keep_prob=DEFAULT_KEEP_PROB, seed=0,
              batch_size=DEFAULT_BATCH_SIZE, progress=None, cancel=None) -> np.ndarray:
    """[Hm, Wm] D-RISE map over molded image ``molded`` [Hm, Wm, 3] (zero outside ``window``).

    ``det``: ``mrcnn.explain.DetectionTarget``. ``progress(done, total)`` after each batch;
    ``cancel()`` -> True stops with ExplainCancelled before the next batch.
    """
    from mrcnn.imaging import parse_image_meta

    _check_options(num_masks, cell_size, keep_prob, batch_size)
    y1, x1, y2, x2 = (int(v) for v in window)
    scale = float(parse_image_meta(meta)["scale"])
    rng = np.random.default_rng(seed)
    weighted = np.zeros((y2 - y1, x2 - x1), np.float64)
    coverage = np.zeros_like(weighted)
    similarity_sum = 0.0
    for start in range(0, num_masks, batch_size):
        if cancel is not None and cancel():
            raise ExplainCancelled(f"D-RISE cancelled after {start} of {num_masks} masks")
        count = min(batch_size, num_masks - start)
        masks = random_masks(count, y2 - y1, x2 - x1, cell_size * scale, keep_prob, rng)
        images = np.repeat(molded[None].astype(np.float32), count, axis=0)
        images[:, y1:y2, x1:x2] *= masks[..., None]  # masked-out -> mean pixel (0 when molded)
        outputs = model.predict_molded(images, np.repeat(meta[None], count, axis=0),
                                       np.repeat(anchors[None], count, axis=0))
        weights = run_similarities(outputs, det, model.config.BBOX_STD_DEV)
        weighted += np.tensordot(weights, masks, axes=1)
        coverage += masks.sum(axis=0)
        similarity_sum += float(weights.sum())
        if progress is not None:
            progress(start + count, num_masks)
    out = np.zeros(molded.shape[:2], np.float64)
    out[y1:y2, x1:x2] = (weighted - similarity_sum / num_masks * coverage) / num_masks
    return out


def _check_options(num_masks, cell_size, keep_prob, batch_size) -> None:
    if int(num_masks) != num_masks or num_masks < 1:
        raise ExplainError(f"explain: num_masks must be a positive integer, got {num_masks!r}")
    if not cell_size > 0:
        raise ExplainError(f"explain: cell_size must be > 0 pixels, got {cell_size!r}")
    if not 0 < keep_prob < 1:
        raise ExplainError(f"explain: keep_prob must be in (0, 1), got {keep_prob!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ExplainError(f"explain: batch_size must be a positive integer, got {batch_size!r}")
