"""Detection metrics: matterport's per-image VOC-style AP and recall, and COCO eval via pycocotools.

Shape shorthand: G ground-truth instances, P predictions, H x W image. Boxes are pixel
``[y1, x1, y2, x2]``; masks are [H, W, G] / [H, W, P] (bool, or floats thresholded at 0.5).

Edge cases (matterport divided by zero here):
- GT present, no predictions: AP 0, recall 0.
- No GT (after trimming zero-padded rows): there is nothing to find, so recall is 1.0, and AP is
  1.0 when there are no predictions either and 0.0 when there are (every prediction is a false
  positive). Averaging these per-image values over a dataset therefore rewards staying silent on
  empty images, like per-image mAP in matterport's notebooks would if it didn't crash.
- COCO eval keeps pycocotools' convention: a statistic with no GT in its range is -1.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from mrcnn.boxes import compute_overlaps, compute_overlaps_masks

UNMATCHED = -1  # value of gt_match / pred_match for an instance without a partner

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (title, IoU range, area range, max detections) of each statistic, as COCOeval.summarize prints.
_COCO_STAT_ROWS = (
    ("Average Precision  (AP)", "0.50:0.95", "all", 100),
    ("Average Precision  (AP)", "0.50", "all", 100),
    ("Average Precision  (AP)", "0.75", "all", 100),
    ("Average Precision  (AP)", "0.50:0.95", "small", 100),
    ("Average Precision  (AP)", "0.50:0.95", "medium", 100),
    ("Average Precision  (AP)", "0.50:0.95", "large", 100),
    ("Average Recall     (AR)", "0.50:0.95", "all", 1),
    ("Average Recall     (AR)", "0.50:0.95", "all", 10),
    ("Average Recall     (AR)", "0.50:0.95", "all", 100),
    ("Average Recall     (AR)", "0.50:0.95", "small", 100),
    ("Average Recall     (AR)", "0.50:0.95", "medium", 100),
    ("Average Recall     (AR)", "0.50:0.95", "large", 100),
)


def trim_zeros(x):
    """[N, C] array without its all-zero rows (the padding of fixed-size GT/detection arrays)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros expects a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]


# ---------------------------------------------------------------------------------------------
# per-image metrics (matterport utils.compute_matches / compute_ap / compute_recall)
# ---------------------------------------------------------------------------------------------


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Greedy mask-IoU matching of predictions (by descending score) to same-class GT.

    Returns ``gt_match`` [G] (index of the matched sorted prediction or -1), ``pred_match`` [P]
    (index of the matched GT or -1; predictions in descending-score order) and ``overlaps``
    [P, G] mask IoUs (rows in that order). All-zero box rows are padding and are trimmed.
    ``score_threshold`` keeps matterport's semantics: it drops candidate GT whose *IoU* with the
    prediction is below it (it is not a confidence cut-off).
    """
    gt_boxes = trim_zeros(np.reshape(gt_boxes, (-1, 4)))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    gt_class_ids = np.asarray(gt_class_ids)
    pred_boxes = trim_zeros(np.reshape(pred_boxes, (-1, 4)))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    # matterport's order (reversed argsort), so ties resolve the same way.
    order = np.argsort(pred_scores)[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    pred_match = np.full([len(order)], UNMATCHED, dtype=np.float64)
    gt_match = np.full([gt_boxes.shape[0]], UNMATCHED, dtype=np.float64)
    for i in range(len(order)):
        candidates = np.argsort(overlaps[i])[::-1]
        below = np.where(overlaps[i, candidates] < score_threshold)[0]
        if below.size:
            candidates = candidates[:below[0]]
        for j in candidates:
            if gt_match[j] > UNMATCHED:
                continue
            # Candidates are sorted by IoU: once one is too low, all the rest are.
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold=0.5):
    """(AP, precisions [P+2], recalls [P+2], overlaps [P, G]) at one IoU threshold, VOC style.

    All-points interpolation: precision is made monotone from the right and summed over the
    recall steps, exactly as matterport's ``utils.compute_ap``. See the module docstring for
    images without GT.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    true_positives = np.cumsum(pred_match > UNMATCHED)
    precisions = true_positives / (np.arange(len(pred_match)) + 1)
    if len(gt_match) == 0:
        # Nothing to find: every prediction is a false positive; silence is perfect.
        recalls = np.ones(len(pred_match))
        ap = 0.0 if len(pred_match) else 1.0
        return (ap, np.concatenate([[0.0], precisions, [0.0]]),
                np.concatenate([[0.0], recalls, [1.0]]), overlaps)
    recalls = true_positives.astype(np.float32) / len(gt_match)

    # Sentinels at both ends so the sum covers recall 0..1.
    precisions = np.concatenate([[0.0], precisions, [0.0]])
    recalls = np.concatenate([[0.0], recalls, [1.0]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_boxes, gt_class_ids, gt_masks,
                     pred_boxes, pred_class_ids, pred_scores, pred_masks,
                     iou_thresholds=None, verbose=0):
    """Mean of compute_ap over IoU thresholds (default 0.50:0.95 step 0.05, COCO's ten)."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for threshold in iou_thresholds:
        ap = compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids,
                        pred_scores, pred_masks, iou_threshold=threshold)[0]
        if verbose:
            print(f"AP @{threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = float(np.mean(aps))
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """(recall, positive_ids): share of [G, 4] GT boxes hit by some [P, 4] box at IoU >= ``iou``.

    ``positive_ids`` are the indices of predictions whose best IoU reaches ``iou``. No GT gives
    recall 1.0 (nothing was missed).
    """
    pred_boxes = np.reshape(pred_boxes, (-1, 4))
    gt_boxes = np.reshape(gt_boxes, (-1, 4))
    if len(gt_boxes) == 0:
        return 1.0, np.zeros([0], dtype=np.int64)
    if len(pred_boxes) == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    best_iou = np.max(overlaps, axis=1)
    best_gt = np.argmax(overlaps, axis=1)
    positive_ids = np.where(best_iou >= iou)[0]
    recall = len(set(best_gt[positive_ids].tolist())) / gt_boxes.shape[0]
    return recall, positive_ids


# ---------------------------------------------------------------------------------------------
# COCO evaluation
# ---------------------------------------------------------------------------------------------


def coco_evaluate(coco_gt, results, eval_type="segm", image_ids=None, verbose=False):
    """The 12 COCOeval statistics by name (AP, AP50, ..., ARl) for ``results`` against ``coco_gt``.

    coco_gt: ``pycocotools.coco.COCO`` with the ground truth (e.g. from ``load_coco(...,
        return_coco=True)``).
    results: list of result dicts (see ``mrcnn.data.coco.build_coco_results``); not modified.
        An empty list is valid: AP is 0 wherever there is GT.
    eval_type: "segm" (mask IoU) or "bbox".
    image_ids: COCO image ids to evaluate; None means every GT image, so images the model saw
        nothing in count as misses.
    verbose: let pycocotools print its progress and table.
    A statistic whose range holds no GT is -1 (pycocotools' convention).
    """
    from pycocotools.cocoeval import COCOeval

    if eval_type not in ("segm", "bbox"):
        raise ValueError(f"coco_evaluate: eval_type must be 'segm' or 'bbox', got {eval_type!r}")
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_dt = _load_results(coco_gt, results)
        evaluator = COCOeval(coco_gt, coco_dt, eval_type)
        if image_ids is not None:
            evaluator.params.imgIds = [int(i) for i in image_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}


def _load_results(coco_gt, results):
    from pycocotools.coco import COCO

    if len(results):
        # loadRes writes ids/areas into the dicts it gets: keep the caller's list intact.
        return coco_gt.loadRes(copy.deepcopy(list(results)))
    # loadRes indexes results[0]; an empty result set is a COCO object with no annotations.
    coco_dt = COCO()
    coco_dt.dataset = {"images": list(coco_gt.dataset["images"]),
                       "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                       "annotations": []}
    coco_dt.createIndex()
    return coco_dt


def format_coco_table(stats):
    """The 12-line table COCOeval.summarize prints, from a coco_evaluate dict."""
    lines = []
    for name, (title, iou, area, max_dets) in zip(COCO_STAT_NAMES, _COCO_STAT_ROWS):
        lines.append(f" {title} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] "
                     f"= {stats[name]:0.3f}")
    return "\n".join(lines)
