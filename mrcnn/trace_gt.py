"""Ground truth for ``mrcnn trace --gt COCO.json``: the annotations of one image file, found in a
COCO instances JSON by file name, as the ``gt`` dict ``mrcnn.trace.trace`` takes (numpy only).

With ground truth the trace adds its RPN / ROI targets and the diagnosis of every GT object and
detection (``mrcnn.diagnose``), stored in the saved ``trace.npz``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mrcnn.errors import DatasetError


def coco_ground_truth(annotation_json, image_path, num_classes: int | None = None) -> dict:
    """``{"boxes", "class_ids", "masks"}`` of ``image_path`` from ``annotation_json``.

    The image is matched by its file name (the JSON's ``file_name``, any folder); class ids are
    the dataset's contiguous ids (1..C), which must fit the model's ``num_classes`` (checked
    when given: the CLI reads the file before TensorFlow starts and checks once the model is
    built, with ``check_class_count``).
    """
    from mrcnn.analyze import load_gt
    from mrcnn.data.coco import CocoDataset

    dataset = CocoDataset()
    dataset.load_coco(annotation_json, os.path.dirname(os.path.abspath(image_path)))
    dataset.prepare()
    name = Path(image_path).name
    matches = [i for i in dataset.image_ids if Path(dataset.image_info[i]["path"]).name == name]
    if not matches:
        raise DatasetError(f"--gt {annotation_json}: no image named {name!r} among its "
                           f"{len(dataset.image_ids)} images")
    gt = load_gt(dataset, matches[0])
    gt["num_classes"] = dataset.num_classes
    if num_classes is not None:
        check_class_count(gt, annotation_json, num_classes)
    return gt


def check_class_count(gt, annotation_json, num_classes: int) -> None:
    """DatasetError when the --gt file has more classes than the model."""
    if gt["num_classes"] > num_classes:
        raise DatasetError(f"--gt {annotation_json} has {gt['num_classes']} classes including "
                           f"background but the model has NUM_CLASSES={num_classes}")
