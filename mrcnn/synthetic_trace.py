"""A realistic synthetic Trace with every stage key, built in numpy (no TensorFlow, no model).

The numbers are made up but the structure is the real one (see ``mrcnn.trace_data``): anchors in
matterport's order (level, y, x, ratio), proposals that came from anchors, detections that came
from proposals, masks inside their boxes, ground truth with RPN and ROI targets, and every stage
carries the indices of the rows it kept, so ``Trace.lineage`` works. Used by the viewer's tests
and by ``bench/viewer_redraw.py``.
"""

from __future__ import annotations

import numpy as np

from mrcnn.boxes import compute_overlaps
from mrcnn.targets import NEGATIVE, NEGATIVE_IOU, NEUTRAL, POSITIVE, POSITIVE_IOU
from mrcnn.trace_data import Trace

CLASS_NAMES = ("BG", "square", "circle", "triangle")
RAW_MASK = 28


def _iou(boxes, others):
    """[N, M] IoU of pixel boxes [N, 4] and [M, 4] ``[y1, x1, y2, x2]`` (the library's)."""
    return compute_overlaps(boxes, others)


def _encode(boxes, targets):
    """[N, 4] (dy, dx, log dh, log dw) moving ``boxes`` onto ``targets``."""
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    th, tw = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    dy = (targets[:, 0] + 0.5 * th - boxes[:, 0] - 0.5 * h) / h
    dx = (targets[:, 1] + 0.5 * tw - boxes[:, 1] - 0.5 * w) / w
    return np.stack([dy, dx, np.log(th / h), np.log(tw / w)], axis=1).astype(np.float32)


def _anchors(side, top, left, strides, scales, ratios):
    """Pyramid anchors (original-image pixels), their levels and the level shapes."""
    boxes, levels, shapes = [], [], []
    ratios = np.asarray(ratios, np.float64)
    for level, (stride, scale) in enumerate(zip(strides, scales), start=2):
        cells = int(np.ceil(side / stride))
        shapes.append([cells, cells])
        heights, widths = scale / np.sqrt(ratios), scale * np.sqrt(ratios)
        centres = np.arange(cells) * stride
        cy = np.broadcast_to(centres[:, None, None], (cells, cells, len(ratios)))
        cx = np.broadcast_to(centres[None, :, None], cy.shape)
        level_boxes = np.stack([cy - heights / 2, cx - widths / 2, cy + heights / 2,
                                cx + widths / 2], axis=-1).reshape(-1, 4)
        boxes.append(level_boxes - np.array([top, left, top, left]))
        levels.append(np.full(len(level_boxes), level, np.int32))
    return np.concatenate(boxes).astype(np.float32), np.concatenate(levels), shapes


def _objects(height, width, count, rng):
    """GT boxes [G, 4] int32, class ids [G], masks [H, W, G] bool: non-overlapping shapes."""
    cols = int(np.ceil(np.sqrt(count * width / height)))
    rows = int(np.ceil(count / cols))
    cell_h, cell_w = height / rows, width / cols
    boxes, class_ids = [], []
    masks = np.zeros((height, width, count), bool)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        r, c = divmod(i, cols)
        size_h = cell_h * rng.uniform(0.45, 0.75)
        size_w = cell_w * rng.uniform(0.45, 0.75)
        y1 = int(r * cell_h + rng.uniform(0.05, 0.9) * (cell_h - size_h))
        x1 = int(c * cell_w + rng.uniform(0.05, 0.9) * (cell_w - size_w))
        y2, x2 = int(y1 + size_h), int(x1 + size_w)
        class_id = 1 + i % (len(CLASS_NAMES) - 1)
        sub_y, sub_x = yy[y1:y2, x1:x2], xx[y1:y2, x1:x2]
        v = (sub_y - y1 + 0.5) / (y2 - y1)
        u = (sub_x - x1 + 0.5) / (x2 - x1)
        if class_id == 1:
            shape = np.ones_like(v, bool)
        elif class_id == 2:
            shape = (v - 0.5) ** 2 + (u - 0.5) ** 2 <= 0.25
        else:
            shape = np.abs(u - 0.5) <= v / 2
        masks[y1:y2, x1:x2, i] = shape
        boxes.append([y1, x1, y2, x2])
        class_ids.append(class_id)
    return np.array(boxes, np.int32).reshape(-1, 4), np.array(class_ids, np.int32), masks


def _image(height, width, gt_class_ids, gt_masks, rng):
    """[H, W, 3] uint8: a soft gradient with the objects painted in per-class colours."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([60 + 60 * yy / height, 80 + 40 * xx / width,
                      110 + 30 * (yy + xx) / (height + width)], axis=-1)
    # Muted, so the viewer's bright mask colours stand out on top of them.
    colours = {1: (150, 105, 95), 2: (95, 135, 150), 3: (165, 150, 110)}
    for i, class_id in enumerate(gt_class_ids):
        image[gt_masks[:, :, i]] = colours[int(class_id)]
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _nms(boxes, threshold, limit):
    """Rows kept by greedy NMS (boxes already sorted by score), at most ``limit``."""
    keep = []
    suppressed = np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == limit:
            break
        suppressed |= _iou(boxes[i:i + 1], boxes)[0] > threshold
    return np.array(keep, np.int32)


def _crop_mask(mask, box):
    """[28, 28] float32: ``mask`` [H, W] sampled inside pixel ``box`` and softened."""
    y1, x1, y2, x2 = box
    ys = np.clip(np.linspace(y1, y2 - 1, RAW_MASK).round().astype(int), 0, mask.shape[0] - 1)
    xs = np.clip(np.linspace(x1, x2 - 1, RAW_MASK).round().astype(int), 0, mask.shape[1] - 1)
    crop = mask[ys][:, xs].astype(np.float32)
    padded = np.pad(crop, 1, mode="edge")
    soft = sum(padded[dy:dy + RAW_MASK, dx:dx + RAW_MASK] for dy in range(3) for dx in range(3)) / 9
    return np.clip(0.05 + 0.9 * soft, 0, 1).astype(np.float32)


def _paste(raw, box, shape):
    """[H, W] bool: ``raw`` [28, 28] resized (nearest) into ``box`` and thresholded at 0.5."""
    y1, x1, y2, x2 = (int(v) for v in box)
    y1, x1 = max(y1, 0), max(x1, 0)
    y2, x2 = min(y2, shape[0]), min(x2, shape[1])
    out = np.zeros(shape, bool)
    if y2 > y1 and x2 > x1:
        iy = np.minimum(((np.arange(y2 - y1) + 0.5) * RAW_MASK / (y2 - y1)).astype(int), RAW_MASK - 1)
        ix = np.minimum(((np.arange(x2 - x1) + 0.5) * RAW_MASK / (x2 - x1)).astype(int), RAW_MASK - 1)
        out[y1:y2, x1:x2] = raw[iy][:, ix] >= 0.5
    return out


def make_fake_trace(height=256, width=320, num_pre_nms=500, num_proposals=100, num_detections=5,
                    strides=(8, 16, 32, 64, 128), scales=(16, 32, 64, 128, 256),
                    ratios=(0.5, 1.0, 2.0), with_gt=True, seed=0) -> Trace:
    """A Trace of a synthetic image with ``num_detections`` objects (one detection each).

    The molded image is the original padded to a square (scale 1), so boxes reaching into the
    padding have coordinates outside ``[0, H] x [0, W]``, as in real traces.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(max(height, width) / 64) * 64)
    top, left = (side - height) // 2, (side - width) // 2
    gt_boxes, gt_class_ids, gt_masks = _objects(height, width, num_detections, rng)
    image = _image(height, width, gt_class_ids, gt_masks, rng)
    molded = np.zeros((side, side, 3), np.uint8)
    molded[top:top + height, left:left + width] = image

    anchors, levels, level_shapes = _anchors(side, top, left, strides, scales, ratios)
    anchor_iou = _iou(anchors, gt_boxes.astype(np.float32))        # (A, G)
    best_gt = anchor_iou.argmax(axis=1)
    best_iou = anchor_iou.max(axis=1)
    scores = np.clip(1.3 * best_iou + rng.normal(0, 0.05, len(anchors)), 0, 1) ** 1.5
    scores = scores.astype(np.float32)

    stages = {
        "input": {"image": image, "molded": molded},
        "anchors": {"boxes": anchors, "levels": levels},
        "rpn/scores": {"scores": scores},
        **_proposal_stages(anchors, scores, gt_boxes[best_gt], best_iou, (side, top, left),
                           num_pre_nms, num_proposals, rng),
    }
    _heads(stages, gt_boxes, gt_class_ids, gt_masks, (height, width), rng)
    if with_gt:
        _targets(stages, gt_boxes, gt_class_ids, gt_masks, anchor_iou, rng)
    _activations(stages, side, rng)
    timings = _timings(with_gt)
    trace = Trace(stages=stages, meta={
        "config": {"NAME": "fake", "NUM_CLASSES": len(CLASS_NAMES), "BACKBONE_STRIDES": list(strides),
                   "RPN_ANCHOR_SCALES": list(scales), "RPN_ANCHOR_RATIOS": list(ratios),
                   "RPN_ANCHOR_STRIDE": 1, "PRE_NMS_LIMIT": num_pre_nms,
                   "POST_NMS_ROIS_INFERENCE": num_proposals, "RPN_NMS_THRESHOLD": 0.7,
                   "DETECTION_MIN_CONFIDENCE": 0.5, "IMAGE_MAX_DIM": side},
        "class_names": list(CLASS_NAMES),
        "image_path": None,
        "image_meta": {"original_shape": [height, width, 3], "molded_shape": [side, side, 3],
                       "window": [top, left, top + height, left + width], "scale": 1.0,
                       "padding": [[top, side - top - height], [left, side - left - width], [0, 0]]},
        "level_shapes": level_shapes,
        "activation_layers": ["res2c_out", "fpn_p3"],
        "timings": timings,
    })
    trace.meta["counts"] = trace.counts()
    return trace


def _proposal_stages(anchors, scores, matched_gt, best_iou, frame, num_pre_nms, num_proposals,
                     rng) -> dict:
    """rpn/deltas and proposals/*: anchors pulled toward ``matched_gt`` (each anchor's best GT
    box), the top ``num_pre_nms`` by score clipped to the molded ``frame`` (side, top, left)."""
    side, top, left = frame
    # Pre-NMS: the top anchors moved part of the way to their best ground truth box.
    order = np.argsort(-scores, kind="stable")[:num_pre_nms].astype(np.int32)
    sizes = np.stack([anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]] * 2, axis=1)
    pull = np.where(best_iou > 0.1, 0.6, 0.0)[:, None]
    moved = anchors + pull * (matched_gt - anchors) + rng.normal(0, 0.04, anchors.shape) * sizes
    deltas = _encode(anchors, moved)
    unclipped = moved[order].astype(np.float32)
    bounds = np.array([-top, -left, side - top, side - left], np.float32)
    clipped = np.stack([np.clip(unclipped[:, i], bounds[i % 2], bounds[2 + i % 2])
                        for i in range(4)], axis=1).astype(np.float32)
    post_rows = _nms(clipped, 0.7, num_proposals)
    if len(post_rows) < num_proposals:  # too few survivors: keep the next boxes by score
        extra = np.setdiff1d(np.arange(len(clipped)), post_rows)[:num_proposals - len(post_rows)]
        post_rows = np.concatenate([post_rows, extra]).astype(np.int32)
    proposals = clipped[post_rows]
    return {
        "rpn/deltas": {"deltas": deltas},
        "proposals/pre_nms": {"boxes": clipped, "unclipped": unclipped, "scores": scores[order],
                              "anchor_indices": order},
        "proposals/post_nms": {"boxes": proposals, "scores": scores[order][post_rows],
                               "indices": post_rows},
    }


def _timings(with_gt) -> dict:
    """Made-up seconds per traced step, with their total."""
    timings = {"mold": 0.004, "features": 0.21, "rpn": 0.03, "proposals": 0.05, "classifier": 0.04,
               "detection": 0.01, "mask": 0.03, "postprocess": 0.02}
    if with_gt:
        timings["targets"] = 0.05
    timings["total"] = float(sum(timings.values()))
    return timings


def _heads(stages, gt_boxes, gt_class_ids, gt_masks, shape, rng):
    """heads/*, detections/*, masks/*: one detection per ground-truth object."""
    proposals = stages["proposals/post_nms"]["boxes"]
    num_classes = len(CLASS_NAMES)
    iou = _iou(proposals, gt_boxes.astype(np.float32))                   # (R, G)
    # Every object gets at least one good proposal, as a trained RPN would give.
    for g in range(len(gt_boxes)):
        if iou[:, g].max() < 0.5:
            row = int(iou[:, g].argmax())
            proposals[row] = gt_boxes[g] + rng.normal(0, 2, 4)
    iou = _iou(proposals, gt_boxes.astype(np.float32))
    best_gt, best_iou = iou.argmax(axis=1), iou.max(axis=1)
    logits = rng.normal(0, 0.5, (len(proposals), num_classes))
    logits[:, 0] += 2.0
    fg = best_iou > 0.5
    logits[fg, gt_class_ids[best_gt[fg]]] += 2.0 + 6.0 * best_iou[fg]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    refined = np.repeat(proposals[:, None, :], num_classes, axis=1).copy()
    refined += rng.normal(0, 2.0, refined.shape)
    rows = np.flatnonzero(best_iou > 0.3)
    cls = gt_class_ids[best_gt[rows]]
    refined[rows, cls] += 0.8 * (gt_boxes[best_gt[rows]] - refined[rows, cls])
    h, w = shape
    refined = np.clip(refined, 0, [h, w, h, w]).astype(np.float32)
    stages["heads/class_probs"] = {"probs": probs.astype(np.float32)}
    stages["heads/refined"] = {"boxes": refined}

    class_ids = probs.argmax(axis=1).astype(np.int32)
    class_scores = probs[np.arange(len(probs)), class_ids].astype(np.float32)
    candidates = np.flatnonzero((class_ids > 0) & (class_scores >= 0.5)).astype(np.int32)
    stages["detections/pre_nms"] = {"boxes": refined[candidates, class_ids[candidates]],
                                    "class_ids": class_ids[candidates],
                                    "scores": class_scores[candidates], "roi_indices": candidates}
    # Per object, the best-scoring candidate of its class survives "NMS".
    chosen = []
    for g in range(len(gt_boxes)):
        hits = [i for i, roi in enumerate(candidates)
                if best_gt[roi] == g and best_iou[roi] > 0.5 and class_ids[roi] == gt_class_ids[g]]
        if hits:
            chosen.append(max(hits, key=lambda i: class_scores[candidates[i]]))
    chosen = sorted(chosen, key=lambda i: -class_scores[candidates[i]])
    pre_nms_indices = np.array(chosen, np.int32)
    roi_indices = candidates[pre_nms_indices] if len(chosen) else np.zeros(0, np.int32)
    boxes = np.round(refined[roi_indices, class_ids[roi_indices]]).astype(np.int32).reshape(-1, 4)
    raw = np.array([_crop_mask(gt_masks[:, :, best_gt[roi]], box)
                    for roi, box in zip(roi_indices, boxes)], np.float32).reshape(-1, RAW_MASK, RAW_MASK)
    masks = np.stack([_paste(m, box, shape) for m, box in zip(raw, boxes)], axis=-1) \
        if len(boxes) else np.zeros(shape + (0,), bool)
    stages["detections"] = {"boxes": boxes, "class_ids": class_ids[roi_indices],
                            "scores": class_scores[roi_indices], "roi_indices": roi_indices,
                            "pre_nms_indices": pre_nms_indices}
    stages["masks/raw"] = {"masks": raw}
    stages["masks"] = {"masks": masks}


def _targets(stages, gt_boxes, gt_class_ids, gt_masks, anchor_iou, rng):
    """gt, targets/rpn (match states of a subsample) and targets/rois (sampled ROIs)."""
    stages["gt"] = {"boxes": gt_boxes, "class_ids": gt_class_ids, "masks": gt_masks}
    anchors = stages["anchors"]["boxes"]
    best = anchor_iou.max(axis=1)
    match = np.full(len(anchors), NEUTRAL, np.int32)
    match[best < NEGATIVE_IOU] = NEGATIVE
    match[best >= POSITIVE_IOU] = POSITIVE
    match[anchor_iou.argmax(axis=0)] = POSITIVE
    positive = np.flatnonzero(match == POSITIVE)
    if len(positive) > 128:
        match[rng.choice(positive, len(positive) - 128, replace=False)] = NEUTRAL
    negative = np.flatnonzero(match == NEGATIVE)
    keep_negative = 256 - int(np.sum(match == POSITIVE))
    if len(negative) > keep_negative:
        match[rng.choice(negative, len(negative) - keep_negative, replace=False)] = NEUTRAL
    positive = np.flatnonzero(match == POSITIVE).astype(np.int32)
    gt_of = anchor_iou[positive].argmax(axis=1)
    stages["targets/rpn"] = {"match": match, "positive_indices": positive,
                             "deltas": _encode(anchors[positive], gt_boxes[gt_of].astype(np.float32))}

    proposals = stages["proposals/post_nms"]["boxes"]
    iou = _iou(proposals, gt_boxes.astype(np.float32))
    pos = np.flatnonzero(iou.max(axis=1) >= 0.5)[:10]
    neg = np.flatnonzero(iou.max(axis=1) < 0.5)[:32 - len(pos)]
    rows = np.concatenate([pos, neg]).astype(np.int32)
    gt_of = iou[rows].argmax(axis=1)
    class_ids = np.where(np.arange(len(rows)) < len(pos), gt_class_ids[gt_of], 0).astype(np.int32)
    deltas = _encode(proposals[rows], gt_boxes[gt_of].astype(np.float32))
    deltas[len(pos):] = 0
    masks = np.array([_crop_mask(gt_masks[:, :, g], proposals[r]) if c else
                      np.zeros((RAW_MASK, RAW_MASK), np.float32)
                      for r, g, c in zip(rows, gt_of, class_ids)], np.float32)
    stages["targets/rois"] = {"boxes": proposals[rows], "class_ids": class_ids, "deltas": deltas,
                              "masks": masks.reshape(-1, RAW_MASK, RAW_MASK),
                              "proposal_indices": rows}


def _activations(stages, side, rng):
    """Two float16 activation maps with some spatial structure."""
    for name, stride, channels in (("res2c_out", 4, 16), ("fpn_p3", 8, 8)):
        cells = side // stride
        yy, xx = np.mgrid[0:cells, 0:cells] / cells
        values = np.stack([np.sin(6 * yy * (c + 1) / channels + xx * c) for c in range(channels)], -1)
        values += rng.normal(0, 0.1, values.shape)
        stages["activations/" + name] = {"values": values.astype(np.float16)}
