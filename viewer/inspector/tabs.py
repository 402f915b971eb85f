"""The inspector's per-image tabs: the base class, "Image" (ground truth as stored) and
"Molded" (what ``load_image_gt`` gives the network, with the mini-masks' loss of detail).

A tab draws the row it was given when it is shown (``refresh``); the window tells every tab the
new row and refreshes only the visible one, so switching images never computes hidden tabs.
The pictures are pyqtgraph scenes (exported as PNG at twice their size); a failure to load or
mold an image is shown in the tab, never raised into Qt.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from viewer.inspector.graphics import (TEXT_COLOUR, ImageBox, class_labels, draw_instances,
                                       instance_colour, make_view, mask_overlay)

WINDOW_COLOUR = (255, 255, 0, 220)
LOST_COLOUR = (255, 60, 60)     # in the full mask, missing from the expanded mini-mask
ADDED_COLOUR = (60, 140, 255)   # in the expanded mini-mask only
GRID_ROWS_SHOWN = 6             # instances visible in the mini-mask grid before panning
TILE_GAP = 4                    # pixels between mini-mask tiles
GRID_COLUMNS = ("full mask", "mini-mask {shape}", "expanded", "lost / added")


def describe_classes(data, class_ids) -> str:
    """"2 square, 1 circle (+1 crowd)" for class ids [N]."""
    class_ids = np.asarray(class_ids).reshape(-1)
    objects = class_ids[class_ids > 0]
    ids, counts = np.unique(objects, return_counts=True)
    parts = [f"{count} {data.class_name(i)}" for i, count in zip(ids, counts)]
    text = ", ".join(parts) if parts else "no instances"
    crowd = int(np.sum(class_ids < 0))
    return text + (f" (+{crowd} crowd)" if crowd else "")


class InspectorTab(QWidget):
    """A tab that draws one dataset row: ``set_row`` records it, ``refresh`` draws it."""

    title = ""

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        self.row: int | None = None        # the row asked for
        self.shown_row: int | None = None  # the row drawn
        self.error = ""
        self._dirty = True
        self.controls = QHBoxLayout()
        self.controls.setContentsMargins(4, 2, 4, 2)
        self.view = make_view()
        self.heading = self.view.addLabel("", row=0, col=0, colspan=3, color=TEXT_COLOUR)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setContentsMargins(6, 2, 6, 2)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.controls)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.info)

    # ---- controls helpers --------------------------------------------------------------

    def _check(self, text: str, checked: bool = True, tip: str = "") -> QCheckBox:
        box = QCheckBox(text)
        box.setChecked(checked)
        box.setToolTip(tip)
        box.toggled.connect(self.redraw)
        self.controls.addWidget(box)
        return box

    # ---- row life cycle ----------------------------------------------------------------

    @property
    def stale(self) -> bool:
        return self._dirty or self.row != self.shown_row

    def set_row(self, row: int) -> None:
        self.row = row

    def redraw(self, *_) -> None:
        """Draw again with the current controls (controls call it)."""
        self._dirty = True
        self.refresh()

    def refresh(self) -> None:
        """Draw ``row`` now; an error is shown in the tab and kept in ``error``."""
        if self.row is None:
            return
        try:
            self.draw(self.row)
            self.error = ""
        except Exception as error:  # dataset / config code: show it, keep the window usable
            self.error = f"{type(error).__name__}: {error}"
            self.show_failure(self.error)
        self.shown_row = self.row
        self._dirty = False

    def draw(self, row: int) -> None:
        raise NotImplementedError

    def image_boxes(self) -> list:
        """Every ImageBox of the tab (cleared when drawing fails)."""
        return [value for value in vars(self).values() if isinstance(value, ImageBox)] + \
            list(getattr(self, "cells", []))

    def show_failure(self, message: str) -> None:
        for box in self.image_boxes():
            box.clear()
        self.heading.setText(f"{self.data.name(self.row)}: cannot draw this tab")
        self.info.setText(f"<span style='color:#ff6060'>{_escape(message)}</span>")

    def export_widget(self) -> QWidget:
        """The widget File > Export PNG writes for this tab."""
        return self.view

    def export_name(self) -> str:
        return self.title.lower()


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ImageTab(InspectorTab):
    """The stored image with its GT masks tinted per class, boxes and class labels."""

    title = "Image"

    def __init__(self, data, parent=None):
        super().__init__(data, parent)
        self.masks_box = self._check("Masks")
        self.boxes_box = self._check("Boxes")
        self.labels_box = self._check("Labels")
        self.controls.addStretch(1)
        self.image = ImageBox(self.view.addViewBox(row=1, col=0))
        self.gt = None

    def draw(self, row: int) -> None:
        gt = self.gt = self.data.ground_truth(row)
        self.image.set_image(gt.image)
        self.image.set_masks(mask_overlay(gt.masks, gt.class_ids)
                             if self.masks_box.isChecked() else None)
        shown = gt.boxes if self.boxes_box.isChecked() else np.zeros([0, 4])
        draw_instances(self.image, self.data, shown, gt.class_ids[:len(shown)])
        self.image.set_labels(class_labels(self.data, gt.boxes, gt.class_ids, numbered=True)
                              if self.labels_box.isChecked() else [])
        height, width = gt.image.shape[:2]
        self.heading.setText(f"{row}: {self.data.name(row)} — {width}×{height} — "
                             f"{describe_classes(self.data, gt.class_ids)}")
        lines = [f"{i}: {self.data.class_name(c)}{' (crowd)' if c < 0 else ''}  box "
                 f"[{', '.join(str(int(v)) for v in box)}]  area {int(gt.masks[:, :, i].sum())} px"
                 for i, (c, box) in enumerate(zip(gt.class_ids, gt.boxes))]
        self.info.setText("; ".join(lines) if lines else "This image has no instances.")


class MoldedTab(InspectorTab):
    """The molded image (resized + padded) with load_image_gt's boxes, and per instance the
    full mask, its mini-mask, the mini-mask expanded back and what that lost or added."""

    title = "Molded"
    MASK_MODES = ("full masks", "expanded mini-masks", "lost / added by mini-masks", "none")

    def __init__(self, data, parent=None):
        super().__init__(data, parent)
        self.controls.addWidget(QLabel("Masks:"))
        self.mask_mode = QComboBox()
        self.mask_mode.addItems(self.MASK_MODES)
        self.mask_mode.setToolTip("Which masks tint the molded image; red = lost, blue = added")
        self.mask_mode.currentIndexChanged.connect(self.redraw)
        self.controls.addWidget(self.mask_mode)
        self.boxes_box = self._check("Boxes")
        self.window_box = self._check("Image window", tip="The image inside the padding "
                                                        "(dash-dot yellow)")
        self.controls.addStretch(1)
        self.image = ImageBox(self.view.addViewBox(row=1, col=0))
        self.grid = ImageBox(self.view.addViewBox(row=1, col=1))
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 2)
        self.grid_headers: list[pg.TextItem] = []
        self.molded = None

    def draw(self, row: int) -> None:
        molded = self.molded = self.data.molded(row)
        self.image.set_image(molded.image)
        self.image.set_masks(self._overlay(molded))
        boxes = molded.boxes if self.boxes_box.isChecked() else np.zeros([0, 4])
        draw_instances(self.image, self.data, boxes, molded.class_ids[:len(boxes)])
        self.image.set_labels(class_labels(self.data, boxes, molded.class_ids, numbered=True))
        if self.window_box.isChecked():
            self.image.set_boxes("window", [molded.window], WINDOW_COLOUR, 1.5,
                                 Qt.PenStyle.DashDotLine, z=9)
        else:
            self.image.hide_boxes(keep=[k for k in self.image.curves if k != "window"])
        self._draw_grid(molded)
        height, width = molded.image.shape[:2]
        self.heading.setText(f"{row}: {self.data.name(row)} molded to {width}×{height} "
                             f"(scale {molded.scale:.3g}) — "
                             f"{describe_classes(self.data, molded.class_ids)}")
        self.info.setText(self._info_text(molded))

    def _overlay(self, molded):
        mode = self.mask_mode.currentText()
        if mode == "full masks":
            return mask_overlay(molded.masks, molded.class_ids)
        if mode == "expanded mini-masks":
            return mask_overlay(molded.expanded, molded.class_ids)
        if mode == "none" or not len(molded.class_ids):
            return None
        rgba = np.zeros(molded.masks.shape[:2] + (4,), np.uint8)
        rgba[(molded.masks & ~molded.expanded).any(axis=-1)] = LOST_COLOUR + (220,)
        rgba[(molded.expanded & ~molded.masks).any(axis=-1)] = ADDED_COLOUR + (220,)
        return rgba

    def _info_text(self, molded) -> str:
        mode = self.data.config.IMAGE_RESIZE_MODE
        text = (f"IMAGE_RESIZE_MODE {mode!r}, window {list(molded.window)}. ")
        if not molded.uses_mini_mask:
            text += "USE_MINI_MASK is off: training sees full masks (mini-masks shown to compare). "
        if len(molded.mini_iou):
            text += ("Mini-mask IoU with the full mask per instance: "
                     + ", ".join(f"{i}: {v:.3f}" for i, v in enumerate(molded.mini_iou)))
        else:
            text += "No instances."
        return text

    def _draw_grid(self, molded) -> None:
        """One row of tiles per instance: full crop, mini-mask, expanded crop, difference."""
        tile = int(max(self.data.config.MINI_MASK_SHAPE))
        count = len(molded.class_ids)
        step = tile + TILE_GAP
        rgb = np.full((max(count, 1) * step, len(GRID_COLUMNS) * step, 3), 45, np.uint8)
        labels = []
        for i in range(count):
            colour = np.array(instance_colour(molded.class_ids[i]), np.uint8)
            y1, x1, y2, x2 = (int(v) for v in molded.boxes[i])
            full = molded.masks[y1:y2, x1:x2, i]
            expanded = molded.expanded[y1:y2, x1:x2, i]
            tiles = [_tile(full, tile, colour), _tile(molded.mini_masks[:, :, i], tile, colour),
                     _tile(expanded, tile, colour), _difference_tile(full, expanded, tile)]
            for column, image in enumerate(tiles):
                rgb[i * step:i * step + tile, column * step:column * step + tile] = image
            labels.append((0.0, float(i * step), f"{i} {self.data.class_name(molded.class_ids[i])}",
                           tuple(int(c) for c in colour)))
            labels.append((3.0 * step, float(i * step), f"IoU {molded.mini_iou[i]:.2f}",
                           TEXT_COLOUR))
        self.grid.set_image(rgb)
        self.grid.set_labels([(x, y + 1, text, colour) for x, y, text, colour in labels])
        for item in self.grid.labels:
            item.setAnchor((0, 0))
        self._grid_headers(step)
        visible = min(max(count, 1), GRID_ROWS_SHOWN) * step
        self.grid.vb.setRange(xRange=(0, len(GRID_COLUMNS) * step), yRange=(-0.35 * step, visible),
                              padding=0.02)

    def _grid_headers(self, step: int) -> None:
        while len(self.grid_headers) < len(GRID_COLUMNS):
            item = pg.TextItem(anchor=(0.5, 1), color=TEXT_COLOUR)
            self.grid.vb.addItem(item)
            self.grid_headers.append(item)
        shape = "×".join(str(v) for v in self.data.config.MINI_MASK_SHAPE)
        for column, (item, text) in enumerate(zip(self.grid_headers, GRID_COLUMNS)):
            item.setText(text.format(shape=shape))
            item.setPos(column * step + 0.5 * (step - TILE_GAP), -1.0)


def _nearest(mask, size: int) -> np.ndarray:
    """[size, size] nearest-neighbour resample of a 2-D array (pixels stay visible as blocks)."""
    mask = np.asarray(mask)
    if mask.size == 0:
        return np.zeros((size, size), mask.dtype)
    rows = (np.arange(size) * mask.shape[0] // size).clip(0, mask.shape[0] - 1)
    cols = (np.arange(size) * mask.shape[1] // size).clip(0, mask.shape[1] - 1)
    return mask[rows][:, cols]


def _tile(mask, size: int, colour) -> np.ndarray:
    tile = np.full((size, size, 3), 20, np.uint8)
    tile[_nearest(mask, size).astype(bool)] = colour
    return tile


def _difference_tile(full, expanded, size: int) -> np.ndarray:
    full, expanded = _nearest(full, size).astype(bool), _nearest(expanded, size).astype(bool)
    tile = np.full((size, size, 3), 20, np.uint8)
    tile[full & expanded] = (110, 110, 110)
    tile[full & ~expanded] = LOST_COLOUR
    tile[expanded & ~full] = ADDED_COLOUR
    return tile
