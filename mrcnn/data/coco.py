"""CocoDataset: any COCO "instances" JSON through pycocotools, with errors that name the record.

Behaves like matterport's samples/coco CocoDataset: classes are registered under source "coco"
with their COCO category ids, crowd annotations (``iscrowd=1``) come back from ``load_mask`` with
a *negative* class id so training can use them as "ignore" regions and never as targets.

Differences, on purpose: the JSON is validated before use (unknown category / image ids, missing
keys and malformed JSON raise :class:`DatasetError` naming the file and the record), and with
``class_ids=None`` images without any annotation are kept (``load_mask`` gives N = 0).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings

import numpy as np

from mrcnn.data.dataset import Dataset, DatasetError, read_image_rgb

SOURCE = "coco"
REQUIRED_KEYS = ("images", "annotations", "categories")
PYCOCOTOOLS_NUMPY2_WARNING = "__array__ implementation doesn't accept a copy keyword"


class CocoDataset(Dataset):
    """COCO-format instance segmentation data: ``load_coco(json, image_dir)`` then ``prepare()``."""

    def load_coco(self, annotation_json, image_dir, class_ids=None, return_coco=False):
        """Register the images and classes of a COCO instances JSON.

        class_ids: COCO category ids to keep (None or empty: all). With a subset, only images
            holding at least one annotation of those classes are registered (matterport's
            behaviour); with None every image is, annotated or not.
        return_coco: also return the ``pycocotools.coco.COCO`` object (for COCOeval).
        """
        coco = load_coco_api(annotation_json)
        all_class_ids = sorted(coco.getCatIds())
        if not class_ids:
            class_ids = all_class_ids
            image_ids = sorted(coco.imgs)
        else:
            unknown = sorted(set(class_ids) - set(all_class_ids))
            if unknown:
                raise DatasetError(f"{_name(annotation_json)}: class_ids {unknown} are not "
                                   f"categories of this file (it has {all_class_ids})")
            class_ids = sorted(class_ids)
            image_ids = sorted({i for c in class_ids for i in coco.getImgIds(catIds=[c])})

        for class_id in class_ids:
            self.add_class(SOURCE, class_id, coco.loadCats(class_id)[0]["name"])
        for image_id in image_ids:
            record = coco.imgs[image_id]
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=class_ids,
                                                       iscrowd=None))
            self.add_image(SOURCE, image_id=image_id,
                           path=os.path.join(image_dir, record["file_name"]),
                           width=record["width"], height=record["height"],
                           annotations=annotations, annotation_file=str(annotation_json))
        if return_coco:
            return coco
        return None

    def image_reference(self, image_id):
        """``"<json file>: image id <coco id> (<path>)"``."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().image_reference(image_id)
        return f"{_name(info['annotation_file'])}: image id {info['id']} ({info['path']})"

    def load_image(self, image_id):
        """[H, W, 3] uint8 RGB; a missing or unreadable file names the JSON record it came from."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().load_image(image_id)
        return read_image_rgb(info["path"], what=self.image_reference(image_id))

    def load_mask(self, image_id):
        """([H, W, N] bool masks, [N] int32 internal class ids; crowd regions negated)."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().load_mask(image_id)
        height, width = int(info["height"]), int(info["width"])
        masks, class_ids = [], []
        for annotation in info["annotations"]:
            class_id = self.class_from_source_map.get(f"{SOURCE}.{annotation['category_id']}")
            if not class_id:
                continue
            where = f"{_name(info['annotation_file'])}: annotation id {annotation.get('id')}"
            mask = annotation_to_mask(annotation, height, width, where)
            if not mask.any():
                continue  # degenerate polygons (zero area) are not instances
            masks.append(mask)
            class_ids.append(-class_id if annotation.get("iscrowd", 0) else class_id)
        if not masks:
            return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)
        return np.stack(masks, axis=-1), np.array(class_ids, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# reading and validating the JSON
# ---------------------------------------------------------------------------------------------


def _name(path):
    return os.path.basename(str(path))


def load_coco_api(annotation_json):
    """A validated ``pycocotools.coco.COCO`` for a JSON file; errors name the file and record."""
    from pycocotools.coco import COCO

    data = read_coco_json(annotation_json)
    validate_coco_dict(data, _name(annotation_json))
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    return coco


def read_coco_json(annotation_json):
    """The parsed JSON dict; missing file or bad JSON raise with the file name and position."""
    path = str(annotation_json)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file {path!r} does not exist")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{_name(path)}: malformed JSON at line {error.lineno} "
                           f"column {error.colno}: {error.msg}") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{_name(path)}: expected a JSON object at the top level, "
                           f"got {type(data).__name__}")
    return data


def check_coco_structure(data, name):
    """DatasetError unless ``data`` has COCO's three lists with the record fields used here."""
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DatasetError(f"{name}: missing required key(s) {missing}; a COCO instances file "
                           f"needs {list(REQUIRED_KEYS)}")
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise DatasetError(f"{name}: {key!r} must be a list, got {type(data[key]).__name__}")
    _check_records(data["categories"], name, "category", ("id", "name"))
    _check_records(data["images"], name, "image", ("id", "file_name", "height", "width"))
    _check_records(data["annotations"], name, "annotation",
                   ("id", "image_id", "category_id", "segmentation"))


def validate_coco_dict(data, name):
    """Check keys and cross references of a COCO instances dict; raise DatasetError naming them."""
    check_coco_structure(data, name)
    category_ids = {c["id"] for c in data["categories"]}
    image_ids = {i["id"] for i in data["images"]}
    for annotation in data["annotations"]:
        if annotation["category_id"] not in category_ids:
            raise DatasetError(f"{name}: annotation id {annotation['id']} refers to unknown "
                               f"category_id {annotation['category_id']}")
        if annotation["image_id"] not in image_ids:
            raise DatasetError(f"{name}: annotation id {annotation['id']} refers to unknown "
                               f"image_id {annotation['image_id']}")


def _check_records(records, name, kind, required):
    seen = set()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DatasetError(f"{name}: {kind} #{index} is not a JSON object")
        label = f"{kind} id {record['id']}" if "id" in record else f"{kind} #{index}"
        missing = [key for key in required if key not in record]
        if missing:
            raise DatasetError(f"{name}: {label} is missing {missing}")
        if record["id"] in seen:
            raise DatasetError(f"{name}: duplicate {kind} id {record['id']}")
        seen.add(record["id"])


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def annotation_to_mask(annotation, height, width, where="annotation"):
    """[H, W] bool mask of a polygon / uncompressed RLE / compressed RLE segmentation."""
    import pycocotools.mask as mask_utils

    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        # Polygons with < 3 points: pycocotools would read a 4-number list as a *box*.
        polygons = [p for p in segmentation if isinstance(p, (list, tuple)) and len(p) >= 6]
        if not polygons:
            return np.zeros([height, width], dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(s) for s in segmentation["size"]] != [height, width]:
            raise DatasetError(f"{where}: RLE size {list(segmentation['size'])} does not match "
                               f"the image's [height, width] = [{height}, {width}]")
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
    else:
        raise DatasetError(f"{where}: segmentation must be a list of polygons or an RLE dict "
                           f"with 'counts' and 'size', got {type(segmentation).__name__}")
    with warnings.catch_warnings():
        # pycocotools' Cython decode trips numpy 2's copy-keyword deprecation; harmless.
        warnings.filterwarnings("ignore", message=PYCOCOTOOLS_NUMPY2_WARNING,
                                category=DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks):
    """COCO result dicts (RLE segmentation, bbox ``[x, y, w, h]``) for detections of images.

    Like matterport's: ``image_ids`` are *COCO* image ids. Either one id (or a 1-element list)
    with that image's ``rois`` [N, 4] (pixels, ``[y1, x1, y2, x2]``), ``class_ids`` [N] (internal),
    ``scores`` [N], ``masks`` [H, W, N]; or K ids with K-element lists of those arrays.
    Category ids are the source ids of ``dataset``'s classes.
    """
    import pycocotools.mask as mask_utils

    if rois is None:
        return []
    if np.ndim(image_ids) == 0:
        image_ids = [image_ids]
    image_ids = list(image_ids)
    if len(image_ids) == 1 and not isinstance(rois, (list, tuple)):
        rois, class_ids, scores, masks = [rois], [class_ids], [scores], [masks]
    if not len(image_ids) == len(rois) == len(class_ids) == len(scores) == len(masks):
        raise ValueError(f"build_coco_results: {len(image_ids)} image ids but "
                         f"{len(rois)} rois / {len(class_ids)} class_ids / {len(scores)} scores / "
                         f"{len(masks)} masks entries")
    results = []
    for image_id, image_rois, image_classes, image_scores, image_masks in zip(
            image_ids, rois, class_ids, scores, masks):
        for i in range(len(image_rois)):
            y1, x1, y2, x2 = (float(v) for v in np.around(image_rois[i], 1))
            rle = mask_utils.encode(np.asfortranarray(image_masks[:, :, i].astype(np.uint8)))
            results.append({
                "image_id": int(image_id),
                "category_id": int(dataset.class_info[int(image_classes[i])]["id"]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(image_scores[i]),
                "segmentation": {"size": [int(s) for s in rle["size"]],
                                 "counts": rle["counts"].decode("ascii")},
            })
    return results
