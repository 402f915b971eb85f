"""Image and mask preparation with matterport's semantics (numpy + scikit-image).

Resize/pad an image to the model's input, mold it (subtract the mean pixel), keep image meta so
detections map back, shrink/expand instance masks to and from mini-masks, and turn the model's
raw detections and 28x28 masks into original-image pixel boxes and full-size masks.

Boxes are ``[y1, x1, y2, x2]``; pixel boxes have ``(y2, x2)`` one past the last pixel.
Image meta layout (IMAGE_META_SIZE = 12 + NUM_CLASSES values)::

    [image_id, original_image_shape(3), image_shape(3), window(4), scale, active_class_ids(C)]
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.ndimage
import skimage.transform

from mrcnn.boxes import denorm_boxes, norm_boxes

RESIZE_MODES = ("none", "square", "pad64", "crop")
# Mask probability at or above which a pixel belongs to the instance (matterport's value).
MASK_THRESHOLD = 0.5
# Slices of the meta vector: name -> (start, stop); active_class_ids runs to the end.
_META_FIELDS = {
    "image_id": (0, 1),
    "original_image_shape": (1, 4),
    "image_shape": (4, 7),
    "window": (7, 11),
    "scale": (11, 12),
    "active_class_ids": (12, None),
}


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """skimage resize with matterport's defaults (its utils.resize): constant mode, no
    anti-aliasing, so masks and images resize to the same values as there."""
    return skimage.transform.resize(image, output_shape, order=order, mode=mode, cval=cval,
                                    clip=clip, preserve_range=preserve_range,
                                    anti_aliasing=anti_aliasing,
                                    anti_aliasing_sigma=anti_aliasing_sigma)


_resize = resize  # the name this module's functions use


# ---------------------------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------------------------


def to_model_channels(image, channels=3, source="image") -> np.ndarray:
    """[H, W, channels] uint8 or float32 (0..255) image from grayscale, RGB(A), 8/16-bit or float input.

    Grayscale ([H, W] or [H, W, 1]) is repeated to RGB, gray + alpha ([H, W, 2]) and RGBA lose
    their alpha, uint16 is divided by
    257 (65535 -> 255, float32), floats in 0..1 are scaled to 0..255 (float32). Anything else
    raises ValueError naming ``source``, what was received and what was expected.
    """
    image = np.asarray(image)
    expected = (f"expected an [H, W], [H, W, 1], [H, W, 2], [H, W, 3] or [H, W, 4] numeric image "
                f"(model takes {channels} channel(s))")
    received = f"got shape {image.shape} dtype {image.dtype}"
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"{source}: non-numeric image, {received}; {expected}")
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"{source}: {received}; {expected}")
    if image.ndim == 2:
        image = image[:, :, None]
    count = image.shape[-1]
    if count == 2 and channels in (1, 3):
        # Gray + alpha (PNG colour type 4): the first channel is the luminance; alpha is dropped
        # (as for RGBA), then the gray goes the usual way.
        image, count = image[:, :, :1], 1
    if count != channels:
        if count == 1 and channels == 3:
            image = np.repeat(image, 3, axis=-1)
        elif count == 4 and channels == 3:
            image = image[:, :, :3]
        else:
            raise ValueError(f"{source}: {count}-channel image, {received}; {expected}")
    return _to_0_255(image, source, received)


def _to_0_255(image, source, received):
    """Map the dtype's value range onto 0..255 (uint8 kept, everything else float32)."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(257.0)
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{source}: image has NaN or infinite values, {received}")
        image = image.astype(np.float32)
        if image.min() >= 0.0 and image.max() <= 1.0:
            image = image * np.float32(255.0)
        return image
    # Other integer types (int32 from some readers, int64 from numpy defaults) are accepted when
    # they already hold 8-bit values; anything wider has an unknown range.
    if image.min() < 0 or image.max() > 255:
        raise ValueError(f"{source}: {received} with values {image.min()}..{image.max()}; "
                         f"expected uint8, uint16, float, or integers in 0..255")
    return image.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# resizing images and masks
# ---------------------------------------------------------------------------------------------


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None):
    """Resize/pad ``image`` [H, W, C] as matterport's utils.resize_image.

    Returns ``(image, window, scale, padding, crop)``: window (y1, x1, y2, x2) of the image
    inside the padded result (pixels), scale factor, padding ``[(top, bottom), (left, right),
    (0, 0)]``, and crop (y, x, h, w) in crop mode else None. Dtype is preserved. ``rng``
    (np.random.Generator) picks the crop offset in crop mode.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize_image: unknown mode {mode!r}; expected one of {RESIZE_MODES}")
    dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop

    if min_dim:
        scale = max(1, min_dim / min(h, w))  # scale up only
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square" and round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    if scale != 1:
        image = _resize(image, (round(h * scale), round(w * scale)), preserve_range=True)

    h, w = image.shape[:2]
    if mode == "square":
        top, left = (max_dim - h) // 2, (max_dim - w) // 2
        padding = [(top, max_dim - h - top), (left, max_dim - w - left), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
        window = (top, left, h + top, w + left)
    elif mode == "pad64":
        if min_dim and min_dim % 64:
            raise ValueError(f"resize_image: pad64 mode needs min_dim divisible by 64, got {min_dim}")
        pad_h, pad_w = (-h) % 64, (-w) % 64
        top, left = pad_h // 2, pad_w // 2
        padding = [(top, pad_h - top), (left, pad_w - left), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
        window = (top, left, h + top, w + left)
    else:  # crop
        rng = np.random.default_rng() if rng is None else rng
        y = int(rng.integers(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(dtype), window, scale, padding, crop


def resize_mask(mask, scale, padding, crop=None) -> np.ndarray:
    """[H, W, N] mask scaled (nearest) then padded or cropped like its image by resize_image."""
    dtype = mask.dtype
    # scipy's zoom (what matterport uses) does not take bool; uint8 round-trips exactly.
    source = mask.astype(np.uint8) if dtype == bool else mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = scipy.ndimage.zoom(source, zoom=[scale, scale, 1], order=0).astype(dtype)
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


def minimize_mask(bbox, mask, mini_shape) -> np.ndarray:
    """[h, w, N] bool mini-masks: each of the [H, W, N] masks cropped to its pixel ``bbox`` [N, 4]
    and resized to ``mini_shape`` (h, w)."""
    mini_shape = tuple(mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        cropped = mask[y1:y2, x1:x2, i].astype(np.float32)
        if cropped.size == 0:
            raise ValueError(f"minimize_mask: instance {i} has a box of zero area {bbox[i][:4]}")
        mini_mask[:, :, i] = np.around(_resize(cropped, mini_shape)) > 0
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape) -> np.ndarray:
    """[H, W, N] bool masks for ``image_shape``: each mini-mask resized into its pixel ``bbox``."""
    count = mini_mask.shape[-1]
    mask = np.zeros(tuple(image_shape[:2]) + (count,), dtype=bool)
    for i in range(count):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        if y2 <= y1 or x2 <= x1:
            continue
        m = _resize(mini_mask[:, :, i].astype(np.float32), (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = np.around(m) > 0
    return mask


def unmold_mask(mask, bbox, image_shape) -> np.ndarray:
    """[H, W] bool full-size mask: the [h, w] float ``mask`` resized into pixel ``bbox``
    (y1, x1, y2, x2) and thresholded at 0.5; all False for a box of zero height or width."""
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    _paste_mask(full_mask, mask, bbox)
    return full_mask


def _linear_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] 1-D linear-interpolation matrix matching skimage's resize(order=1,
    mode="constant", cval=0, anti_aliasing=False): pixel-centre aligned, zeros outside."""
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    low = np.floor(source).astype(np.int64)
    frac = source - low
    weights = np.zeros((out_size, in_size + 2))
    # Columns shifted by one so that indices -1 and in_size (outside: cval 0) can be dropped.
    rows = np.arange(out_size)
    np.add.at(weights, (rows, np.clip(low + 1, 0, in_size + 1)), 1.0 - frac)
    np.add.at(weights, (rows, np.clip(low + 2, 0, in_size + 1)), frac)
    return weights[:, 1:-1]


def _bilinear_resize(mask, out_h: int, out_w: int) -> np.ndarray:
    """[out_h, out_w] bilinear resize of a 2-D mask as two small matrix products.

    Same values as skimage's resize with matterport's settings (up to float rounding) but about
    50x faster on 28x28 masks, which matters when unmolding 100 detections per image.
    """
    rows = _linear_weights(mask.shape[0], out_h)
    cols = _linear_weights(mask.shape[1], out_w)
    return rows @ mask.astype(np.float64) @ cols.T


def _paste_mask(canvas, mask, bbox) -> None:
    """Resize ``mask`` to ``bbox`` and OR it into the 2-D bool ``canvas``, cropping at its edges."""
    y1, x1, y2, x2 = (int(v) for v in bbox[:4])
    if y2 <= y1 or x2 <= x1:
        return
    box_mask = _bilinear_resize(np.asarray(mask, dtype=np.float32), y2 - y1, x2 - x1)
    box_mask = box_mask >= MASK_THRESHOLD
    # Boxes can poke out of the image by a pixel after rounding; keep only the visible part.
    height, width = canvas.shape
    cy1, cx1, cy2, cx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
    if cy2 <= cy1 or cx2 <= cx1:
        return
    canvas[cy1:cy2, cx1:cx2] = box_mask[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]


# ---------------------------------------------------------------------------------------------
# molding and meta
# ---------------------------------------------------------------------------------------------


def mold_image(images, config) -> np.ndarray:
    """float32 images minus config.MEAN_PIXEL (any leading shape, channels last)."""
    return np.asarray(images).astype(np.float32) - np.asarray(config.MEAN_PIXEL, dtype=np.float32)


def unmold_image(normalized_images, config) -> np.ndarray:
    """uint8 images back from molded ones (adds config.MEAN_PIXEL).

    Rounds and clips instead of matterport's plain cast, which truncates 199.9999 to 199.
    """
    restored = np.asarray(normalized_images, dtype=np.float64) + np.asarray(config.MEAN_PIXEL)
    return np.clip(np.round(restored), 0, 255).astype(np.uint8)


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids) -> np.ndarray:
    """[12 + NUM_CLASSES] float64 meta vector (layout in the module docstring)."""
    return np.array([image_id] + list(original_image_shape) + list(image_shape) + list(window)
                    + [scale] + list(active_class_ids), dtype=np.float64)


def parse_image_meta(meta) -> dict:
    """Dict of numpy arrays from [META] or [B, META] meta (batch axis kept if given)."""
    meta = np.asarray(meta)
    single = meta.ndim == 1
    batch = meta[None] if single else meta
    out = {}
    for name, (start, stop) in _META_FIELDS.items():
        values = batch[:, start:stop]
        if name in ("image_id", "scale"):
            values = values[:, 0]
        dtype = np.float32 if name == "scale" else np.int32
        values = values.astype(dtype)
        out[name] = values[0] if single else values
    return out


def parse_image_meta_tf(meta) -> dict:
    """Dict of float32 tensors from a batched [B, META] meta tensor (graph version)."""
    import tensorflow as tf

    meta = tf.cast(meta, tf.float32)
    out = {}
    for name, (start, stop) in _META_FIELDS.items():
        values = meta[:, start:stop] if stop is not None else meta[:, start:]
        out[name] = values[:, 0] if name in ("image_id", "scale") else values
    return out


def mold_inputs(images, config):
    """Prepare a list of images for the model.

    Returns ``(molded [B, H, W, C] float32, image_metas [B, META] float64, windows [B, 4] int32)``.
    """
    molded, metas, windows = [], [], []
    for index, image in enumerate(images):
        image = to_model_channels(image, config.IMAGE_CHANNEL_COUNT, source=f"image {index}")
        resized, window, scale, _, _ = resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
        molded_image = mold_image(resized, config)
        metas.append(compose_image_meta(0, image.shape, molded_image.shape, window, scale,
                                        np.ones([config.NUM_CLASSES], dtype=np.int32)))
        molded.append(molded_image)
        windows.append(window)
    shapes = [m.shape for m in molded]
    if len(set(shapes)) > 1:
        groups = {}
        for index, shape in enumerate(shapes):
            groups.setdefault(shape, []).append(index)
        detail = "; ".join(f"images {ix} -> {shape}" for shape, ix in groups.items())
        raise ValueError(
            f"mold_inputs: images resize to different shapes in IMAGE_RESIZE_MODE "
            f"{config.IMAGE_RESIZE_MODE!r} ({detail}); batch images of one size or use 'square'")
    return np.stack(molded), np.stack(metas), np.array(windows, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# detections back to the original image
# ---------------------------------------------------------------------------------------------


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """Detections of one image -> original-image results (matterport's unmold_detections).

    ``detections`` [MAX, 6] normalized (y1, x1, y2, x2, class_id, score), zero-padded;
    ``mrcnn_mask`` [MAX, h, w, NUM_CLASSES]; ``window`` pixel (y1, x1, y2, x2) of the image in
    the molded ``image_shape``. Returns ``(boxes int32 [N, 4] pixels, class_ids int32 [N],
    scores float32 [N], masks bool [H, W, N], kept int32 [N] detection row indices)``.
    """
    detections = np.asarray(detections)
    zero_rows = np.where(detections[:, 4] == 0)[0]
    count = int(zero_rows[0]) if zero_rows.size else detections.shape[0]
    rows = np.arange(count)
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5].astype(np.float32)
    masks = np.asarray(mrcnn_mask)[rows, :, :, class_ids]  # (N, h, w)

    # Normalized coordinates of the padded image -> of the window -> original-image pixels.
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window, dtype=np.float32), image_shape[:2])
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = denorm_boxes((detections[:count, :4] - shift) / scale, original_image_shape[:2])

    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[0]
    boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]

    height, width = int(original_image_shape[0]), int(original_image_shape[1])
    # (N, H, W) so each paste writes a contiguous plane; moved to (H, W, N) at the end.
    full_masks = np.zeros((len(keep), height, width), dtype=bool)
    for i in range(len(keep)):
        _paste_mask(full_masks[i], masks[i], boxes[i])
    return (boxes.astype(np.int32), class_ids, scores, np.moveaxis(full_masks, 0, -1),
            rows[keep].astype(np.int32))
