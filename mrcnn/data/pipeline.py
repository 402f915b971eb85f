"""Training inputs: matterport's ``load_image_gt`` + ``data_generator``, redone with tf.data.

Shape shorthand: H, W = molded image size (config.IMAGE_SHAPE in "square" / "crop" mode);
N instances in an image; G = config.MAX_GT_INSTANCES; A anchors; R =
config.RPN_TRAIN_ANCHORS_PER_IMAGE; (mh, mw) = config.MINI_MASK_SHAPE when USE_MINI_MASK else
(H, W); B = batch size. Boxes are ``[y1, x1, y2, x2]`` in pixels of the molded image.

One training example (``build_training_inputs``) is a dict of numpy arrays whose keys are the
training model's input names (``element_spec`` gives their TensorSpecs)::

    input_image          float32 [H, W, 3]   molded (mean pixel subtracted)
    input_image_meta     float32 [META]      see mrcnn.imaging
    input_rpn_match      int32   [A, 1]      POSITIVE / NEGATIVE / NEUTRAL per anchor
    input_rpn_bbox       float32 [R, 4]      deltas / RPN_BBOX_STD_DEV of the positives
    input_gt_class_ids   int32   [G]         zero padded (< 0: crowd region)
    input_gt_boxes       float32 [G, 4]      pixels, zero padded
    input_gt_masks       bool    [mh, mw, G] zero padded

``make_dataset`` batches them (drop remainder, so every dimension but none is static).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from mrcnn.anchors import get_anchors_pixels
from mrcnn.boxes import extract_bboxes
from mrcnn.imaging import compose_image_meta, minimize_mask, mold_image, resize_image, resize_mask
from mrcnn.targets import build_rpn_targets

# Order of the example's arrays when they travel through tf.py_function as a tuple.
INPUT_NAMES = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
               "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")
# Resize modes whose molded image size is known from the config alone.
STATIC_SHAPE_MODES = ("square", "crop")


class DataLoadError(RuntimeError):
    """Loading or preparing one training image failed; the message names the image."""


class ImageGT(NamedTuple):
    """Ground truth of one molded image (see load_image_gt)."""

    image: np.ndarray       # uint8 [H, W, 3], resized + padded per config
    image_meta: np.ndarray  # float64 [META]
    class_ids: np.ndarray   # int32 [N]; < 0 marks a crowd region
    boxes: np.ndarray       # int32 [N, 4] pixels of the molded image
    masks: np.ndarray       # bool [mh, mw, N] mini-masks, or [H, W, N] full size


# ---------------------------------------------------------------------------------------------
# one image
# ---------------------------------------------------------------------------------------------


def load_image_gt(dataset, config, image_id, augmentation=None, rng=None) -> ImageGT:
    """Image, meta, class ids, pixel boxes and (mini-)masks of one image, ready for training.

    Resizes per config (``rng`` picks the crop in "crop" mode), applies ``augmentation`` (an
    ``Augmentation``, same transform on image and masks), drops instances whose mask became
    empty and recomputes boxes from the masks. An image without instances gives N = 0.
    """
    rng = np.random.default_rng() if rng is None else rng
    image = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    masks, class_ids = _check_gt(dataset, image_id, image, masks, class_ids)
    original_shape = image.shape

    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    masks = _resize_masks(masks, image.shape, scale, padding, crop)
    if augmentation is not None:
        image, masks = augmentation.apply(image, masks, rng)

    # Resizing, cropping or augmenting can remove an instance entirely (matterport did the same).
    visible = masks.any(axis=(0, 1))
    masks, class_ids = masks[:, :, visible], class_ids[visible]
    boxes = extract_bboxes(masks)
    if config.USE_MINI_MASK:
        masks = minimize_mask(boxes, masks, config.MINI_MASK_SHAPE)

    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    _active_class_ids(dataset, config, image_id))
    return ImageGT(image, image_meta, class_ids, boxes.astype(np.int32), masks)


def _check_gt(dataset, image_id, image, masks, class_ids):
    """bool masks and int32 class ids, or a ValueError saying what load_mask got wrong."""
    masks = np.asarray(masks).astype(bool, copy=False)
    class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    if masks.ndim == 2 and masks.size == 0:
        masks = np.zeros(tuple(image.shape[:2]) + (0,), dtype=bool)
    if masks.ndim != 3 or masks.shape[:2] != image.shape[:2]:
        raise ValueError(f"load_mask of image {image_id}: masks have shape {masks.shape}; "
                         f"expected [H, W, N] with H, W = {tuple(image.shape[:2])} of its image")
    if masks.shape[-1] != len(class_ids):
        raise ValueError(f"load_mask of image {image_id}: {masks.shape[-1]} masks but "
                         f"{len(class_ids)} class ids; expected one class id per mask")
    return masks, class_ids


def _resize_masks(masks, image_shape, scale, padding, crop):
    """resize_mask, also for N = 0 (which scipy's zoom does not take)."""
    if masks.shape[-1] == 0:
        return np.zeros(tuple(image_shape[:2]) + (0,), dtype=bool)
    return resize_mask(masks, scale, padding, crop)


def _active_class_ids(dataset, config, image_id):
    """[NUM_CLASSES] int32: 1 for the classes of the image's source (background included)."""
    source = dataset.image_info[image_id]["source"]
    source_ids = np.asarray(dataset.source_class_ids[source], dtype=np.int64)
    if source_ids.size and source_ids.max() >= config.NUM_CLASSES:
        raise ValueError(f"image {image_id}: the dataset has class id {int(source_ids.max())} but "
                         f"config.NUM_CLASSES is {config.NUM_CLASSES}; expected NUM_CLASSES = "
                         f"dataset.num_classes ({getattr(dataset, 'num_classes', '?')})")
    active = np.zeros([config.NUM_CLASSES], dtype=np.int32)
    active[source_ids] = 1
    return active


def build_training_inputs(dataset, config, image_id, augmentation=None, rng=None) -> dict:
    """The training model's inputs for one image: dict of numpy arrays (module docstring)."""
    rng = np.random.default_rng() if rng is None else rng
    gt = load_image_gt(dataset, config, image_id, augmentation=augmentation, rng=rng)
    anchors = get_anchors_pixels(config, gt.image.shape)
    # RPN targets see every instance, the truncation below only limits the head's GT arrays
    # (matterport's order).
    rpn_match, rpn_bbox = build_rpn_targets(anchors, gt.class_ids, gt.boxes, config, rng)

    class_ids, boxes, masks = gt.class_ids, gt.boxes, gt.masks
    limit = int(config.MAX_GT_INSTANCES)
    if len(class_ids) > limit:
        keep = np.sort(rng.choice(len(class_ids), limit, replace=False))
        class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
    count = len(class_ids)
    gt_class_ids = np.zeros([limit], dtype=np.int32)
    gt_boxes = np.zeros([limit, 4], dtype=np.float32)
    gt_masks = np.zeros(masks.shape[:2] + (limit,), dtype=bool)
    gt_class_ids[:count], gt_boxes[:count], gt_masks[:, :, :count] = class_ids, boxes, masks

    return {
        "input_image": mold_image(gt.image, config),
        "input_image_meta": gt.image_meta.astype(np.float32),
        "input_rpn_match": rpn_match.astype(np.int32)[:, None],
        "input_rpn_bbox": rpn_bbox.astype(np.float32),
        "input_gt_class_ids": gt_class_ids,
        "input_gt_boxes": gt_boxes,
        "input_gt_masks": gt_masks,
    }


# ---------------------------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------------------------


def element_spec(config, batch_size=None) -> dict:
    """TensorSpecs of one example (``batch_size`` None) or of a batch, keyed by input name.

    H, W and A are static in "square" / "crop" mode and None otherwise.
    """
    import tensorflow as tf

    if config.IMAGE_RESIZE_MODE in STATIC_SHAPE_MODES:
        height, width = (int(v) for v in config.IMAGE_SHAPE[:2])
        anchor_count = len(get_anchors_pixels(config, (height, width)))
    else:
        height = width = anchor_count = None
    channels = int(config.IMAGE_CHANNEL_COUNT)
    mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else (height, width)
    limit = int(config.MAX_GT_INSTANCES)
    shapes = {
        "input_image": ((height, width, channels), tf.float32),
        "input_image_meta": ((int(config.IMAGE_META_SIZE),), tf.float32),
        "input_rpn_match": ((anchor_count, 1), tf.int32),
        "input_rpn_bbox": ((int(config.RPN_TRAIN_ANCHORS_PER_IMAGE), 4), tf.float32),
        "input_gt_class_ids": ((limit,), tf.int32),
        "input_gt_boxes": ((limit, 4), tf.float32),
        "input_gt_masks": (mask_shape + (limit,), tf.bool),
    }
    lead = () if batch_size is None else (batch_size,)
    return {name: tf.TensorSpec(lead + shape, dtype, name=name)
            for name, (shape, dtype) in shapes.items()}


def image_rng(seed, epoch, image_id) -> np.random.Generator:
    """The generator that drives resizing, augmentation and sampling of one image in one epoch."""
    return np.random.default_rng([int(seed), int(epoch), int(image_id)])


def _visits(image_ids, shuffle, repeat, seed):
    """(image id, epoch) in each epoch's order: a permutation drawn from (seed, epoch)."""
    epochs = itertools.count() if repeat else range(1)
    for epoch in epochs:
        order = (np.random.default_rng([int(seed), epoch]).permutation(image_ids)
                 if shuffle else image_ids)
        for image_id in order:
            yield int(image_id), epoch


def make_dataset(dataset, config, shuffle=True, augmentation=None, repeat=True, seed=0,
                 num_parallel_calls=None, batch_size=None, skip_crowd_only=True,
                 no_augmentation_sources=None):
    """tf.data.Dataset of batched training-input dicts (keys and shapes: ``element_spec``).

    Images are visited in a per-epoch permutation (``shuffle``) drawn from ``seed``; each image's
    randomness comes from ``image_rng(seed, epoch, image_id)``, and loading runs in parallel with
    the order kept, so two datasets with the same arguments yield identical batches.
    ``skip_crowd_only`` drops images whose instances (after augmentation) are all crowd regions:
    they would train nothing but background. Batches are ``batch_size`` (default
    config.BATCH_SIZE) with the remainder dropped. A loading error is raised while iterating with
    the image's id and ``dataset.image_reference`` in its message. Images whose source is in
    ``no_augmentation_sources`` are never augmented (matterport's argument of that name).
    """
    import tensorflow as tf

    from mrcnn.data.dataset import import_image_plugins

    import_image_plugins()  # here, on the caller's thread: see its docstring
    if config.IMAGE_RESIZE_MODE not in STATIC_SHAPE_MODES and (batch_size or config.BATCH_SIZE) > 1:
        _warn_dynamic(config)
    image_ids = np.asarray(dataset.image_ids, dtype=np.int64)
    if image_ids.size == 0:
        raise ValueError("make_dataset: the dataset has no images (did you call prepare()?)")
    batch_size = int(batch_size or config.BATCH_SIZE)
    specs = element_spec(config)
    unaugmented = set(no_augmentation_sources or ())

    def load(image_id, epoch):
        image_id, epoch = int(image_id.numpy()), int(epoch.numpy())
        source = dataset.image_info[image_id]["source"]
        image_augmentation = None if source in unaugmented else augmentation
        try:
            inputs = build_training_inputs(dataset, config, image_id, image_augmentation,
                                           image_rng(seed, epoch, image_id))
        except Exception as error:  # any failure of user dataset code: say which image
            raise DataLoadError(
                f"training image {image_id} ({_describe(dataset, image_id)}): "
                f"{type(error).__name__}: {error}") from error
        class_ids = inputs["input_gt_class_ids"]
        keep = not (skip_crowd_only and np.any(class_ids < 0) and not np.any(class_ids > 0))
        return [inputs[name] for name in INPUT_NAMES] + [np.bool_(keep)]

    def load_tf(image_id, epoch):
        outputs = tf.py_function(load, [image_id, epoch],
                                 [specs[name].dtype for name in INPUT_NAMES] + [tf.bool])
        example = {name: tf.ensure_shape(value, specs[name].shape)
                   for name, value in zip(INPUT_NAMES, outputs)}
        return example, tf.ensure_shape(outputs[-1], ())

    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    signature = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))
    data = tf.data.Dataset.from_generator(
        lambda: _visits(image_ids, shuffle, repeat, seed), output_signature=signature)
    data = data.map(load_tf, num_parallel_calls=parallel, deterministic=True)
    data = data.filter(_is_kept).map(_drop_keep_flag)
    data = data.batch(batch_size, drop_remainder=True)
    return data.prefetch(tf.data.AUTOTUNE)


def _describe(dataset, image_id):
    """dataset.image_reference, or the image's path when the dataset gives no reference."""
    try:
        reference = dataset.image_reference(image_id)
    except Exception:  # a broken reference must not hide the error being reported
        reference = ""
    return str(reference or dataset.image_info[image_id].get("path") or "no reference")


def _is_kept(example, keep):
    return keep


def _drop_keep_flag(example, keep):
    return example


def _warn_dynamic(config):
    import warnings

    warnings.warn(f"make_dataset: IMAGE_RESIZE_MODE {config.IMAGE_RESIZE_MODE!r} gives images of "
                  f"different sizes, which cannot be batched; use 'square' or 'crop' or batch 1",
                  stacklevel=3)
