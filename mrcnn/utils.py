"""matterport's ``mrcnn.utils`` names, so ``from mrcnn import utils`` code runs unchanged.

Every name is the project's own function (re-exported from ``boxes``, ``imaging``, ``anchors``,
``evaluate``, ``data.dataset``) or a thin adapter where matterport's signature differs; nothing
here is a second implementation. Boxes are ``[y1, x1, y2, x2]``; pixel boxes have ``(y2, x2)``
one past the last pixel, normalized boxes are what ``norm_boxes`` gives.

Where the behaviour differs from matterport's on purpose (see the README's "Porting matterport
code"): ``non_max_suppression`` keeps the earlier box among equal scores (matterport's reversed
argsort kept the later one) and takes an optional ``max_output``; ``compute_matches`` /
``compute_ap`` never match one GT instance twice (matterport's ``gt_match[j] > 0`` test let a GT
matched by the top-scoring prediction be matched again) and return defined values for images
without GT or predictions; ``compute_overlaps_masks`` returns an empty [N1, N2] matrix for empty
inputs; ``compute_recall`` handles empty inputs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from mrcnn.anchors import generate_anchors, generate_pyramid_anchors
from mrcnn.boxes import (apply_box_deltas, box_refinement, compute_iou, compute_overlaps,
                         compute_overlaps_masks, denorm_boxes, extract_bboxes, non_max_suppression,
                         norm_boxes)
from mrcnn.boxes import box_refinement_tf as box_refinement_graph
from mrcnn.data.dataset import Dataset
from mrcnn import evaluate
from mrcnn.evaluate import compute_ap, compute_matches, compute_recall, trim_zeros
from mrcnn.imaging import (expand_mask, minimize_mask, resize, resize_image, resize_mask,
                           unmold_mask)

__all__ = [
    "Dataset", "extract_bboxes", "compute_iou", "compute_overlaps", "compute_overlaps_masks",
    "non_max_suppression", "apply_box_deltas", "box_refinement", "box_refinement_graph",
    "resize_image", "resize_mask", "minimize_mask", "expand_mask", "mold_mask", "unmold_mask",
    "generate_anchors", "generate_pyramid_anchors", "trim_zeros", "compute_matches", "compute_ap",
    "compute_ap_range", "compute_recall", "batch_slice", "norm_boxes", "denorm_boxes", "resize",
    "download_trained_weights", "COCO_MODEL_URL", "COCO_WEIGHTS_ENV",
]

# Where matterport's COCO weights are published (for the user to fetch; nothing here downloads).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
# Environment variable naming a local copy of mask_rcnn_coco.h5 for download_trained_weights.
COCO_WEIGHTS_ENV = "MRCNN_COCO_WEIGHTS"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                     pred_mask, iou_thresholds=None, verbose=1):
    """Mean AP over IoU thresholds (default 0.50:0.95); matterport's signature, which prints
    each AP by default (``evaluate.compute_ap_range`` does the work)."""
    return evaluate.compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                                     pred_score, pred_mask, iou_thresholds=iou_thresholds,
                                     verbose=verbose)


def mold_mask(mask, config) -> np.ndarray:
    """[h, w] (or [h, w, N]) mask cropped to its box -> config.MASK_SHAPE float32 in 0..1.

    The form of the mask head's targets (bilinear, as ``minimize_mask``). matterport declared
    this function but left it a stub returning None.
    """
    mask = np.asarray(mask, dtype=np.float32)
    shape = tuple(int(v) for v in config.MASK_SHAPE) + tuple(mask.shape[2:])
    return resize(mask, shape, order=1).astype(np.float32)


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run ``graph_fn`` on each of ``batch_size`` slices of the tensors ``inputs`` and stack the
    results along a new axis 0 (matterport's helper for per-image graph code)."""
    import tensorflow as tf

    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    slices = []
    for i in range(int(batch_size)):
        output = graph_fn(*[x[i] for x in inputs])
        slices.append(list(output) if isinstance(output, (list, tuple)) else [output])
    per_output = list(zip(*slices))
    names = names or [None] * len(per_output)
    result = [tf.stack(list(values), axis=0, name=name) for values, name in zip(per_output, names)]
    return result[0] if len(result) == 1 else result


def download_trained_weights(coco_model_path, verbose=1, source=None):
    """Put matterport's ``mask_rcnn_coco.h5`` at ``coco_model_path`` without a network.

    Nothing is downloaded at run time. The file is copied from ``source`` or from the path in
    the ``MRCNN_COCO_WEIGHTS`` environment variable; when ``coco_model_path`` already holds it,
    nothing happens. Otherwise FileNotFoundError says where to put the file. Returns the path.
    """
    target = Path(coco_model_path)
    origin = "source" if source is not None else COCO_WEIGHTS_ENV
    if source is None:
        if target.is_file():
            _check_hdf5(target, "coco_model_path")
            return str(target)
        source = os.environ.get(COCO_WEIGHTS_ENV)
    if not source:
        raise FileNotFoundError(
            f"download_trained_weights: {str(target.resolve())!r} does not exist and nothing is "
            f"downloaded at run time. Download mask_rcnn_coco.h5 yourself from {COCO_MODEL_URL} "
            f"and put it there, or set {COCO_WEIGHTS_ENV}=/path/to/mask_rcnn_coco.h5 (or pass "
            f"source=...) to have it copied.")
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"download_trained_weights: {origin} {str(source)!r} is not a "
                                f"file; expected the path of a local mask_rcnn_coco.h5")
    _check_hdf5(source, origin)
    if target.exists() and target.resolve() == source.resolve():
        return str(target)
    if verbose > 0:
        print(f"Copying pretrained model {source} to {target} ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)  # atomic: a killed copy never leaves a truncated .h5 behind
    if verbose > 0:
        print("... done copying pretrained model!")
    return str(target)


def _check_hdf5(path, what):
    with open(path, "rb") as f:
        if f.read(8) != _HDF5_SIGNATURE:
            raise ValueError(f"download_trained_weights: {what} {str(path)!r} is not an HDF5 "
                             f"file; expected matterport's mask_rcnn_coco.h5")
