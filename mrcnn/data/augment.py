"""Training augmentation: one small spec applied identically to an image and its instance masks.

Dependency-free (numpy only) replacement for matterport's imgaug hook. Geometric operations
(flips, zoom, crop) move the image and every mask through the *same* coordinate map, so a mask
stays aligned with its object to the pixel and boxes recomputed from the masks
(``boxes.extract_bboxes``) stay exact. Colour operations (brightness, contrast) touch the image
only.

Zoom and crop resample with one axis-aligned affine map per axis: the image bilinearly, each mask
bilinearly then thresholded at 0.5. A hard-edged 0/255 region of the image therefore covers
exactly the pixels where its mask is True (both are "bilinear value >= half").

CLI form (``parse_augmentation``)::

    "hflip"                                   horizontal flip with probability 0.5
    "hflip=0.3,vflip,scale=0.8-1.2,crop=0.1,brightness=0.1,contrast=0.2"
    "none" or ""                              no augmentation (None)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# Probability used by a bare "hflip" / "vflip" token.
DEFAULT_FLIP_PROBABILITY = 0.5
# A resampled mask pixel belongs to the instance when its bilinear value reaches this.
MASK_THRESHOLD = 0.5
# Masks are resampled this many instances at a time to bound the float32 temporaries.
_MASK_CHUNK = 16


@dataclass
class Augmentation:
    """Random geometric + colour augmentation (all off except ``hflip`` by default).

    hflip, vflip: probability of a left-right / up-down flip (0..1).
    scale_range: (low, high) zoom factor drawn uniformly, about the image centre, output size
        unchanged (> 1 zooms in and crops, < 1 zooms out and pads with zeros); None = off.
    crop: largest fraction (0..0.5) cut from each side independently, the rest stretched back to
        the full size; 0 or None = off.
    brightness: largest shift as a fraction of 255, drawn uniformly in [-b, b].
    contrast: largest relative change of contrast about the image mean, factor in [1-c, 1+c].
    """

    hflip: float = DEFAULT_FLIP_PROBABILITY
    vflip: float = 0.0
    scale_range: tuple[float, float] | None = None
    crop: float | None = None
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self):
        for name in ("hflip", "vflip"):
            value = float(getattr(self, name))
            _check(0.0 <= value <= 1.0, name, f"a probability in 0..1, got {value}")
            setattr(self, name, value)
        if self.scale_range is not None:
            values = tuple(float(v) for v in np.ravel(self.scale_range))
            _check(len(values) == 2 and 0.0 < values[0] <= values[1], "scale_range",
                   f"(low, high) with 0 < low <= high, got {self.scale_range!r}")
            self.scale_range = values
        if self.crop is not None:
            self.crop = float(self.crop)
            _check(0.0 <= self.crop < 0.5, "crop", f"a fraction in [0, 0.5), got {self.crop}")
        self.brightness = float(self.brightness)
        _check(0.0 <= self.brightness <= 1.0, "brightness",
               f"a fraction of 255 in 0..1, got {self.brightness}")
        self.contrast = float(self.contrast)
        _check(0.0 <= self.contrast < 1.0, "contrast", f"a fraction in [0, 1), got {self.contrast}")

    # -- applying --------------------------------------------------------------------------

    def apply(self, image, masks, rng=None):
        """Augment ``image`` [H, W, C] and ``masks`` [H, W, N] the same way; same shapes and dtypes.

        ``rng`` (np.random.Generator) draws every random choice, so a seeded one repeats exactly.
        """
        rng = np.random.default_rng() if rng is None else rng
        image, masks = np.asarray(image), np.asarray(masks)
        if image.shape[:2] != masks.shape[:2]:
            raise ValueError(f"Augmentation.apply: image is {image.shape[:2]} but masks are "
                             f"{masks.shape[:2]}; expected the same height and width")
        if self.hflip and rng.random() < self.hflip:
            image, masks = image[:, ::-1], masks[:, ::-1]
        if self.vflip and rng.random() < self.vflip:
            image, masks = image[::-1], masks[::-1]
        maps = self._draw_resample_maps(image.shape[:2], rng)
        if maps is not None:
            image = _resample_image(image, *maps)
            masks = _resample_masks(masks, *maps)
        image = self._adjust_colour(image, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(masks)

    def _draw_resample_maps(self, shape, rng):
        """Per-axis source windows for zoom + crop as (rows, cols) interpolation maps, or None."""
        crop = self.crop or 0.0
        zoom = 1.0
        if self.scale_range is not None:
            zoom = float(rng.uniform(*self.scale_range))
        cuts = rng.uniform(0.0, crop, size=4) if crop > 0 else np.zeros(4)
        if zoom == 1.0 and not cuts.any():
            return None
        maps = []
        for axis, (cut_start, cut_end) in enumerate((cuts[:2], cuts[2:])):
            size = shape[axis]
            start, end = cut_start * size, size - cut_end * size  # kept window, pixel edges
            middle, half = 0.5 * (start + end), 0.5 * (end - start) / zoom
            maps.append(_linear_map(size, middle - half, middle + half))
        return maps

    def _adjust_colour(self, image, rng):
        """Brightness shift and contrast stretch of the image (masks are never touched)."""
        if not (self.brightness or self.contrast):
            return image
        shift = rng.uniform(-self.brightness, self.brightness) * 255.0 if self.brightness else 0.0
        factor = 1.0 + rng.uniform(-self.contrast, self.contrast) if self.contrast else 1.0
        values = image.astype(np.float32)
        mean = values.mean()
        values = (values - mean) * np.float32(factor) + np.float32(mean + shift)
        return _cast_like(values, image.dtype)

    # -- (de)serialising -------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict (scale_range as a list); ``from_dict`` reverses it."""
        values = dataclasses.asdict(self)
        if values["scale_range"] is not None:
            values["scale_range"] = list(values["scale_range"])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "Augmentation":
        """Augmentation from ``to_dict`` output; unknown keys raise ValueError naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Augmentation.from_dict: unknown key(s) {unknown}; "
                             f"expected some of {sorted(known)}")
        return cls(**values)

    def to_text(self) -> str:
        """The CLI string for this spec (parse_augmentation reads it back); "none" if all off."""
        tokens = []
        for name in ("hflip", "vflip"):
            value = getattr(self, name)
            if value:
                tokens.append(name if value == DEFAULT_FLIP_PROBABILITY else f"{name}={value:g}")
        if self.scale_range is not None:
            tokens.append(f"scale={self.scale_range[0]:g}-{self.scale_range[1]:g}")
        for name in ("crop", "brightness", "contrast"):
            if getattr(self, name):
                tokens.append(f"{name}={getattr(self, name):g}")
        return ",".join(tokens) or "none"


def parse_augmentation(text) -> Augmentation | None:
    """Augmentation from a CLI string like "hflip,scale=0.8-1.2,brightness=0.1".

    "" / "none" give None. Options not named are off. A bad token raises ValueError naming it.
    """
    text = (text or "").strip()
    if text.lower() in ("", "none", "off"):
        return None
    values = {"hflip": 0.0}
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        name, _, argument = (part.strip() for part in token.partition("="))
        name = name.lower()
        try:
            if name in ("hflip", "vflip"):
                values[name] = float(argument) if argument else DEFAULT_FLIP_PROBABILITY
            elif name == "scale":
                low, separator, high = argument.replace(":", "-").partition("-")
                if not separator:
                    raise ValueError("expected scale=LOW-HIGH, e.g. scale=0.8-1.2")
                values["scale_range"] = (float(low), float(high))
            elif name in ("crop", "brightness", "contrast"):
                if not argument:
                    raise ValueError(f"expected {name}=NUMBER, e.g. {name}=0.1")
                values[name] = float(argument)
            else:
                raise ValueError("unknown option; expected hflip, vflip, scale, crop, "
                                 "brightness or contrast")
        except ValueError as error:
            raise ValueError(f"augmentation {text!r}: bad token {token!r}: {error}") from None
    try:
        return Augmentation(**values)
    except ValueError as error:
        raise ValueError(f"augmentation {text!r}: {error}") from None


# ---------------------------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------------------------


def _linear_map(size, source_start, source_end):
    """1-D bilinear map of ``size`` output pixels onto the source interval [start, end) (pixel
    edges): (low index [size], high index [size], low weight [size], high weight [size]).

    Samples outside the source contribute zero (constant padding)."""
    centres = source_start + (np.arange(size) + 0.5) * ((source_end - source_start) / size) - 0.5
    low = np.floor(centres).astype(np.int64)
    high_weight = (centres - low).astype(np.float32)
    low_weight = np.float32(1.0) - high_weight
    high = low + 1
    low_weight[(low < 0) | (low >= size)] = 0.0
    high_weight[(high < 0) | (high >= size)] = 0.0
    return np.clip(low, 0, size - 1), np.clip(high, 0, size - 1), low_weight, high_weight


def _apply_map(values, linear_map, axis):
    """Bilinear resample of float32 ``values`` along ``axis`` with a _linear_map."""
    low, high, low_weight, high_weight = linear_map
    shape = [1] * values.ndim
    shape[axis] = -1
    return (np.take(values, low, axis=axis) * low_weight.reshape(shape)
            + np.take(values, high, axis=axis) * high_weight.reshape(shape))


def _resample_image(image, rows, cols):
    values = _apply_map(_apply_map(image.astype(np.float32), rows, 0), cols, 1)
    return _cast_like(values, image.dtype)


def _resample_masks(masks, rows, cols):
    out = np.zeros(masks.shape, dtype=masks.dtype)
    for start in range(0, masks.shape[-1], _MASK_CHUNK):
        chunk = masks[:, :, start:start + _MASK_CHUNK].astype(np.float32)
        chunk = _apply_map(_apply_map(chunk, rows, 0), cols, 1)
        out[:, :, start:start + _MASK_CHUNK] = chunk >= MASK_THRESHOLD
    return out


def _cast_like(values, dtype):
    """float32 values back to ``dtype``: integers rounded and clipped to their range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _check(ok, field, expected):
    if not ok:
        raise ValueError(f"Augmentation.{field}: expected {expected}")
