"""Where detection labels go so they do not pile up (Qt-free).

Each label tries, in order: above its box's top-left corner, inside the top-left corner, below
the bottom-left corner, inside the bottom-left corner, then the same four at the right edge. It
takes the first spot that lies inside the image and overlaps no label placed before it; labels
are placed in the order given (best score first), so a label that finds no free spot is the
least important one and is hidden (zooming in makes room: the canvas re-places on zoom).
Sizes and positions are original-image pixels; a position is the label's top-left corner.
"""

from __future__ import annotations


def candidate_spots(box, size) -> list[tuple[float, float]]:
    """Top-left corners to try for a label of ``size`` (width, height) at ``box`` [y1, x1, y2, x2]."""
    y1, x1, y2, x2 = (float(v) for v in box)
    width, height = (float(v) for v in size)
    spots = []
    for x in (x1, x2 - width):
        spots += [(x, y1 - height), (x, y1), (x, y2), (x, y2 - height)]
    return spots


def _overlaps(a, b) -> bool:
    """Whether rectangles ``a``, ``b`` (x, y, width, height) overlap (touching is not)."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_labels(boxes, sizes, bounds) -> list[tuple[float, float] | None]:
    """Top-left corner of each label (or None: no free spot), labels ``sizes`` [(width, height)]
    of ``boxes`` [N, 4], inside an image of ``bounds`` (height, width)."""
    height, width = (float(v) for v in bounds)
    placed: list[tuple] = []
    out: list[tuple[float, float] | None] = []
    for box, size in zip(boxes, sizes):
        spot = None
        for x, y in candidate_spots(box, size):
            rect = (x, y, float(size[0]), float(size[1]))
            inside = x >= 0 and y >= 0 and x + rect[2] <= width and y + rect[3] <= height
            if inside and not any(_overlaps(rect, other) for other in placed):
                spot = (x, y)
                placed.append(rect)
                break
        out.append(spot)
    return out
