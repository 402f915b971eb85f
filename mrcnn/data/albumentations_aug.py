"""albumentations pipelines as training augmentation, beside the project's own ``Augmentation``.

matterport passed imgaug augmenters to ``train(augmentation=...)``; imgaug is unmaintained and
breaks under numpy 2. albumentations is its maintained, mask-aware successor: geometric
transforms move the image and every instance mask alike, pixel-level ones touch the image only
(what matterport's imgaug hook did by hand). ``as_augmentation`` turns whatever a user passes
into an object with ``apply(image, masks, rng) -> (image, masks)``, which is all the data
pipeline calls.

Text forms (CLI ``--augment-albumentations``, the training dialog):

    "package.module:attribute"   a Compose / transform, or a function returning one
    "pipeline.json" / ".yaml"    a pipeline saved with ``albumentations.save``
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

import numpy as np

# File suffixes read with albumentations.load, and the data_format each one needs.
_SERIALIZED_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class AlbumentationsAugmentation:
    """An albumentations transform applied to one image and its [H, W, N] instance masks."""

    def __init__(self, transform):
        import albumentations as A

        if not isinstance(transform, A.BaseCompose):
            transform = A.Compose([transform])
        self.transform = transform
        # tf.data loads images on several threads; seeding + calling the shared pipeline must
        # not interleave, or two images would draw from one another's random state.
        self._lock = threading.Lock()

    def apply(self, image, masks, rng=None):
        """(image, masks) augmented alike; ``rng`` seeds the pipeline, so a seeded run repeats.

        ``image`` [H, W, C] (its dtype kept), ``masks`` [H, W, N] bool. The output keeps the
        input's size: the molded image size is fixed by the config.
        """
        rng = np.random.default_rng() if rng is None else rng
        seed = int(rng.integers(0, 2**31 - 1))
        mask_list = [np.ascontiguousarray(masks[:, :, i], dtype=np.uint8)
                     for i in range(masks.shape[-1])]
        with self._lock:
            self.transform.set_random_seed(seed)
            out = self.transform(image=image, masks=mask_list)
        new_image = np.asarray(out["image"])
        if new_image.shape != image.shape:
            raise ValueError(
                f"albumentations augmentation changed the image shape from {image.shape} to "
                f"{new_image.shape}; the molded size is fixed by the config, so use transforms "
                f"that keep the size (e.g. Affine / ShiftScaleRotate instead of a crop, or a crop "
                f"followed by Resize / PadIfNeeded back to {image.shape[:2]})")
        new_masks = np.zeros(masks.shape, dtype=bool)
        for i, mask in enumerate(out.get("masks", [])):
            new_masks[:, :, i] = np.asarray(mask) > 0
        return new_image.astype(image.dtype, copy=False), new_masks

    def to_text(self) -> str:
        return f"albumentations {type(self.transform).__name__}"


def load_albumentations(spec: str) -> AlbumentationsAugmentation:
    """The pipeline named by ``spec``: "module:attribute" or a saved .json / .yaml file."""
    spec = str(spec).strip()
    suffix = Path(spec).suffix.lower()
    if suffix in _SERIALIZED_FORMATS:
        import albumentations as A

        if not Path(spec).is_file():
            raise ValueError(f"albumentations pipeline file {spec!r} does not exist")
        try:
            transform = A.load(spec, data_format=_SERIALIZED_FORMATS[suffix])
        except Exception as error:  # albumentations raises several types for a bad file
            raise ValueError(f"albumentations pipeline file {spec!r} could not be loaded "
                             f"(expected a file written by albumentations.save): {error}") from error
        return AlbumentationsAugmentation(transform)
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"albumentations pipeline {spec!r}: expected 'package.module:attribute' "
                         f"or a .json / .yaml file written by albumentations.save")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"albumentations pipeline {spec!r}: {error}") from error
    # A class or factory function is called; a transform instance (callable too) is used as is.
    if isinstance(target, type) or (callable(target) and not _is_albumentations(target)):
        try:
            target = target()
        except Exception as error:  # the user's factory: say whose call failed
            raise ValueError(f"albumentations pipeline {spec!r}: calling it failed: "
                             f"{type(error).__name__}: {error}") from error
    return as_augmentation(target, what=spec)


def _is_albumentations(value) -> bool:
    module = type(value).__module__ or ""
    return module.split(".")[0] == "albumentations"


def as_augmentation(augmentation, what="augmentation"):
    """What the data pipeline applies: None, an ``Augmentation``-like object with ``apply``, or
    an albumentations transform (wrapped). imgaug augmenters get a TypeError saying how to port."""
    if augmentation is None or isinstance(augmentation, AlbumentationsAugmentation):
        return augmentation
    if _is_albumentations(augmentation):
        return AlbumentationsAugmentation(augmentation)
    module = (type(augmentation).__module__ or "").split(".")[0]
    if module == "imgaug":
        raise TypeError(
            f"{what}: imgaug augmenters are not supported (imgaug is unmaintained and fails "
            f"under numpy 2); write the same pipeline with albumentations, e.g. "
            f"iaa.Fliplr(0.5) -> A.HorizontalFlip(p=0.5), iaa.Affine(rotate=(-10, 10)) -> "
            f"A.Affine(rotate=(-10, 10)), iaa.Multiply((0.8, 1.2)) -> "
            f"A.RandomBrightnessContrast(), iaa.Sometimes(0.5, X) -> X with p=0.5")
    if callable(getattr(augmentation, "apply", None)):
        return augmentation
    raise TypeError(f"{what}: got {type(augmentation).__name__}; expected None, an "
                    f"mrcnn.data.augment.Augmentation, or an albumentations transform / Compose")


def training_augmentation(spec_text, albumentations_spec=None):
    """The augmentation of ``mrcnn train``: ``--augment`` (the project's spec, the default) or
    ``--augment-albumentations`` (a pipeline for ``load_albumentations``), not both."""
    from mrcnn.data.augment import parse_augmentation

    own = parse_augmentation(spec_text)
    if not albumentations_spec:
        return own
    if own is not None:
        raise ValueError(f"--augment {spec_text!r} and --augment-albumentations "
                         f"{albumentations_spec!r} both given; choose one augmentation")
    return load_albumentations(albumentations_spec)


def albumentations_problem(spec) -> str | None:
    """Why ``spec`` cannot be loaded (the message of load_albumentations), or None when it can."""
    try:
        load_albumentations(spec)
    except (ValueError, TypeError) as error:
        return str(error)
    return None
