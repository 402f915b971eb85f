"""The raw 28x28 masks as a grid beside the canvas (raw masks stage only); click selects."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from viewer.panels.canvas_arrays import (grid_cell_box, grid_columns, grid_index_at,
                                         outline_arrays, raw_mask_grid)

BACKGROUND = (30, 30, 34)
SELECTED_RGBA = (255, 0, 255, 255)


class RawMaskGrid(pg.GraphicsLayoutWidget):
    """Shows ``raw[rows]`` in a grid; ``detectionClicked(row)`` when a cell is clicked."""

    detectionClicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        # A quarter of the canvas, 120-240 px: a fixed 240 px squeezed the image on small screens.
        self.setMinimumWidth(120)
        self.setMaximumWidth(240)
        self.vb = self.addViewBox()
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMenuEnabled(False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.item)
        self.outline = pg.PlotCurveItem(pen=pg.mkPen(SELECTED_RGBA, width=3), connect="finite")
        self.vb.addItem(self.outline)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.rows = np.zeros(0, int)
        self.columns = 1
        self._key = None
        self.hide()

    def reset(self) -> None:
        """Forget the drawn grid (a new trace)."""
        self._key = None

    def show_masks(self, raw, rows, lut, selected=None) -> None:
        """Draw masks ``raw[rows]`` ([28, 28] each; redrawn only when rows change) and outline
        detection ``selected`` if it is one of them."""
        key = tuple(np.asarray(rows).tolist())
        if key != self._key:
            self._key = key
            self.item.setImage(raw_mask_grid(raw, rows, lut), autoLevels=False)
            self.vb.autoRange(items=[self.item], padding=0.02)
            self.rows, self.columns = np.asarray(rows), grid_columns(len(rows))
        outline = []
        if selected is not None and selected in set(key):
            outline = [grid_cell_box(int(np.flatnonzero(self.rows == selected)[0]), self.columns)]
        self.outline.setData(*outline_arrays(outline), connect="finite")

    def _on_click(self, event):
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.vb.mapSceneToView(event.scenePos())
        index = grid_index_at(point.x(), point.y(), self.columns, len(self.rows))
        if index is not None:
            self.detectionClicked.emit(int(self.rows[index]))
