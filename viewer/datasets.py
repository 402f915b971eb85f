"""Datasets in the viewer: which one to open, its image list, and one image's ground truth.

Qt-free and TensorFlow-free (``mrcnn.data`` imports neither), so a dataset loads on a worker
thread and its ground truth is read there too. Ground truth is what ``mrcnn.trace.trace`` takes:
boxes ``[G, 4]`` ``[y1, x1, y2, x2]`` in original-image pixels, class ids ``[G]`` and masks
``[H, W, G]`` bool, with crowd regions (negative class ids) left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES_DEFAULT_COUNT = 20
SHAPES_DEFAULT_SIZE = 128  # pixels, square


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to open: ``kind`` "coco" (annotations JSON + image folder) or "shapes"."""

    kind: str
    annotations: str = ""
    image_dir: str = ""
    count: int = SHAPES_DEFAULT_COUNT
    height: int = SHAPES_DEFAULT_SIZE
    width: int = SHAPES_DEFAULT_SIZE
    seed: int = 0

    def describe(self) -> str:
        if self.kind == "coco":
            return Path(self.annotations).name
        return f"shapes ({self.count} x {self.height}x{self.width}, seed {self.seed})"

    def check(self) -> "DatasetSpec":
        """Self, or ValueError naming the field that cannot work."""
        if self.kind == "coco":
            if not os.path.isfile(self.annotations):
                raise ValueError(f"COCO annotations file not found: {self.annotations or '(none)'}")
            if not os.path.isdir(self.image_dir):
                raise ValueError(f"COCO image folder not found: {self.image_dir or '(none)'}")
        elif self.kind == "shapes":
            if self.count < 1:
                raise ValueError(f"shapes: count must be at least 1, got {self.count}")
            if min(self.height, self.width) < 16:
                raise ValueError(f"shapes: images must be at least 16x16 pixels, got "
                                 f"{self.height}x{self.width}")
        else:
            raise ValueError(f"unknown dataset kind {self.kind!r} (expected 'coco' or 'shapes')")
        return self


class LoadedDataset:
    """A prepared ``mrcnn.data`` Dataset with one list entry per image (``label(row)``)."""

    def __init__(self, spec: DatasetSpec, dataset):
        self.spec = spec
        self.dataset = dataset
        self.class_names = list(dataset.class_names)

    def __len__(self) -> int:
        return len(self.dataset.image_ids)

    def image_id(self, row: int) -> int:
        return int(self.dataset.image_ids[row])

    def instance_count(self, row: int) -> int:
        """Objects annotated in image ``row`` (crowd regions included), without reading masks."""
        info = self.dataset.image_info[self.image_id(row)]
        return len(info.get("annotations", info.get("shapes", ())))

    def label(self, row: int) -> str:
        info = self.dataset.image_info[self.image_id(row)]
        name = Path(info["path"]).name if info.get("path") else f"shapes {info['id']}"
        count = self.instance_count(row)
        return f"{row}: {name} ({count} object{'' if count == 1 else 's'})"

    def image_path(self, row: int) -> str | None:
        """The image file of ``row`` (None for generated images)."""
        return self.dataset.image_info[self.image_id(row)].get("path") or None

    def name(self, row: int) -> str:
        """Short name of image ``row`` for titles and export file names."""
        path = self.image_path(row)
        if path:
            return Path(path).name
        return f"shapes-{self.spec.seed}-{self.dataset.image_info[self.image_id(row)]['id']}"

    def load_image(self, row: int) -> np.ndarray:
        """[H, W, 3] uint8 image ``row``."""
        return self.dataset.load_image(self.image_id(row))

    def ground_truth(self, row: int) -> dict:
        """{"boxes" [G, 4] int32 pixels, "class_ids" [G] int32, "masks" [H, W, G] bool}."""
        from mrcnn.boxes import extract_bboxes

        masks, class_ids = self.dataset.load_mask(self.image_id(row))
        masks = np.asarray(masks, bool)
        class_ids = np.asarray(class_ids, np.int32).reshape(-1)
        # Crowd regions come back with negative ids: "ignore" areas, never objects to find.
        keep = class_ids > 0
        masks, class_ids = masks[..., keep], class_ids[keep]
        # Boxes from the masks (matterport's load_image_gt does the same); empty masks dropped.
        boxes = extract_bboxes(masks)
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return {"boxes": boxes[nonempty], "class_ids": class_ids[nonempty],
                "masks": masks[..., nonempty]}


@dataclass(frozen=True, eq=False)
class DatasetImage:
    """One image of a loaded dataset: what a TraceWorker reads instead of an image file."""

    dataset: LoadedDataset
    row: int

    @property
    def name(self) -> str:
        return self.dataset.name(self.row)

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names

    def load_image(self) -> np.ndarray:
        return self.dataset.load_image(self.row)

    def ground_truth(self) -> dict:
        return self.dataset.ground_truth(self.row)


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Open and prepare the dataset ``spec`` names (slow for a large COCO JSON: a worker calls it)."""
    spec.check()
    if spec.kind == "coco":
        from mrcnn.data.coco import CocoDataset

        dataset = CocoDataset()
        dataset.load_coco(spec.annotations, spec.image_dir)
    else:
        from mrcnn.data.shapes import ShapesDataset

        dataset = ShapesDataset()
        dataset.load_shapes(spec.count, spec.height, spec.width, seed=spec.seed)
    dataset.prepare()
    if not len(dataset.image_ids):
        raise ValueError(f"{spec.describe()}: the dataset has no images")
    return LoadedDataset(spec, dataset)
