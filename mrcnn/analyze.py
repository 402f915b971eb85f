"""Trace and diagnose every image of a dataset: the loop behind ``mrcnn analyze``.

``analyze_image`` traces one image (no activations, no training targets), adds its ground truth,
diagnoses it and computes the IoU matrices TIDE needs; ``analyze_dataset`` runs it over a
dataset with progress, a stop request (Ctrl-C or a viewer's cancel) that keeps what is done, and
per-image failures recorded instead of raised.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrcnn.boxes import box_areas, compute_overlaps_masks, extract_bboxes
from mrcnn.diagnose import Thresholds, diagnose
from mrcnn.diagnose.aggregate import ImageResult
from mrcnn.diagnose.geometry import box_iou


class AnalyzeError(ValueError):
    """The weights, config and dataset cannot be analysed together (message says why)."""


@dataclass
class DatasetRun:
    """Results of ``analyze_dataset``: finished images, failures and whether it was stopped."""

    results: list = field(default_factory=list)
    failures: list = field(default_factory=list)   # {"image_id", "reference", "error"}
    interrupted: bool = False
    total: int = 0
    seconds: float = 0.0


def load_gt(dataset, image_id) -> dict:
    """GT dict for ``trace``: boxes [G, 4] pixels, class_ids [G], masks [H, W, G] (no crowds)."""
    masks, class_ids = dataset.load_mask(image_id)
    keep = np.asarray(class_ids) > 0  # crowd regions are not instances to find
    masks, class_ids = np.asarray(masks)[:, :, keep], np.asarray(class_ids)[keep]
    return {"boxes": extract_bboxes(masks).astype(np.int32).reshape(-1, 4),
            "class_ids": class_ids.astype(np.int32), "masks": masks.astype(bool)}


def analyze_image(model, image, gt, class_names=None, thresholds=None, image_id=0,
                  reference="", save_trace=None) -> ImageResult:
    """Trace ``image``, diagnose it against ``gt``; ``save_trace``: .npz path for the trace."""
    from mrcnn.evaluate import compute_ap
    from mrcnn.trace import trace

    traced = trace(model, image, activations=[], class_names=class_names)
    if gt["masks"].shape[:2] != traced.image.shape[:2]:
        raise AnalyzeError(f"image {reference or image_id}: masks are "
                           f"{gt['masks'].shape[:2]}, the image {traced.image.shape[:2]}")
    traced.stages["gt"] = dict(gt)
    diagnosis = diagnose(traced, thresholds)
    det = traced["detections"]
    boxes = box_iou(det["boxes"], gt["boxes"])
    masks = compute_overlaps_masks(traced["masks"]["masks"], gt["masks"])
    ap50 = compute_ap(gt["boxes"], gt["class_ids"], gt["masks"], det["boxes"], det["class_ids"],
                      det["scores"], traced["masks"]["masks"])[0]
    if save_trace is not None:
        diagnosis.attach(traced)
        traced.save(save_trace)
    return ImageResult(image_id=int(image_id), reference=str(reference), diagnosis=diagnosis,
                       ap50=float(ap50), box_iou=boxes, mask_iou=masks,
                       det_class_ids=np.asarray(det["class_ids"]),
                       det_scores=np.asarray(det["scores"]),
                       det_areas=box_areas(det["boxes"]) if len(det["boxes"]) else np.zeros(0),
                       gt_class_ids=np.asarray(gt["class_ids"]))


def check_compatible(config, dataset) -> None:
    """AnalyzeError when the model's classes cannot be those of ``dataset``."""
    if config.NUM_CLASSES != dataset.num_classes:
        raise AnalyzeError(
            f"the model has NUM_CLASSES={config.NUM_CLASSES} (config {config.NAME!r}) but the "
            f"dataset has {dataset.num_classes} classes including background "
            f"({', '.join(dataset.class_names[:6])}{', ...' if dataset.num_classes > 6 else ''}); "
            "use the weights trained on this dataset or its config")
    if len(dataset.image_ids) == 0:
        raise AnalyzeError("the dataset has no images")


def analyze_dataset(model, dataset, limit=None, thresholds: Thresholds | None = None,
                    progress=None, should_stop=None, traces_dir=None) -> DatasetRun:
    """``analyze_image`` over the dataset's images (the first ``limit``).

    ``progress(done, total, result_or_failure)`` after each image; ``should_stop()`` is polled
    between images; KeyboardInterrupt also stops the loop. Either way the run returned holds the
    finished images and ``interrupted=True``. An image that raises is recorded in ``failures``.
    """
    image_ids = list(dataset.image_ids)[:limit]
    run = DatasetRun(total=len(image_ids))
    start = time.perf_counter()
    if traces_dir is not None:
        Path(traces_dir).mkdir(parents=True, exist_ok=True)
    try:
        for count, image_id in enumerate(image_ids, 1):
            if should_stop is not None and should_stop():
                run.interrupted = True
                break
            outcome = _one(model, dataset, image_id, thresholds, traces_dir)
            (run.failures if isinstance(outcome, dict) else run.results).append(outcome)
            if progress:
                progress(count, len(image_ids), outcome)
    except KeyboardInterrupt:
        run.interrupted = True
    run.seconds = time.perf_counter() - start
    return run


def _one(model, dataset, image_id, thresholds, traces_dir):
    reference = _reference(dataset, image_id)
    try:
        gt = load_gt(dataset, image_id)
        image = dataset.load_image(image_id)
        save = None if traces_dir is None else Path(traces_dir) / f"{int(image_id):06d}.npz"
        return analyze_image(model, image, gt, dataset.class_names, thresholds, image_id,
                             reference, save)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 -- one bad image must not end the analysis
        return {"image_id": int(image_id), "reference": reference,
                "error": f"{type(error).__name__}: {error}",
                "where": traceback.format_exc(limit=-2).strip().splitlines()[-3:]}


def _reference(dataset, image_id) -> str:
    info = dataset.image_info[image_id]
    return str(info.get("path") or dataset.image_reference(image_id))
