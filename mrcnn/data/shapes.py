"""ShapesDataset: synthetic squares, circles and triangles (matterport's samples/shapes, skimage).

Each image is a solid random background with 1-4 solid shapes. An image is a small *spec*
(background colour + a list of shapes) kept in image_info; ``load_image`` / ``load_mask`` render
it on demand. Image ``i`` is generated from ``SeedSequence([seed, i])``, so it is the same no
matter how many images are loaded. Shapes are painted in order, so later shapes occlude earlier
ones; the masks say so (no pixel belongs to two instances) and a shape left with fewer than
``MIN_VISIBLE_AREA`` visible pixels is dropped from the spec before anything is drawn.
"""

from __future__ import annotations

import numpy as np
import skimage.draw

from mrcnn.data.dataset import Dataset, export_coco  # noqa: F401  (export_coco re-exported)

SOURCE = "shapes"
CLASS_NAMES = ("square", "circle", "triangle")  # class ids 1, 2, 3
MIN_VISIBLE_AREA = 20  # pixels; smaller remnants of occluded shapes are not instances
MAX_SHAPES = 4
# A shape colour at least this far (sum of |dRGB|) from the background keeps every shape visible.
MIN_COLOUR_CONTRAST = 90


class ShapesDataset(Dataset):
    """Synthetic shapes; call ``load_shapes(count, height, width, seed)`` then ``prepare()``."""

    def load_shapes(self, count, height, width, seed=0):
        """Register ``count`` images of ``height`` x ``width`` pixels generated from ``seed``."""
        if min(height, width) < 16:
            raise ValueError(f"ShapesDataset: images must be at least 16x16, got {height}x{width}")
        for class_id, name in enumerate(CLASS_NAMES, start=1):
            self.add_class(SOURCE, class_id, name)
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            background, shapes = random_image_spec(rng, height, width)
            self.add_image(SOURCE, image_id=index, path=None, width=width, height=height,
                           bg_color=background, shapes=shapes)

    def image_reference(self, image_id):
        """The shape list of the image (there is no file)."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().image_reference(image_id)
        return "shapes: " + ", ".join(shape for shape, _, _ in info["shapes"])

    def load_image(self, image_id):
        """[H, W, 3] uint8 image rendered from the stored spec."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().load_image(image_id)
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:, :] = info["bg_color"]
        for (shape, colour, dims), mask in zip(info["shapes"], self._shape_masks(info)):
            image[mask] = colour
        return image

    def load_mask(self, image_id):
        """([H, W, N] bool visible-part masks, [N] int32 class ids) of the image's shapes."""
        info = self.image_info[image_id]
        if info["source"] != SOURCE:
            return super().load_mask(image_id)
        masks = visible_masks(self._shape_masks(info))
        source_ids = [CLASS_NAMES.index(shape) + 1 for shape, _, _ in info["shapes"]]
        # Internal ids differ from the source ids only when other sources share the dataset.
        if hasattr(self, "class_from_source_map"):
            source_ids = [self.map_source_class_id(f"{SOURCE}.{i}") for i in source_ids]
        class_ids = np.array(source_ids, dtype=np.int32)
        return masks, class_ids

    @staticmethod
    def _shape_masks(info):
        return [draw_shape_mask(shape, dims, info["height"], info["width"])
                for shape, _, dims in info["shapes"]]


def draw_shape_mask(shape, dims, height, width):
    """[H, W] bool mask of one shape; ``dims`` = (center_y, center_x, half_size) in pixels."""
    center_y, center_x, size = dims
    mask = np.zeros([height, width], dtype=bool)
    if shape == "square":
        rows = [center_y - size, center_y - size, center_y + size, center_y + size]
        cols = [center_x - size, center_x + size, center_x + size, center_x - size]
        rr, cc = skimage.draw.polygon(rows, cols, shape=mask.shape)
    elif shape == "circle":
        rr, cc = skimage.draw.disk((center_y, center_x), size, shape=mask.shape)
    elif shape == "triangle":
        # Equilateral, apex up, like matterport's: half base = size / sin(60 deg).
        half_base = size / np.sin(np.radians(60))
        rows = [center_y - size, center_y + size, center_y + size]
        cols = [center_x, center_x - half_base, center_x + half_base]
        rr, cc = skimage.draw.polygon(rows, cols, shape=mask.shape)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {CLASS_NAMES}")
    mask[rr, cc] = True
    return mask


def visible_masks(full_masks):
    """[H, W, N] bool: each of N full [H, W] masks minus the pixels of the masks after it."""
    if not full_masks:
        return np.zeros([0, 0, 0], dtype=bool)
    masks = np.stack(full_masks, axis=-1)
    covered = np.zeros(masks.shape[:2], dtype=bool)
    for i in range(masks.shape[-1] - 1, -1, -1):
        masks[:, :, i] &= ~covered
        covered |= masks[:, :, i]
    return masks


def random_shape(rng, height, width):
    """(shape name, RGB colour tuple, (center_y, center_x, half_size)) drawn from ``rng``."""
    shape = CLASS_NAMES[rng.integers(len(CLASS_NAMES))]
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    min_dim = min(height, width)
    # Sizes scale with the image (matterport's fixed 20 px buffer assumed 128 px images).
    min_size = max(4, min_dim // 16)
    max_size = max(min_size + 1, min_dim // 4)
    size = int(rng.integers(min_size, max_size))
    margin = min_size  # keeps at least part of every shape inside the image
    center_y = int(rng.integers(margin, height - margin))
    center_x = int(rng.integers(margin, width - margin))
    return shape, colour, (center_y, center_x, size)


def random_image_spec(rng, height, width):
    """(background RGB tuple, list of shape specs) with every kept shape visibly large enough."""
    background = tuple(int(c) for c in rng.integers(0, 256, size=3))
    # A lone shape clipped to a sliver in a corner can be dropped; try again so every image has one.
    for _ in range(100):
        shapes = _random_shapes(rng, background, height, width)
        if shapes:
            return background, shapes
    raise RuntimeError(f"ShapesDataset: could not place a visible shape in {height}x{width}")


def _random_shapes(rng, background, height, width):
    shapes = []
    for _ in range(int(rng.integers(1, MAX_SHAPES + 1))):
        shape, colour, dims = random_shape(rng, height, width)
        # Redraw colours too close to the background (bounded, so a seed can never hang).
        for _ in range(20):
            if np.abs(np.subtract(colour, background)).sum() >= MIN_COLOUR_CONTRAST:
                break
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shapes.append((shape, colour, dims))
    return _drop_hidden(shapes, height, width)


def _drop_hidden(shapes, height, width):
    # Walk from the top shape down: a dropped shape occludes nothing, so the visibility of the
    # shapes above the one being checked is already final.
    covered = np.zeros([height, width], dtype=bool)
    kept = []
    for shape, colour, dims in reversed(shapes):
        visible = draw_shape_mask(shape, dims, height, width) & ~covered
        if visible.sum() >= MIN_VISIBLE_AREA:
            kept.append((shape, colour, dims))
            covered |= visible
    return kept[::-1]
