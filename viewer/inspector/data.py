"""What the dataset inspector shows, as plain numpy: Qt-free and TensorFlow-free.

The inspector is matterport's ``samples/shapes/inspect_data.ipynb`` made interactive; every
number it draws comes from here, so tests check this module's results against ``mrcnn`` calls
made independently. Shape shorthand: H, W original image; h, w molded image (after
``load_image_gt``); N instances; (mh, mw) = ``config.MINI_MASK_SHAPE``; A anchors.
Boxes are ``[y1, x1, y2, x2]`` pixels with (y2, x2) one past the last pixel.

Crowd regions (negative class ids) are kept everywhere and drawn as such: they are part of what
training sees (build_rpn_targets never makes an anchor that touches one a negative).
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrcnn.anchors import FIRST_LEVEL, anchor_level_ids, get_anchors_pixels
from mrcnn.boxes import apply_box_deltas, extract_bboxes
from mrcnn.config import Config
from mrcnn.data.dataset import to_rgb_uint8
from mrcnn.data.pipeline import load_image_gt
from mrcnn.imaging import expand_mask, minimize_mask, parse_image_meta
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE, build_rpn_targets

# Pyramid levels P2..P6 (the anchors module numbers them from FIRST_LEVEL).
LEVELS = tuple(range(FIRST_LEVEL, FIRST_LEVEL + 5))
MATCH_STATES = {"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}
# Longest molded side the default config allows (matterport's IMAGE_MAX_DIM default).
MAX_DEFAULT_SIDE = 1024
# Matterport's anchor sides suit 1024-pixel inputs; below this side they are scaled down in
# proportion (128-pixel shapes get matterport's ShapesConfig scales 8..128).
ANCHOR_REFERENCE_SIDE = 512
_CACHE_SIZE = 6  # images kept per cache: the current one and a few neighbours


def unwrap_dataset(dataset):
    """(prepared mrcnn.data Dataset, viewer LoadedDataset or None) of either kind of argument."""
    inner = getattr(dataset, "dataset", None)
    if inner is not None and hasattr(inner, "image_info"):
        return inner, dataset
    if not hasattr(dataset, "image_info") or not hasattr(dataset, "class_names"):
        raise TypeError(f"DatasetInspector: expected a viewer LoadedDataset or a prepared "
                        f"mrcnn.data.Dataset (call prepare() first), got {type(dataset).__name__}")
    return dataset, None


def default_config(dataset) -> Config:
    """A matterport-default Config whose NUM_CLASSES and input size fit ``dataset``'s images.

    IMAGE_MAX_DIM is the longest image side rounded up to a multiple of 64 (at most 1024),
    IMAGE_MIN_DIM the same capped at matterport's 800; below 512 pixels the anchor scales shrink
    in proportion. Everything else keeps matterport's defaults.
    """
    dataset, _ = unwrap_dataset(dataset)
    longest = _longest_side(dataset)
    side = int(min(max(math.ceil(longest / 64) * 64, 64), MAX_DEFAULT_SIDE))
    values = {"NAME": "inspector", "NUM_CLASSES": int(dataset.num_classes),
              "IMAGE_MAX_DIM": side, "IMAGE_MIN_DIM": min(800, side)}
    if side < ANCHOR_REFERENCE_SIDE:
        factor = side / ANCHOR_REFERENCE_SIDE
        values["RPN_ANCHOR_SCALES"] = tuple(_tidy(s * factor) for s in Config.RPN_ANCHOR_SCALES)
    return Config.from_dict(values)


def _tidy(value: float):
    return int(value) if float(value).is_integer() else float(value)


def _longest_side(dataset) -> int:
    """Longest side over image_info's height/width, or of the first image when they are missing."""
    sides = [max(int(info["height"]), int(info["width"])) for info in dataset.image_info
             if "height" in info and "width" in info]
    if sides:
        return max(sides)
    if not len(dataset.image_ids):
        return MAX_DEFAULT_SIDE
    return int(max(np.asarray(dataset.load_image(int(dataset.image_ids[0]))).shape[:2]))


# ---------------------------------------------------------------------------------------------
# per-image results
# ---------------------------------------------------------------------------------------------


@dataclass
class GroundTruth:
    """One image as stored: what the Image tab draws."""

    image: np.ndarray      # uint8 [H, W, 3] (gray images converted for display)
    masks: np.ndarray      # bool [H, W, N]
    class_ids: np.ndarray  # int32 [N]; < 0 marks a crowd region
    boxes: np.ndarray      # int32 [N, 4] pixels, from the masks


@dataclass
class Molded:
    """One image as the network sees it (``load_image_gt``), with full and mini-masks."""

    image: np.ndarray       # uint8 [h, w, 3], resized and padded
    window: tuple           # (y1, x1, y2, x2) of the image inside the padding, pixels
    scale: float
    class_ids: np.ndarray   # int32 [N]
    boxes: np.ndarray       # int32 [N, 4] molded pixels (load_image_gt's boxes)
    masks: np.ndarray       # bool [h, w, N] full-size molded masks
    mini_masks: np.ndarray  # bool [mh, mw, N]
    expanded: np.ndarray    # bool [h, w, N] mini-masks pasted back into their boxes
    mini_iou: np.ndarray    # float [N] IoU of ``expanded`` with ``masks``: the detail lost
    uses_mini_mask: bool    # config.USE_MINI_MASK: whether training really sees mini-masks


@dataclass
class AnchorMatches:
    """Anchors of one molded image matched to its GT by ``build_rpn_targets``."""

    image_shape: tuple        # (h, w) molded
    anchors: np.ndarray       # float [A, 4] pixels
    level_ids: np.ndarray     # int32 [A] pyramid level 2..6
    match: np.ndarray         # int32 [A] POSITIVE / NEGATIVE / NEUTRAL
    positive_ix: np.ndarray   # int [P] anchor indices of the positives, in anchor order
    refined: np.ndarray       # float [P, 4] positive anchors moved by their target deltas
    gt_boxes: np.ndarray      # int32 [N, 4]
    gt_class_ids: np.ndarray  # int32 [N]
    deltas: np.ndarray = field(default_factory=lambda: np.zeros([0, 4], np.float32))  # [P, 4]

    def counts(self, level: int | None = None) -> dict:
        """{"positive", "negative", "neutral", "total"} anchor counts on ``level`` (None: all)."""
        match = self.match if level is None else self.match[self.level_ids == level]
        out = {name: int(np.sum(match == state)) for name, state in MATCH_STATES.items()}
        out["total"] = int(match.size)
        return out

    def state_boxes(self, name: str, level: int | None = None) -> np.ndarray:
        """[K, 4] pixel anchors in match state ``name`` on ``level`` (None: all levels)."""
        keep = self.match == MATCH_STATES[name]
        if level is not None:
            keep &= self.level_ids == level
        return self.anchors[keep]

    def refined_boxes(self, level: int | None = None) -> np.ndarray:
        """[K, 4] refined positive anchors on ``level`` (None: all levels)."""
        if level is None:
            return self.refined
        return self.refined[self.level_ids[self.positive_ix] == level]


def display_rgb(image) -> np.ndarray:
    """uint8 [H, W, 3] for display from a gray, RGB(A), 16-bit or float image."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return image
    return to_rgb_uint8(image, source="inspector image")


def _mask_iou(first, second) -> np.ndarray:
    """[N] IoU of the N masks of two [h, w, N] bool stacks (1 where both are empty)."""
    inter = np.logical_and(first, second).sum(axis=(0, 1)).astype(np.float64)
    union = np.logical_or(first, second).sum(axis=(0, 1)).astype(np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# ---------------------------------------------------------------------------------------------
# the inspector's data source
# ---------------------------------------------------------------------------------------------


class InspectorData:
    """A prepared dataset + config, answering per-row questions with small caches.

    ``row`` is the position in ``dataset.image_ids`` (the inspector's list order).
    """

    def __init__(self, dataset, config=None):
        self.dataset, self.loaded = unwrap_dataset(dataset)
        self.config = config if config is not None else default_config(self.dataset)
        # load_image_gt with full-size masks; mini-masks are made from them here, exactly as
        # load_image_gt makes them, so both can be shown side by side from one resize.
        self._full_config = copy.copy(self.config)
        self._full_config.USE_MINI_MASK = False
        self.class_names = [str(n) for n in self.dataset.class_names]
        self._gt_cache: OrderedDict = OrderedDict()
        self._molded_cache: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.dataset.image_ids)

    # ---- list entries ------------------------------------------------------------------

    def image_id(self, row: int) -> int:
        return int(self.dataset.image_ids[row])

    def name(self, row: int) -> str:
        """Short name of image ``row``: its file name, or "<source> <id>" for generated images."""
        if self.loaded is not None:
            return self.loaded.name(row)
        info = self.dataset.image_info[self.image_id(row)]
        if info.get("path"):
            return Path(str(info["path"])).name
        return f"{info.get('source') or 'image'}-{info.get('id', row)}"

    def stored_size(self, row: int):
        """(H, W) from image_info without reading the image, or None when it is not recorded."""
        info = self.dataset.image_info[self.image_id(row)]
        if "height" in info and "width" in info:
            return int(info["height"]), int(info["width"])
        return None

    def annotated_count(self, row: int):
        """Instances recorded in image_info (crowd included) without reading masks, or None."""
        info = self.dataset.image_info[self.image_id(row)]
        for key in ("annotations", "shapes"):
            if key in info:
                return len(info[key])
        return None

    def class_name(self, class_id: int) -> str:
        class_id = abs(int(class_id))
        if class_id < len(self.class_names):
            return self.class_names[class_id]
        return f"class {class_id}"

    # ---- per-image results -------------------------------------------------------------

    def ground_truth(self, row: int) -> GroundTruth:
        """The stored image, its masks, class ids and mask boxes (crowd kept, negative ids)."""
        return _cached(self._gt_cache, row, lambda: self._load_ground_truth(row))

    def _load_ground_truth(self, row):
        image_id = self.image_id(row)
        image = display_rgb(self.dataset.load_image(image_id))
        masks, class_ids = self.dataset.load_mask(image_id)
        masks = np.asarray(masks).astype(bool, copy=False)
        class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
        if masks.size == 0 and not len(class_ids):
            masks = np.zeros(image.shape[:2] + (0,), bool)  # some load_masks return [0] arrays
        if masks.ndim != 3 or masks.shape[:2] != image.shape[:2] or \
                masks.shape[-1] != len(class_ids):
            raise ValueError(f"load_mask of image {image_id}: masks {masks.shape} and "
                             f"{len(class_ids)} class ids; expected [H, W, N] masks with "
                             f"H, W = {image.shape[:2]} and one class id per mask")
        return GroundTruth(image, masks, class_ids, extract_bboxes(masks))

    def molded(self, row: int, seed: int = 0) -> Molded:
        """``load_image_gt`` of ``row`` (rng seeded with ``seed``, which only "crop" mode uses)."""
        return _cached(self._molded_cache, (row, seed), lambda: self._mold(row, seed, None))

    def augmented(self, row: int, augmentation, seeds) -> list[Molded]:
        """``load_image_gt`` of ``row`` with ``augmentation``, once per seed (default_rng(seed))."""
        return [self._mold(row, int(seed), augmentation) for seed in seeds]

    def _mold(self, row, seed, augmentation) -> Molded:
        gt = load_image_gt(self.dataset, self._full_config, self.image_id(row),
                           augmentation=augmentation, rng=np.random.default_rng(seed))
        meta = parse_image_meta(gt.image_meta)
        mini_shape = tuple(int(v) for v in self.config.MINI_MASK_SHAPE)
        if len(gt.class_ids):
            mini = minimize_mask(gt.boxes, gt.masks, mini_shape)
            expanded = expand_mask(gt.boxes, mini, gt.image.shape)
        else:
            mini = np.zeros(mini_shape + (0,), bool)
            expanded = np.zeros_like(gt.masks)
        window = tuple(int(v) for v in meta["window"])
        return Molded(display_rgb(gt.image), window, float(meta["scale"]), gt.class_ids,
                      gt.boxes, gt.masks, mini, expanded, _mask_iou(expanded, gt.masks),
                      bool(self.config.USE_MINI_MASK))

    def anchor_matches(self, row: int, seed: int = 0, subsample: bool = True) -> AnchorMatches:
        """Anchors of the molded image matched by ``build_rpn_targets(..., default_rng(seed))``.

        ``subsample=False`` lifts RPN_TRAIN_ANCHORS_PER_IMAGE to the anchor count, so every
        anchor keeps the state its IoU gives it (no random demotion to NEUTRAL).
        """
        molded = self.molded(row, seed)
        shape = molded.image.shape[:2]
        anchors = get_anchors_pixels(self.config, molded.image.shape)
        config = self.config
        if not subsample:
            config = copy.copy(self.config)
            config.RPN_TRAIN_ANCHORS_PER_IMAGE = 2 * len(anchors)
        match, rpn_bbox = build_rpn_targets(anchors, molded.class_ids, molded.boxes, config,
                                            np.random.default_rng(seed))
        positive_ix = np.flatnonzero(match == POSITIVE)
        # rpn_bbox rows follow the positives in anchor order, divided by the std dev.
        deltas = rpn_bbox[:len(positive_ix)] * np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
        refined = (apply_box_deltas(anchors[positive_ix], deltas) if len(positive_ix)
                   else np.zeros([0, 4], np.float32))
        levels = anchor_level_ids(config, molded.image.shape)
        return AnchorMatches(shape, np.asarray(anchors), levels, match, positive_ix, refined,
                             molded.boxes, molded.class_ids, deltas)


def _cached(cache: OrderedDict, key, compute):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value
