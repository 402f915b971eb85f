"""Per-image AP / matches / recall on hand-built cases, and COCO eval on a test-written fixture."""

import json

import numpy as np
import pytest
import skimage.io
from pycocotools.coco import COCO

from mrcnn.data import CocoDataset
from mrcnn.evaluate import (COCO_STAT_NAMES, compute_ap, compute_ap_range, compute_matches,
                            compute_recall, coco_evaluate, format_coco_table, trim_zeros)

SIZE = 64


def _boxes_and_masks(boxes):
    """[N, 4] pixel boxes and [SIZE, SIZE, N] bool masks filling exactly those boxes."""
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    masks = np.zeros((SIZE, SIZE, len(boxes)), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return boxes, masks


GT_BOXES = [[0, 0, 20, 20], [30, 30, 50, 50]]
FALSE_POSITIVE = [5, 40, 15, 60]  # overlaps no GT


def _ap(pred_boxes, pred_classes, scores, gt_boxes=GT_BOXES, gt_classes=(1, 1), **kwargs):
    gt_boxes, gt_masks = _boxes_and_masks(gt_boxes)
    pred_boxes, pred_masks = _boxes_and_masks(pred_boxes)
    return compute_ap(gt_boxes, np.array(gt_classes), gt_masks, pred_boxes,
                      np.array(pred_classes), np.array(scores, float), pred_masks, **kwargs)


def test_perfect_predictions_give_ap_1():
    ap, precisions, recalls, overlaps = _ap(GT_BOXES, [1, 1], [0.9, 0.8])
    assert ap == pytest.approx(1.0)
    np.testing.assert_allclose(overlaps, np.eye(2))
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])


def test_one_of_two_gt_missed_gives_half():
    ap, _, recalls, _ = _ap(GT_BOXES[:1], [1], [0.9])
    assert ap == pytest.approx(0.5)


def test_false_positive_ranked_first():
    # Ranked: FP, TP, TP -> precisions 0, 1/2, 2/3 at recalls 0, 1/2, 1; interpolated precision
    # is 2/3 on both recall steps: AP = 0.5 * 2/3 + 0.5 * 2/3 = 2/3.
    ap, precisions, recalls, _ = _ap([FALSE_POSITIVE] + GT_BOXES, [1, 1, 1], [0.9, 0.8, 0.7])
    assert ap == pytest.approx(2 / 3)
    np.testing.assert_allclose(precisions, [2 / 3, 2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0, 0.5, 1, 1])


def test_false_positive_ranked_second():
    # Ranked: TP, FP, TP -> AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    ap, _, _, _ = _ap([GT_BOXES[0], FALSE_POSITIVE, GT_BOXES[1]], [1, 1, 1], [0.9, 0.8, 0.7])
    assert ap == pytest.approx(5 / 6)


def test_wrong_class_and_duplicates_do_not_match():
    assert _ap(GT_BOXES, [2, 2], [0.9, 0.8])[0] == 0.0
    # A duplicate of an already matched GT is a false positive: TP, FP(dup), TP -> 5/6.
    ap, _, _, _ = _ap([GT_BOXES[0], GT_BOXES[0], GT_BOXES[1]], [1, 1, 1], [0.9, 0.8, 0.7])
    assert ap == pytest.approx(5 / 6)


def test_compute_matches_sorts_by_score_and_trims_padding():
    gt_boxes, gt_masks = _boxes_and_masks(GT_BOXES + [[0, 0, 0, 0]])  # one padding row
    pred_boxes, pred_masks = _boxes_and_masks([GT_BOXES[1], GT_BOXES[0], [0, 0, 0, 0]])
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, np.array([1, 1, 0]), gt_masks, pred_boxes, np.array([1, 1, 0]),
        np.array([0.3, 0.9, 0.0]), pred_masks)
    # Sorted by score: prediction 0 is GT_BOXES[0] (0.9), prediction 1 is GT_BOXES[1] (0.3).
    np.testing.assert_array_equal(pred_match, [0, 1])
    np.testing.assert_array_equal(gt_match, [0, 1])
    assert overlaps.shape == (2, 2)
    assert trim_zeros(np.zeros((3, 4))).shape == (0, 4)


def test_iou_threshold_and_ap_range():
    # Prediction shifted 4 px right of a 20x20 GT: IoU = 16*20 / (24*20) = 2/3.
    shifted = [[0, 4, 20, 24]]
    assert _ap(shifted, [1], [1.0], GT_BOXES[:1], [1], iou_threshold=0.6)[0] == 1.0
    assert _ap(shifted, [1], [1.0], GT_BOXES[:1], [1], iou_threshold=0.7)[0] == 0.0
    gt_boxes, gt_masks = _boxes_and_masks(GT_BOXES[:1])
    pred_boxes, pred_masks = _boxes_and_masks(shifted)
    args = (gt_boxes, np.array([1]), gt_masks, pred_boxes, np.array([1]), np.array([1.0]),
            pred_masks)
    # Thresholds 0.50, 0.55, 0.60, 0.65 pass; 0.70 ... 0.95 fail: 4 / 10.
    assert compute_ap_range(*args) == pytest.approx(0.4)
    assert compute_ap_range(*args, iou_thresholds=[0.5, 0.9]) == pytest.approx(0.5)


def test_empty_predictions_and_empty_gt():
    empty_boxes, empty_masks = _boxes_and_masks(np.zeros((0, 4)))
    gt_boxes, gt_masks = _boxes_and_masks(GT_BOXES)
    with np.errstate(all="raise"):
        ap, precisions, recalls, overlaps = compute_ap(
            gt_boxes, np.array([1, 1]), gt_masks, empty_boxes, np.zeros(0, int), np.zeros(0),
            empty_masks)
        assert ap == 0.0 and overlaps.shape == (0, 2)
        # No GT: silence is perfect, any prediction is a false positive.
        ap, *_ = compute_ap(empty_boxes, np.zeros(0, int), empty_masks, empty_boxes,
                            np.zeros(0, int), np.zeros(0), empty_masks)
        assert ap == 1.0
        ap, *_ = compute_ap(empty_boxes, np.zeros(0, int), empty_masks, gt_boxes,
                            np.array([1, 1]), np.array([0.5, 0.4]), gt_masks)
        assert ap == 0.0


def test_compute_recall():
    gt = np.array([[0, 0, 20, 20], [30, 30, 50, 50], [0, 40, 10, 60]])
    pred = np.array([[0, 0, 20, 20], [0, 0, 20, 18], [30, 30, 40, 40], [55, 55, 60, 60]])
    # Pred 0 (IoU 1) and 1 (IoU 0.9) hit GT 0; pred 2 has IoU 0.25 with GT 1; pred 3 nothing.
    recall, positive_ids = compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1])
    recall, positive_ids = compute_recall(pred, gt, 0.2)
    assert recall == pytest.approx(2 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1, 2])
    assert compute_recall(np.zeros((0, 4)), gt, 0.5)[0] == 0.0
    assert compute_recall(pred, np.zeros((0, 4)), 0.5)[0] == 1.0


# ---------------------------------------------------------------------------------------------
# COCO evaluation
# ---------------------------------------------------------------------------------------------

# Two 64x64 images; each has a 20x20 square of category 1 and one of category 2 (all "small").
SQUARES = {1: [(1, 5, 5), (2, 30, 35)], 2: [(1, 40, 10), (2, 8, 30)]}  # image: (cat, y, x)


@pytest.fixture
def coco_gt(tmp_path):
    images, annotations = [], []
    for image_id, squares in SQUARES.items():
        name = f"{image_id}.png"
        skimage.io.imsave(tmp_path / name, np.zeros((SIZE, SIZE, 3), np.uint8),
                          check_contrast=False)
        images.append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
        for category, y, x in squares:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                "iscrowd": 0, "area": 400.0, "bbox": [x, y, 20, 20],
                "segmentation": [[x, y, x + 20, y, x + 20, y + 20, x, y + 20]]})
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    dataset = CocoDataset()
    coco = dataset.load_coco(str(path), str(tmp_path), return_coco=True)
    dataset.prepare()
    return dataset, coco


def _predictions(dataset, shift):
    """Results for every GT square, moved ``shift`` px right; masks are the moved squares."""
    from mrcnn.data import build_coco_results

    results = []
    for image_id, squares in SQUARES.items():
        boxes = [[y, x + shift, y + 20, x + 20 + shift] for _, y, x in squares]
        boxes, masks = _boxes_and_masks(boxes)
        results += build_coco_results(dataset, [image_id], boxes,
                                      np.array([c for c, _, _ in squares]),
                                      np.ones(len(squares)), masks)
    return results


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_coco_eval_perfect_and_shifted(coco_gt, eval_type):
    dataset, coco = coco_gt
    perfect = coco_evaluate(coco, _predictions(dataset, 0), eval_type)
    assert tuple(perfect) == COCO_STAT_NAMES
    for name in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert perfect[name] == pytest.approx(1.0), name
    assert perfect["APm"] == perfect["APl"] == -1.0  # no medium / large GT

    # Shift 4 px: IoU 2/3 passes thresholds 0.50..0.65 (4 of 10) and fails 0.70..0.95.
    results = _predictions(dataset, 4)
    before = json.dumps(results)
    shifted = coco_evaluate(coco, results, eval_type)
    assert json.dumps(results) == before  # caller's results untouched
    assert shifted["AP50"] == pytest.approx(1.0)
    assert shifted["AP75"] == pytest.approx(0.0)
    assert shifted["AP"] == pytest.approx(0.4)
    assert shifted["AR100"] == pytest.approx(0.4)

    # Only image 1 evaluated: still perfect for the exact predictions.
    assert coco_evaluate(coco, _predictions(dataset, 0)[:2], eval_type,
                         image_ids=[1])["AP"] == pytest.approx(1.0)


def test_coco_eval_without_predictions_and_bad_type(coco_gt):
    _, coco = coco_gt
    stats = coco_evaluate(coco, [], "segm")
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0
    with pytest.raises(ValueError, match="eval_type must be 'segm' or 'bbox'"):
        coco_evaluate(coco, [], "keypoints")


def test_format_coco_table_matches_pycocotools(coco_gt, capsys):
    dataset, coco = coco_gt
    stats = coco_evaluate(coco, _predictions(dataset, 4), "bbox", verbose=True)
    printed = capsys.readouterr().out
    table = format_coco_table(stats)
    assert len(table.splitlines()) == 12
    for line in table.splitlines():
        assert line in printed
    ap50_line = " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000"
    assert ap50_line in table
    assert isinstance(coco, COCO)
