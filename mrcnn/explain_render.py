"""Saliency maps as pictures: a colour-mapped map blended over its image (numpy + matplotlib).

No TensorFlow and no Qt, so the CLI and the viewer's export share it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLORMAP = "jet"            # blue (0) -> red (1): the usual saliency palette
DEFAULT_OPACITY = 0.5
BOX_COLOUR = (255, 255, 255)


def colorize(saliency, colormap=COLORMAP) -> np.ndarray:
    """[H, W, 3] uint8 colours of a map [H, W] in [0, 1] (values outside are clipped)."""
    from matplotlib import colormaps

    values = np.clip(np.nan_to_num(np.asarray(saliency, np.float64)), 0.0, 1.0)
    return (colormaps[colormap](values)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(image, saliency, opacity=DEFAULT_OPACITY, box=None) -> np.ndarray:
    """[H, W, 3] uint8: ``saliency`` [H, W] coloured and blended over ``image`` [H, W, 3].

    Each pixel's blend weight is ``opacity * saliency`` so unimportant pixels keep the image;
    ``box`` ``[y1, x1, y2, x2]`` (original pixels) is outlined in white.
    """
    image = np.asarray(image)
    if image.shape[:2] != np.shape(saliency):
        raise ValueError(f"overlay: map of shape {np.shape(saliency)} does not match image of "
                         f"shape {image.shape[:2]}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"overlay: opacity must be in [0, 1], got {opacity}")
    rgb = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    weight = opacity * np.clip(np.asarray(saliency, np.float64), 0.0, 1.0)[..., None]
    blended = (1.0 - weight) * rgb.astype(np.float64) + weight * colorize(saliency)
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    if box is not None:
        _outline(out, box)
    return out


def _outline(canvas, box) -> None:
    """Draw a 1-pixel rectangle ``[y1, x1, y2, x2]`` (y2, x2 exclusive) into ``canvas``."""
    height, width = canvas.shape[:2]
    y1, x1, y2, x2 = (int(round(float(v))) for v in box)
    y1, x1 = max(y1, 0), max(x1, 0)
    y2, x2 = min(y2, height) - 1, min(x2, width) - 1
    if y2 < y1 or x2 < x1:
        return
    canvas[y1, x1:x2 + 1] = canvas[y2, x1:x2 + 1] = BOX_COLOUR
    canvas[y1:y2 + 1, x1] = canvas[y1:y2 + 1, x2] = BOX_COLOUR


def save_png(path, pixels) -> Path:
    """Write [H, W, 3] uint8 ``pixels`` as a PNG file (parent folders created)."""
    from matplotlib.image import imsave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.asarray(pixels, np.uint8), format="png")
    return path
