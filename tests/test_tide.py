"""dAP per error type: mrcnn.diagnose.tide against the tidecv package on the same detections,
for boxes and masks, plus hand-checked small cases."""

import numpy as np
import pytest

from mrcnn.boxes import compute_overlaps, compute_overlaps_masks
from mrcnn.diagnose.tide import ERROR_TYPES, SHORT_NAMES, TideImage, class_ap, tide_errors

from pycocotools import mask as mask_utils
from tidecv import TIDE, Data  # the test extra installs it: the reference implementation

SIZE = 64


def random_dataset(seed, images=40, classes=3):
    """Per image: GT boxes/classes and detections made from them with every kind of error."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        count = int(rng.integers(0, 5))
        y1x1 = rng.integers(0, SIZE - 20, (count, 2))
        hw = rng.integers(6, 20, (count, 2))
        gt = np.concatenate([y1x1, y1x1 + hw], axis=1)
        gt_cls = rng.integers(1, classes + 1, count)
        boxes, cls, scores = [], [], []
        for box, c in zip(gt, gt_cls):
            for _ in range(int(rng.integers(0, 3))):   # 0: missed, 2: a duplicate
                jitter = rng.integers(-6, 7, 4) if rng.random() < 0.4 else rng.integers(-1, 2, 4)
                b = np.clip(box + jitter, 0, SIZE)
                if b[2] - b[0] < 2 or b[3] - b[1] < 2:
                    continue
                boxes.append(b)
                cls.append(c if rng.random() < 0.8 else int(rng.integers(1, classes + 1)))
                scores.append(float(rng.random()))
        for _ in range(int(rng.integers(0, 3))):      # background detections
            y, x = rng.integers(0, SIZE - 10, 2)
            boxes.append([y, x, y + 8, x + 8])
            cls.append(int(rng.integers(1, classes + 1)))
            scores.append(float(rng.random()))
        out.append((gt.reshape(-1, 4), gt_cls, np.array(boxes).reshape(-1, 4), np.array(cls, int),
                    np.array(scores)))
    return out


def box_masks(boxes):
    masks = np.zeros((SIZE, SIZE, len(boxes)), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        # Not the box itself: an ellipse, so mask IoU differs from box IoU.
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        cy, cx, ry, rx = (y1 + y2) / 2, (x1 + x2) / 2, max((y2 - y1) / 2, 1), max((x2 - x1) / 2, 1)
        masks[:, :, i] = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
    return masks


def run_tidecv(data, mode):
    gt_data, pred_data = Data("gt"), Data("pred")
    for image_id, (gt, gt_cls, boxes, cls, scores) in enumerate(data):
        gt_data.add_image(image_id, f"image {image_id}")   # images without GT count too
        gt_masks, pred_masks = box_masks(gt), box_masks(boxes)
        for i, (box, c) in enumerate(zip(gt, gt_cls)):
            gt_data.add_ground_truth(image_id, int(c), box=_xywh(box), mask=_rle(gt_masks[:, :, i]))
        for i, (box, c, s) in enumerate(zip(boxes, cls, scores)):
            pred_data.add_detection(image_id, int(c), float(s), box=_xywh(box),
                                    mask=_rle(pred_masks[:, :, i]))
    tide = TIDE(mode=mode)
    run = tide.evaluate(gt_data, pred_data, mode=mode)
    return run.ap, {err.short_name: value for err, value in run.fix_main_errors().items()}


def ours(data, mode):
    images = []
    for gt, gt_cls, boxes, cls, scores in data:
        if mode == "bbox":
            iou = compute_overlaps(boxes, gt) if len(boxes) and len(gt) else np.zeros((len(boxes), len(gt)))
        else:
            iou = compute_overlaps_masks(box_masks(boxes), box_masks(gt))
        images.append(TideImage(iou, cls, scores, gt_cls))
    return tide_errors(images)


def _xywh(box):
    y1, x1, y2, x2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _rle(mask):
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


@pytest.mark.parametrize("mode", ["bbox", "mask"])
@pytest.mark.parametrize("seed", [0, 1])
def test_dap_matches_tidecv(seed, mode):
    data = random_dataset(seed)
    ap, reference = run_tidecv(data, mode)
    result = ours(data, mode)
    assert result["ap"] == pytest.approx(ap, abs=0.5)
    for kind in ERROR_TYPES:
        assert result["dap"][kind] == pytest.approx(reference[SHORT_NAMES[kind]], abs=0.5), kind
    # The random data has every error type, so the comparison is not vacuous.
    assert all(result["counts"][kind] > 0 for kind in ERROR_TYPES), result["counts"]
    assert sum(result["dap"].values()) > 1.0


def test_class_ap_hand_computed():
    # 2 GT; detections by score: TP, FP, TP -> precision 1, 1/2, 2/3 -> smoothed 1, 2/3, 2/3;
    # recall 0.5 after the first, 1.0 after the third: 51 grid points at 1, 50 at 2/3.
    points = [(0.9, True), (0.8, False), (0.7, True)]
    assert class_ap(points, 2) == pytest.approx((51 * 1 + 50 * 2 / 3) / 101 * 100)
    assert class_ap([], 3) == 0.0 and class_ap(points, 0) == 0.0


def test_fixing_a_duplicate_and_a_miss():
    # One image, two GTs of class 1; a TP (0.9), its duplicate (0.95 would be the TP: use 0.8),
    # and no detection on the second GT.
    iou = np.array([[1.0, 0.0], [0.9, 0.0]])
    result = tide_errors([TideImage(iou, np.array([1, 1]), np.array([0.9, 0.8]), np.array([1, 1]))])
    assert result["counts"]["duplicate"] == 1 and result["counts"]["missed"] == 1
    # As is: recall 0.5 at precision 1 -> AP = 51/101; without the duplicate: the same;
    # without the miss: 1 GT, recall 1 at precision 1 -> 100.
    assert result["ap"] == pytest.approx(51 / 101 * 100)
    assert result["dap"]["duplicate"] == pytest.approx(0.0)
    assert result["dap"]["missed"] == pytest.approx(100 - 51 / 101 * 100)
