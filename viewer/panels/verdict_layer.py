"""The canvas's diagnosis layer: GT boxes coloured by verdict and the selected GT's evidence.

Its own pyqtgraph items in the canvas's view box, redrawn from ``canvas_verdicts.verdict_plan``
whenever the session's trace, stage, selection or overlays change — so the canvas's stage plans
and highlight code are untouched (the canvas only creates this layer).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

from viewer.diagnosis_view import diagnosis_of
from viewer.panels.canvas_arrays import outline_arrays
from viewer.panels.canvas_plans import ViewState
from viewer.panels.canvas_verdicts import EVIDENCE_RGB, verdict_plan

# style -> (rgba, width, pen style, z): above the stage's boxes, below the selection (21).
# Colours apart from the canvas's selection (magenta) and linked items (cyan).
EVIDENCE_STYLES = {style: ((*rgb, 240), 2.5, pen, z) for (style, rgb), pen, z in zip(
    EVIDENCE_RGB.items(), (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine), (18, 19))}
GT_WIDTH, GT_Z = 2.0, 12
LABEL_Z = 31


class VerdictLayer:
    """Draws the diagnosis of ``session.trace`` into view box ``vb``."""

    def __init__(self, session, vb):
        self.session = session
        self.vb = vb
        self.curves: dict = {}
        self.labels: list = []
        self.last_plan = None
        for signal in (session.traceChanged, session.stageChanged, session.selectionChanged,
                       session.overlaysChanged):
            signal.connect(self.redraw)

    def _curve(self, key, rgba, width, style, z) -> pg.PlotCurveItem:
        curve = self.curves.get(key)
        if curve is None:
            curve = pg.PlotCurveItem(pen=pg.mkPen(rgba, width=width, style=style),
                                     connect="finite", antialias=False)
            curve.setZValue(z)
            self.vb.addItem(curve)
            self.curves[key] = curve
        return curve

    def redraw(self, *_) -> None:
        session = self.session
        trace = session.trace
        diagnosis = diagnosis_of(trace)
        view = ViewState(overlays=dict(session.overlays))
        plan = verdict_plan(trace, diagnosis, session.stage, session.selection, view)
        self.last_plan = plan
        wanted = {}
        for rgb, boxes in plan.gt_boxes.items():
            wanted[("gt",) + rgb] = (boxes, (*rgb, 255), GT_WIDTH, Qt.PenStyle.SolidLine, GT_Z)
        for style, boxes in plan.boxes.items():
            wanted[style] = (boxes,) + EVIDENCE_STYLES[style]
        for key, (boxes, rgba, width, style, z) in wanted.items():
            curve = self._curve(key, rgba, width, style, z)
            curve.setData(*outline_arrays(boxes), connect="finite")
            curve.setVisible(True)
        for key, curve in self.curves.items():
            if key not in wanted and curve.isVisible():
                curve.setData([], [])
                curve.setVisible(False)
        self._labels(plan.labels)

    def _labels(self, labels) -> None:
        while len(self.labels) < len(labels):
            item = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 170))
            item.setZValue(LABEL_Z)
            self.vb.addItem(item)
            self.labels.append(item)
        for item, (box, text, rgb, corner) in zip(self.labels, labels):
            item.setText(text, color=rgb)
            # Inside the box (the stage's own labels sit above boxes): GT verdicts at the
            # bottom-left corner, evidence at the top-left.
            item.setAnchor((0, 1) if corner == "bottom" else (0, 0))
            item.setPos(float(box[1]), float(box[2] if corner == "bottom" else box[0]))
            item.setVisible(True)
        for item in self.labels[len(labels):]:
            item.setVisible(False)
