"""Numpy reimplementations of matterport Mask_RCNN functions, written from its documented
behaviour for comparison tests (independent of the project's own code: no mrcnn imports).

Boxes are ``[y1, x1, y2, x2]`` in pixels; matterport's float64 arithmetic is kept on purpose.
"""

import numpy as np


def compute_iou(box, boxes, box_area, boxes_area):
    """matterport utils.compute_iou: [N] IoU of one box with N boxes (areas precomputed)."""
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area[:] - intersection[:]
    return intersection / union


def compute_overlaps(boxes1, boxes2):
    """matterport utils.compute_overlaps: [N1, N2] IoU, one column per box of boxes2."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    overlaps = np.zeros((boxes1.shape[0], boxes2.shape[0]))
    for i in range(overlaps.shape[1]):
        overlaps[:, i] = compute_iou(boxes2[i], boxes1, area2[i], area1)
    return overlaps


def rpn_match_before_sampling(anchors, gt_class_ids, gt_boxes):
    """matterport model.build_rpn_targets up to (not including) the random subsampling.

    Returns (rpn_match [A] int32 in {1, -1, 0}, anchor_iou_argmax [A])."""
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int32)
    crowd_ix = np.where(gt_class_ids < 0)[0]
    if crowd_ix.shape[0] > 0:
        non_crowd_ix = np.where(gt_class_ids > 0)[0]
        crowd_boxes = gt_boxes[crowd_ix]
        gt_boxes = gt_boxes[non_crowd_ix]
        crowd_overlaps = compute_overlaps(anchors, crowd_boxes)
        no_crowd_bool = np.amax(crowd_overlaps, axis=1) < 0.001
    else:
        no_crowd_bool = np.ones([anchors.shape[0]], dtype=bool)
    overlaps = compute_overlaps(anchors, gt_boxes)
    anchor_iou_argmax = np.argmax(overlaps, axis=1)
    anchor_iou_max = overlaps[np.arange(overlaps.shape[0]), anchor_iou_argmax]
    rpn_match[(anchor_iou_max < 0.3) & no_crowd_bool] = -1
    gt_iou_argmax = np.argwhere(overlaps == np.max(overlaps, axis=0))[:, 0]
    rpn_match[gt_iou_argmax] = 1
    rpn_match[anchor_iou_max >= 0.7] = 1
    return rpn_match, anchor_iou_argmax, gt_boxes


def rpn_bbox_rows(anchors, gt_boxes, rpn_match, anchor_iou_argmax, std_dev, rows):
    """matterport's rpn_bbox: one row per positive anchor (anchor order), divided by std_dev."""
    rpn_bbox = np.zeros((rows, 4))
    for ix, i in enumerate(np.where(rpn_match == 1)[0]):
        gt, a = gt_boxes[anchor_iou_argmax[i]], anchors[i]
        gt_h, gt_w = gt[2] - gt[0], gt[3] - gt[1]
        gt_cy, gt_cx = gt[0] + 0.5 * gt_h, gt[1] + 0.5 * gt_w
        a_h, a_w = a[2] - a[0], a[3] - a[1]
        a_cy, a_cx = a[0] + 0.5 * a_h, a[1] + 0.5 * a_w
        rpn_bbox[ix] = [(gt_cy - a_cy) / a_h, (gt_cx - a_cx) / a_w,
                        np.log(gt_h / a_h), np.log(gt_w / a_w)]
        rpn_bbox[ix] /= std_dev
    return rpn_bbox


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """matterport utils.generate_anchors: [N, 4] pixel anchors of one level."""
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales, ratios = scales.flatten(), ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """matterport utils.generate_pyramid_anchors: all levels concatenated."""
    return np.concatenate([generate_anchors(scales[i], ratios, feature_shapes[i],
                                            feature_strides[i], anchor_stride)
                           for i in range(len(scales))], axis=0)


def non_max_suppression(boxes, scores, threshold):
    """matterport utils.non_max_suppression: reversed argsort, so among equal scores the LAST
    box comes first."""
    boxes = boxes.astype(np.float32) if boxes.dtype.kind != "f" else boxes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ixs = scores.argsort()[::-1]
    pick = []
    while len(ixs) > 0:
        i = ixs[0]
        pick.append(i)
        iou = compute_iou(boxes[i], boxes[ixs[1:]], area[i], area[ixs[1:]])
        ixs = np.delete(ixs, np.where(iou > threshold)[0] + 1)
        ixs = np.delete(ixs, 0)
    return np.array(pick, dtype=np.int32)


def extract_bboxes(mask):
    """matterport utils.extract_bboxes."""
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        cols = np.where(np.any(mask[:, :, i], axis=0))[0]
        rows = np.where(np.any(mask[:, :, i], axis=1))[0]
        if cols.shape[0]:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def apply_box_deltas(boxes, deltas):
    """matterport utils.apply_box_deltas (float32)."""
    boxes = boxes.astype(np.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def norm_boxes(boxes, shape):
    """matterport utils.norm_boxes."""
    h, w = shape
    return np.divide(boxes - np.array([0, 0, 1, 1]),
                     np.array([h - 1, w - 1, h - 1, w - 1])).astype(np.float32)


def denorm_boxes(boxes, shape):
    """matterport utils.denorm_boxes."""
    h, w = shape
    return np.around(np.multiply(boxes, np.array([h - 1, w - 1, h - 1, w - 1]))
                     + np.array([0, 0, 1, 1])).astype(np.int32)


def compute_overlaps_masks(masks1, masks2):
    """matterport utils.compute_overlaps_masks (non-empty inputs)."""
    masks1 = np.reshape(masks1 > .5, (-1, masks1.shape[-1])).astype(np.float32)
    masks2 = np.reshape(masks2 > .5, (-1, masks2.shape[-1])).astype(np.float32)
    area1, area2 = np.sum(masks1, axis=0), np.sum(masks2, axis=0)
    intersections = np.dot(masks1.T, masks2)
    return intersections / (area1[:, None] + area2[None, :] - intersections)


def trim_zeros(x):
    return x[~np.all(x == 0, axis=1)]


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
                    pred_masks, iou_threshold=0.5, score_threshold=0.0):
    """matterport utils.compute_matches, including its ``gt_match[j] > 0`` test: a GT matched
    by the top-scoring prediction (index 0) can be matched again."""
    gt_boxes = trim_zeros(gt_boxes)
    gt_masks = gt_masks[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(pred_boxes)
    pred_scores = pred_scores[:pred_boxes.shape[0]]
    indices = np.argsort(pred_scores)[::-1]
    pred_boxes, pred_class_ids = pred_boxes[indices], pred_class_ids[indices]
    pred_masks = pred_masks[..., indices]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    pred_match = -1 * np.ones([pred_boxes.shape[0]])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(len(pred_boxes)):
        sorted_ixs = np.argsort(overlaps[i])[::-1]
        low = np.where(overlaps[i, sorted_ixs] < score_threshold)[0]
        if low.size > 0:
            sorted_ixs = sorted_ixs[:low[0]]
        for j in sorted_ixs:
            if gt_match[j] > 0:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
               pred_masks, iou_threshold=0.5):
    """matterport utils.compute_ap."""
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    precisions = np.cumsum(pred_match > -1) / (np.arange(len(pred_match)) + 1)
    recalls = np.cumsum(pred_match > -1).astype(np.float32) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = np.maximum(precisions[i], precisions[i + 1])
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    m_ap = np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices])
    return m_ap, precisions, recalls, overlaps


def compute_recall(pred_boxes, gt_boxes, iou):
    """matterport utils.compute_recall (non-empty inputs)."""
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    iou_max, iou_argmax = np.max(overlaps, axis=1), np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    return len(set(iou_argmax[positive_ids])) / gt_boxes.shape[0], positive_ids
