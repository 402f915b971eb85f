"""Whole-dataset statistics for the inspector: instances per class and per image, image sizes.

Qt-free and TensorFlow-free. Counts come from ``dataset.load_mask`` (the class ids training
sees), one image at a time, so a worker thread can compute them with progress and stop early.
An "instance" is one entry of load_mask with a class id > 0; crowd regions (< 0) are counted
apart. Image sizes are the masks' (H, W), which load_mask gives for every dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DatasetStatistics:
    """Per-image counts of a dataset; rows not yet computed hold -1 sizes and zero counts."""

    class_names: list
    heights: np.ndarray    # int64 [n] pixels (-1: not computed yet)
    widths: np.ndarray     # int64 [n] pixels
    instances: np.ndarray  # int64 [n, num_classes] instances per image per class (column 0 = BG)
    crowd: np.ndarray      # int64 [n] crowd regions per image
    done: int = 0          # rows computed so far (in list order)
    errors: dict = field(default_factory=dict)  # row -> message of a load_mask failure

    @classmethod
    def empty(cls, count: int, class_names) -> "DatasetStatistics":
        return cls(list(class_names), np.full(count, -1, np.int64), np.full(count, -1, np.int64),
                   np.zeros((count, len(class_names)), np.int64), np.zeros(count, np.int64))

    @property
    def total(self) -> int:
        return len(self.heights)

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def add(self, row: int, height: int, width: int, class_ids) -> None:
        """Record image ``row``: its size and the class ids of its load_mask."""
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        self.heights[row], self.widths[row] = int(height), int(width)
        objects = class_ids[(class_ids > 0) & (class_ids < self.instances.shape[1])]
        self.instances[row] = np.bincount(objects, minlength=self.instances.shape[1])
        self.crowd[row] = int(np.sum(class_ids < 0))

    def per_class(self) -> np.ndarray:
        """[num_classes] instances of each class over the computed images (BG entry 0)."""
        return self.instances.sum(axis=0)

    def images_with_class(self) -> np.ndarray:
        """[num_classes] computed images holding at least one instance of each class."""
        return (self.instances > 0).sum(axis=0)

    def instances_per_image(self) -> np.ndarray:
        """[n] object instances (crowd excluded) per image."""
        return self.instances[:, 1:].sum(axis=1)

    def rows_with_class(self, class_id: int) -> np.ndarray:
        """Rows (list order) of computed images with at least one instance of ``class_id``."""
        return np.flatnonzero(self.instances[:, int(class_id)] > 0)

    def summary(self) -> dict:
        """Totals over the computed images (sizes as (min, max) pairs; None when none computed)."""
        seen = self.heights >= 0
        counts = self.instances_per_image()[seen]
        sizes = None
        if seen.any():
            sizes = ((int(self.heights[seen].min()), int(self.heights[seen].max())),
                     (int(self.widths[seen].min()), int(self.widths[seen].max())))
        return {"images": int(seen.sum()), "instances": int(counts.sum()),
                "crowd": int(self.crowd[seen].sum()),
                "empty_images": int(np.sum(counts == 0)),
                "max_per_image": int(counts.max()) if counts.size else 0,
                "mean_per_image": float(counts.mean()) if counts.size else 0.0,
                "height_range": sizes[0] if sizes else None,
                "width_range": sizes[1] if sizes else None,
                "errors": len(self.errors)}

    def size_counts(self) -> list[tuple[tuple[int, int], int]]:
        """[((H, W), images)] of the distinct sizes of computed images, most frequent first."""
        seen = self.heights >= 0
        if not seen.any():
            return []
        pairs, counts = np.unique(np.stack([self.heights[seen], self.widths[seen]], axis=1),
                                  axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return [((int(pairs[i, 0]), int(pairs[i, 1])), int(counts[i])) for i in order]


def image_counts(dataset, image_id: int) -> tuple[int, int, np.ndarray]:
    """(H, W, class ids [N]) of one image from its load_mask."""
    masks, class_ids = dataset.load_mask(image_id)
    masks = np.asarray(masks)
    class_ids = np.asarray(class_ids, np.int64).reshape(-1)
    if masks.ndim >= 2 and masks.shape[0] and masks.shape[1]:
        return int(masks.shape[0]), int(masks.shape[1]), class_ids
    # A load_mask without instances may return an empty array: read the size from the image.
    height, width = np.asarray(dataset.load_image(image_id)).shape[:2]
    return int(height), int(width), class_ids


def compute_statistics(dataset, class_names, rows=None, stats=None, progress=None,
                       should_stop=None) -> DatasetStatistics:
    """Fill (or start) ``stats`` for ``rows`` (default: all, in list order) of ``dataset``.

    ``progress(done, total)`` is called after every image; ``should_stop()`` returning True ends
    the loop early (the partial result is returned, ``done`` says how far it got). A failing
    image is recorded in ``errors`` and counted as done, so one bad file cannot stall the rest.
    """
    image_ids = np.asarray(dataset.image_ids)
    stats = stats or DatasetStatistics.empty(len(image_ids), class_names)
    rows = range(len(image_ids)) if rows is None else rows
    for row in rows:
        if should_stop is not None and should_stop():
            break
        try:
            stats.add(row, *image_counts(dataset, int(image_ids[row])))
        except Exception as error:  # user dataset code: report the image, keep going
            stats.errors[int(row)] = f"{type(error).__name__}: {error}"
        stats.done += 1
        if progress is not None:
            progress(stats.done, stats.total)
    return stats
