"""Check a COCO dataset before training starts, and report every problem at once.

Training used to find a missing image only when it reached it, and trained happily on
2-point polygons (empty masks, mask loss 0.0). ``check_coco(data, image_dir, name)`` looks at
every record first:

=====================  ==========  ==================================================
problem                dropped     what is checked
=====================  ==========  ==================================================
missing image          image       the file exists (and is a file)
unreadable image       image       it decodes (PIL, else skimage; header only over
                                   FULL_DECODE_LIMIT images)
wrong image size       image       its pixels match the record's height and width
unusable image size    image       mrcnn.checks.images (>= 8 px a side, <= 64:1)
unknown image id       annotation  ``image_id`` names an image of the file
unknown category id    annotation  ``category_id`` names a category of the file
polygon < 3 points     annotation  each polygon has >= 6 numbers, an even count
box outside image      annotation  ``bbox`` [x, y, w, h] has w, h > 0 and lies inside the
                                   image (1 px tolerance)
RLE size mismatch      annotation  an RLE's ``size`` is the image's [height, width]
=====================  ==========  ==================================================

and the set must hold at least one instance. ``load_checked_coco`` raises DatasetCheckError
with counts and the first few ids of each kind, or with ``skip_bad`` drops the bad records,
logs a summary and loads what is left.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass

from mrcnn.checks.errors import DatasetCheckError
from mrcnn.checks.images import image_shape_problem

log = logging.getLogger("mrcnn.checks.dataset")

SHOWN_IDS = 5
BOX_TOLERANCE_PX = 1.0
# Sets up to this many images are decoded in full (a truncated file is found now); larger ones
# (COCO train2017: 118k) only have their headers read, which takes seconds instead of minutes.
FULL_DECODE_LIMIT = 5000


@dataclass(frozen=True)
class Problem:
    """One bad record: ``kind`` (table above), the image or annotation id, and a detail."""

    kind: str
    record: str  # "image" or "annotation"
    record_id: object
    detail: str = ""


# ---- images ----------------------------------------------------------------------------------

def _image_size(path, decode=True):
    """(height, width) of a readable image file (decoded in full with ``decode``); raises
    Pillow's error on unreadable ones."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            return image.height, image.width
    except Exception as pillow_error:  # noqa: BLE001 - some formats (float TIFF) only skimage reads
        from mrcnn.data.dataset import read_image_rgb

        try:
            return read_image_rgb(path).shape[:2]
        except Exception:  # noqa: BLE001 - Pillow's message is the shorter one
            raise pillow_error from None


def image_problems(record, image_dir, decode=True) -> list[Problem]:
    """Problems of one COCO image record's file (missing, unreadable, size)."""
    image_id = record["id"]
    path = os.path.join(image_dir, str(record["file_name"]))
    if not os.path.isfile(path):
        return [Problem("missing image", "image", image_id, path)]
    try:
        height, width = _image_size(path, decode)
    except Exception as error:  # noqa: BLE001 - any decoder failure is "unreadable"
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return [Problem("unreadable image", "image", image_id, f"{path}: {reason}")]
    if (height, width) != (record["height"], record["width"]):
        return [Problem("wrong image size", "image", image_id,
                        f"{path} is {height}x{width}, the record says "
                        f"{record['height']}x{record['width']}")]
    problem = image_shape_problem(height, width)
    if problem:
        return [Problem("unusable image size", "image", image_id, f"{path} {problem}")]
    return []


# ---- annotations -----------------------------------------------------------------------------

def annotation_problems(annotation, images, categories) -> list[Problem]:
    """Problems of one annotation: references, polygons, box, RLE size."""
    ann_id = annotation["id"]
    problems = []
    if annotation["category_id"] not in categories:
        problems.append(Problem("unknown category id", "annotation", ann_id,
                                f"category_id {annotation['category_id']}"))
    image = images.get(annotation["image_id"])
    if image is None:
        problems.append(Problem("unknown image id", "annotation", ann_id,
                                f"image_id {annotation['image_id']}"))
        return problems
    height, width = image["height"], image["width"]
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        short = [p for p in segmentation
                 if not isinstance(p, (list, tuple)) or len(p) < 6 or len(p) % 2]
        if short or not segmentation:
            problems.append(Problem("polygon < 3 points", "annotation", ann_id,
                                    f"{len(short)} of {len(segmentation)} polygons"))
    elif isinstance(segmentation, dict) and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            problems.append(Problem("RLE size mismatch", "annotation", ann_id,
                                    f"size {segmentation['size']} vs [{height}, {width}]"))
    problem = _box_problem(annotation.get("bbox"), height, width)
    if problem:
        problems.append(Problem("box outside image", "annotation", ann_id, problem))
    return problems


def _box_problem(box, height, width) -> str | None:
    if box is None:
        return None
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        return f"bbox {box!r} is not 4 numbers [x, y, width, height]"
    tol = BOX_TOLERANCE_PX
    if w <= 0 or h <= 0 or x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        return f"bbox [x, y, w, h] = {list(box)} vs image {width}x{height} (width x height)"
    return None


# ---- the whole file ----------------------------------------------------------------------------

def check_structure(data, name) -> None:
    """DatasetError for a file that is not a COCO instances dict at all (keys, record fields)."""
    from mrcnn.data.coco import check_coco_structure

    check_coco_structure(data, name)


def check_coco(data, image_dir) -> list[Problem]:
    """Every problem of a structurally valid COCO dict whose files are under ``image_dir``."""
    images = {record["id"]: record for record in data["images"]}
    categories = {record["id"] for record in data["categories"]}
    problems = []
    decode = len(data["images"]) <= FULL_DECODE_LIMIT
    for record in data["images"]:
        problems += image_problems(record, image_dir, decode)
    for annotation in data["annotations"]:
        problems += annotation_problems(annotation, images, categories)
    return problems


def summarize(problems) -> str:
    """'2 missing image (image ids 3, 7); 3 polygon < 3 points (annotation ids 10, 11, 12)'."""
    groups: OrderedDict = OrderedDict()
    for problem in problems:
        groups.setdefault((problem.kind, problem.record), []).append(problem)
    parts = []
    for (kind, record), items in groups.items():
        ids = ", ".join(str(p.record_id) for p in items[:SHOWN_IDS])
        more = f", ... ({len(items) - SHOWN_IDS} more)" if len(items) > SHOWN_IDS else ""
        parts.append(f"{len(items)} {kind} ({record} ids {ids}{more}; first: {items[0].detail})")
    return "; ".join(parts)


def drop_bad(data, problems) -> dict:
    """A copy of ``data`` without the images and annotations ``problems`` name."""
    bad_images = {p.record_id for p in problems if p.record == "image"}
    bad_annotations = {p.record_id for p in problems if p.record == "annotation"}
    return dict(data,
                images=[r for r in data["images"] if r["id"] not in bad_images],
                annotations=[a for a in data["annotations"]
                             if a["id"] not in bad_annotations and a["image_id"] not in bad_images])


def count_instances(data) -> int:
    """Annotations that are instances to learn (not crowd regions)."""
    return sum(1 for a in data["annotations"] if not a.get("iscrowd", 0))


def checked_coco_dict(json_path, image_dir, skip_bad=False,
                      purpose="training") -> tuple[dict, list[Problem]]:
    """(the COCO dict to use, the problems found) after every check; see module docstring."""
    from mrcnn.data.coco import read_coco_json

    name = os.path.basename(str(json_path))
    data = read_coco_json(json_path)
    check_structure(data, name)
    problems = check_coco(data, image_dir)
    if problems and not skip_bad:
        raise DatasetCheckError(
            f"{name}: {len(problems)} problem(s) found before {purpose}: {summarize(problems)}. "
            "Fix them, or pass --skip-bad to leave those records out", problems)
    if problems:
        data = drop_bad(data, problems)
        log.warning("%s: --skip-bad left out %d record(s): %s; %d images and %d annotations "
                    "remain", name, len(problems), summarize(problems), len(data["images"]),
                    len(data["annotations"]))
    if not data["images"] or count_instances(data) == 0:
        what = "no images" if not data["images"] else "no instances (annotations)"
        raise DatasetCheckError(f"{name}: {what} for {purpose}"
                                f"{' after --skip-bad' if problems else ''}; expected at least "
                                "one annotated image", problems)
    return data, problems


def load_checked_coco(json_path, image_dir, skip_bad=False):
    """A prepared CocoDataset of ``json_path`` after ``checked_coco_dict``'s checks."""
    from mrcnn.data.coco import CocoDataset

    if not os.path.isdir(image_dir):
        raise DatasetCheckError(f"image directory {image_dir} (for {json_path}) does not exist "
                                "or is not a directory")
    data, problems = checked_coco_dict(json_path, image_dir, skip_bad)
    dataset = CocoDataset()
    if not problems:
        dataset.load_coco(json_path, image_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="mrcnn_checked_") as folder:
            cleaned = os.path.join(folder, os.path.basename(str(json_path)))
            with open(cleaned, "w") as f:
                json.dump(data, f)
            dataset.load_coco(cleaned, image_dir)
        for info in dataset.image_info:  # messages name the user's file, not the temp copy
            info["annotation_file"] = str(json_path)
    dataset.prepare()
    return dataset


def require_evaluation_data(dataset, name) -> None:
    """DatasetCheckError when ``dataset`` (prepared) has no images or no instance at all."""
    if not len(dataset.image_ids):
        raise DatasetCheckError(f"{name}: no images to evaluate; expected at least one")
    for image_id in dataset.image_ids:
        annotations = dataset.image_info[image_id].get("annotations")
        if annotations is None or any(not a.get("iscrowd", 0) for a in annotations):
            return
    raise DatasetCheckError(f"{name}: no ground-truth instances in {len(dataset.image_ids)} "
                            "image(s); mAP would be meaningless - expected at least one")
