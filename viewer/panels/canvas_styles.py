"""Colours and line styles of the canvas overlays, Qt-free (pen styles are names).

One table so the canvas, its legends and the exported captions name the same colours. Colours
are chosen to stay visible over photos and over the cyan / grey synthetic shapes: the three RPN
match states are green / red / yellow (a traffic light, not grey on cyan), ground truth is
white, the selection magenta, and each link of its lineage has a colour of its own.
"""

from __future__ import annotations

import colorsys

# style name -> (rgba, width, pen style name, z)
STYLES = {
    "faint": ((210, 210, 210, 90), 1, "solid", 3),
    "grid": ((235, 235, 235, 70), 1, "solid", 3),
    "anchor": ((255, 200, 60, 170), 1, "solid", 4),
    # Most anchors are neutral (not sampled for the RPN loss): visible yet thin and dotted,
    # so the few positives on top still stand out.
    "neutral": ((255, 235, 0, 190), 1, "dot", 4),
    "negative": ((255, 60, 60, 200), 1, "solid", 4),
    "positive": ((60, 255, 90, 255), 2, "solid", 5),
    "dotted": ((255, 200, 60, 200), 1, "dot", 5),
    "dashed": ((80, 200, 255, 220), 1, "dash", 6),
    "solid": ((60, 255, 140, 210), 1, "solid", 7),
    "gt": ((255, 255, 255, 230), 1.5, "dash", 8),
    "window": ((255, 255, 0, 220), 1.5, "dashdot", 8),
    # The selection's lineage: one colour per stage it passed through (see canvas_selection).
    "link:anchors": ((255, 170, 0, 255), 2, "dot", 19),
    "link:proposals/pre_nms": ((0, 200, 255, 255), 2, "dash", 19),
    "link:proposals/post_nms": ((0, 255, 255, 255), 2.5, "solid", 20),
    "link:detections/pre_nms": ((150, 255, 150, 255), 2, "dash", 19),
    "link:detections": ((190, 150, 255, 255), 2.5, "solid", 20),
    "link:refined": ((255, 90, 90, 255), 2.5, "solid", 20),
    "selected": ((255, 0, 255, 255), 3.5, "solid", 21),
}
# Styles switched off by the "Boxes" overlay (the selection and ground truth stay).
BOX_STYLES = ("faint", "grid", "anchor", "neutral", "negative", "positive", "dotted", "dashed",
              "solid")
# Fixed colours of the first classes; white is left out (it is ground truth's colour).
CLASS_COLOURS = [(255, 99, 71), (60, 220, 120), (255, 215, 0), (80, 160, 255), (255, 105, 200),
                 (0, 230, 230), (255, 160, 40), (170, 120, 255), (190, 240, 60),
                 (240, 80, 140)]


def class_colour(class_id: int) -> tuple:
    """RGB of class ``class_id`` (1-based): the fixed list, then evenly spread hues (golden
    ratio steps) so no two of the first hundreds of classes share a colour."""
    class_id = int(class_id)
    if 1 <= class_id <= len(CLASS_COLOURS):
        return CLASS_COLOURS[class_id - 1]
    hue = (class_id * 0.6180339887) % 1.0
    value = 1.0 if class_id % 2 else 0.8
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, 0.75, value))


def rgb_of(style: str) -> tuple:
    """RGB of box style ``style`` (a STYLES key or "class:<id>")."""
    if style.startswith("class:"):
        return class_colour(int(style[6:]))
    return tuple(STYLES[style][0][:3])


def css(rgb) -> str:
    """``rgb(r, g, b)`` for Qt rich text."""
    return "rgb({}, {}, {})".format(*(int(v) for v in rgb[:3]))
