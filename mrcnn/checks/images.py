"""Image shapes the model can use: a 1x1 or 1x5000 image is refused, not silently resized to
nothing (resizing 1x5000 to a 1024 px long side leaves a 0 px short side)."""

from __future__ import annotations

from mrcnn.checks.errors import BadInputError
from mrcnn.errors import ImageFileError

# Smallest side, pixels: below it a feature map of stride 64 (P6) has no cell for the image.
MIN_IMAGE_SIDE = 8
# Largest long:short side ratio: beyond it the short side shrinks below 16 px at 1024 px.
MAX_ASPECT_RATIO = 64


class ImageShapeError(ImageFileError, BadInputError):
    """An image is too small or too elongated to detect anything in."""


def image_shape_problem(height: int, width: int) -> str | None:
    """What is wrong with an image of ``height`` x ``width`` pixels, or None."""
    if min(height, width) < MIN_IMAGE_SIDE:
        return (f"is {height}x{width} pixels (height x width); expected at least "
                f"{MIN_IMAGE_SIDE} px on each side")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        return (f"is {height}x{width} pixels, a {ratio:.0f}:1 aspect ratio; expected at most "
                f"{MAX_ASPECT_RATIO}:1 (resizing would leave a side of a few pixels)")
    return None


def check_image_shape(image, path) -> None:
    """ImageShapeError naming ``path`` when ``image`` [H, W, C] is too small or elongated."""
    problem = image_shape_problem(int(image.shape[0]), int(image.shape[1]))
    if problem:
        raise ImageShapeError(f"image {path} {problem}")
