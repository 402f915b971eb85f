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
