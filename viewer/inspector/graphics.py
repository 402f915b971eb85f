"""Drawing helpers shared by the inspector's tabs: one image view with batched overlays.

Every set of boxes in one style is ONE ``pg.PlotCurveItem`` with ``connect="pairs"`` (four
segments per box), so thousands of anchors cost one item; masks are ONE RGBA image composed in
numpy; labels come from a small reused pool of ``pg.TextItem``. Boxes are ``[y1, x1, y2, x2]``
pixels; an image pixel (r, c) covers [c, c+1) x [r, r+1), so a box outlines its pixels exactly.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt

from viewer.panels.canvas import class_colour

BACKGROUND = (30, 30, 34)
TEXT_COLOUR = (220, 220, 225)
MASK_ALPHA = 128          # 0..255 opacity of a mask tint
CROWD_COLOUR = (200, 200, 200)
HALO_COLOUR = (0, 0, 0, 150)
SOLID, DASH, DOT = Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine


def instance_colour(class_id: int) -> tuple:
    """RGB of an instance: its class colour (the main canvas's), grey for crowd regions."""
    return CROWD_COLOUR if int(class_id) < 0 else class_colour(int(class_id))


def box_segments(boxes) -> tuple[np.ndarray, np.ndarray]:
    """x, y [8N] of the outlines of ``boxes`` [N, 4] as segment pairs (``connect="pairs"``)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    y1, x1, y2, x2 = boxes.T
    # Four segments per box: top, right, bottom, left; each segment is two points.
    x = np.stack([x1, x2, x2, x2, x2, x1, x1, x1], axis=1).ravel()
    y = np.stack([y1, y1, y1, y2, y2, y2, y2, y1], axis=1).ravel()
    return x, y


def mask_overlay(masks, class_ids, alpha: int = MASK_ALPHA) -> np.ndarray | None:
    """uint8 [H, W, 4] tint of [H, W, N] bool masks by class (later instances on top), or None."""
    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or masks.shape[-1] == 0:
        return None
    rgba = np.zeros(masks.shape[:2] + (4,), np.uint8)
    for index, class_id in enumerate(np.asarray(class_ids).reshape(-1)):
        rgba[masks[:, :, index]] = instance_colour(class_id) + (alpha,)
    return rgba


def make_view() -> pg.GraphicsLayoutWidget:
    """A dark GraphicsLayoutWidget, the base of every inspector picture (and its PNG export)."""
    view = pg.GraphicsLayoutWidget()
    view.setBackground(BACKGROUND)
    view.ci.setContentsMargins(2, 2, 2, 2)
    return view


class ImageBox:
    """One image in a ViewBox (aspect locked, y down) with mask tint, box curves and labels."""

    def __init__(self, viewbox: pg.ViewBox):
        self.vb = viewbox
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setZValue(0)
        self.mask_item.setZValue(1)
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.mask_item)
        self.curves: dict[str, pg.PlotCurveItem] = {}
        self.labels: list[pg.TextItem] = []
        self.shape = (0, 0)

    def set_image(self, rgb) -> None:
        """Show uint8 [H, W, 3] (or [H, W]) ``rgb``; range follows when the size changes."""
        rgb = np.asarray(rgb)
        self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.image_item.setRect(QRectF(0, 0, rgb.shape[1], rgb.shape[0]))
        if rgb.shape[:2] != self.shape:
            self.shape = rgb.shape[:2]
            self.frame()

    def set_masks(self, rgba) -> None:
        """Show uint8 [H, W, 4] ``rgba`` over the image; None hides the tint."""
        if rgba is None:
            self.mask_item.setVisible(False)
            return
        self.mask_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.mask_item.setRect(QRectF(0, 0, rgba.shape[1], rgba.shape[0]))
        self.mask_item.setVisible(True)

    def set_boxes(self, key: str, boxes, colour, width: float = 1.5, style=SOLID,
                  z: float = 5) -> pg.PlotCurveItem:
        """Outline ``boxes`` [K, 4] as the one curve named ``key`` (created on first use)."""
        curve = self.curves.get(key)
        if curve is None:
            curve = pg.PlotCurveItem(connect="pairs", antialias=False)
            self.vb.addItem(curve)
            self.curves[key] = curve
        curve.setPen(pg.mkPen(colour, width=width, style=style))
        curve.setZValue(z)
        curve.setData(*box_segments(boxes), connect="pairs")
        curve.setVisible(True)
        return curve

    def hide_boxes(self, keep=()) -> None:
        """Empty every box curve whose key is not in ``keep``."""
        for key, curve in self.curves.items():
            if key not in keep:
                curve.setData([], [])
                curve.setVisible(False)

    def box_count(self, key: str) -> int:
        """Boxes currently drawn by curve ``key`` (8 points per box)."""
        curve = self.curves.get(key)
        if curve is None or not curve.isVisible() or curve.xData is None:
            return 0
        return len(curve.xData) // 8

    def set_labels(self, labels) -> None:
        """Show ``labels`` [(x, y, text, rgb)] above (x, y); extra pool items are hidden."""
        while len(self.labels) < len(labels):
            item = pg.TextItem(anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
            item.setZValue(30)
            self.vb.addItem(item)
            self.labels.append(item)
        height = self.shape[0] or 1
        for item, (x, y, text, rgb) in zip(self.labels, labels):
            item.setText(text, color=rgb)
            # Inside the box when "above" would leave the image at the top.
            item.setAnchor((0, 0) if y < 0.06 * height else (0, 1))
            item.setPos(float(x), float(y))
            item.setVisible(True)
        for item in self.labels[len(labels):]:
            item.setVisible(False)

    def clear(self) -> None:
        """Show nothing (after a failure, so an older picture is never taken for this one)."""
        self.image_item.clear()
        self.mask_item.setVisible(False)
        self.hide_boxes()
        self.set_labels([])

    def visible_labels(self) -> list[str]:
        return [item.textItem.toPlainText() for item in self.labels if item.isVisible()]

    def frame(self, margin: float = 0.0) -> None:
        """Zoom to the whole image (plus ``margin`` times its size on each side)."""
        height, width = self.shape
        if height and width:
            self.vb.setRange(QRectF(-margin * width, -margin * height, width * (1 + 2 * margin),
                                    height * (1 + 2 * margin)), padding=0.02)


def class_labels(data, boxes, class_ids, numbered: bool = False) -> list:
    """Label tuples (x, y, text, rgb) for ``boxes`` [N, 4]: class name (crowd marked), with the
    instance index first when ``numbered``."""
    labels = []
    for index, (box, class_id) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), class_ids)):
        name = data.class_name(class_id)
        text = f"crowd: {name}" if class_id < 0 else name
        if numbered:
            text = f"{index} {text}"
        labels.append((float(box[1]), float(box[0]), text, instance_colour(class_id)))
    return labels


def draw_instances(box: ImageBox, data, boxes, class_ids, width: float = 2.0) -> None:
    """Class-coloured outlines of ``boxes``: one curve per colour (crowd dashed grey), over one
    dark halo curve so they stay visible on any image."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    box.set_boxes("halo", boxes, HALO_COLOUR, width + 2, SOLID, z=7)
    colours = {}
    for index, class_id in enumerate(class_ids):
        colours.setdefault(instance_colour(class_id), []).append(index)
    drawn = set()
    for colour, rows in colours.items():
        key = "gt:" + "-".join(str(c) for c in colour)
        crowd = colour == CROWD_COLOUR
        box.set_boxes(key, boxes[rows], colour + (255,), width, DASH if crowd else SOLID, z=8)
        drawn.add(key)
    for key, curve in box.curves.items():
        if key.startswith("gt:") and key not in drawn:
            curve.setData([], [])
            curve.setVisible(False)


def instance_box_count(box: ImageBox) -> int:
    """Boxes drawn by draw_instances in ``box``."""
    return sum(box.box_count(key) for key in box.curves if key.startswith("gt:"))
