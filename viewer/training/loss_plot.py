"""The Training panel's loss plot: train (per step) and val (per epoch) curves of the six losses."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy

from viewer.training.runs import LOSS_NAMES

PLOT_BACKGROUND = (30, 30, 34)  # the canvas' background: one dark theme for plots
LOSS_COLORS = {"loss": (235, 235, 235), "rpn_class_loss": (90, 170, 255),
               "rpn_bbox_loss": (255, 160, 50), "mrcnn_class_loss": (90, 210, 100),
               "mrcnn_bbox_loss": (245, 90, 90), "mrcnn_mask_loss": (190, 140, 250)}

def short_loss_name(name: str) -> str:
    return name if name == "loss" else name[: -len("_loss")]


class IntegerAxis(pg.AxisItem):
    """An axis of whole numbers (steps): no "2.5" ticks when few steps are plotted."""

    def tickValues(self, minVal, maxVal, size):
        return [(spacing, [v for v in values if float(v).is_integer()])
                for spacing, values in super().tickValues(minVal, maxVal, size)]


class LossPlot(pg.GraphicsLayoutWidget):
    """Train (solid, per step) and val (dashed with dots, per epoch) curves of the six losses,
    x = global step. The legend sits right of the plot, never over the curves; clicking an
    entry hides or shows that loss (train and val)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(PLOT_BACKGROUND)
        self.plot_item = self.addPlot(row=0, col=0, axisItems={"bottom": IntegerAxis("bottom")})
        self.plot_item.setLabel("bottom", "step")
        self.plot_item.setLabel("left", "loss")
        self.plot_item.showGrid(x=True, y=True, alpha=0.2)
        self.plot_item.getAxis("bottom").enableAutoSIPrefix(False)
        self.legend = pg.LegendItem(labelTextSize="8pt", verSpacing=-4)
        self.addItem(self.legend, row=0, col=1)
        # Keep the legend its natural size at the top: the layout would spread its rows over
        # the plot's height.
        self.legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.ci.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignTop)
        self.ci.layout.setColumnStretchFactor(0, 1)
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for name in LOSS_NAMES:
            color = LOSS_COLORS[name]
            train = self.plot_item.plot([], [], pen=pg.mkPen(color, width=1.5))
            val = self.plot_item.plot(
                [], [], pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine),
                symbol="o", symbolSize=6, symbolBrush=color, symbolPen=None)
            self.curves["train", name], self.curves["val", name] = train, val
            self.legend.addItem(train, short_loss_name(name))
            train.visibleChanged.connect(lambda t=train, v=val: v.setVisible(t.isVisible()))
        # Two entries explain the line styles for all six colours.
        grey = (170, 170, 170)
        self._style_samples = [
            pg.PlotDataItem(pen=pg.mkPen(grey, width=1.5)),
            pg.PlotDataItem(pen=pg.mkPen(grey, width=2, style=Qt.PenStyle.DashLine),
                            symbol="o", symbolSize=6, symbolBrush=grey, symbolPen=None)]
        self.legend.addItem(self._style_samples[0], "train (step)")
        self.legend.addItem(self._style_samples[1], "val (epoch)")

    def setLogMode(self, y: bool) -> None:
        self.plot_item.setLogMode(y=y)

    def show_curves(self, curves) -> None:
        """Draw ``curves`` (runs.Curves, or None to clear)."""
        for (split, name), item in self.curves.items():
            if curves is None:
                item.setData([], [])
            else:
                xs, ys = curves.arrays(split, name)
                item.setData(xs, ys, connect="finite")
