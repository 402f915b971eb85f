"""Canvas: the image with the current stage's overlays; zoom, pan, click to select.

Drawing is batched: every box style is ONE ``pg.PlotCurveItem`` whose data are the outlines of all
its boxes separated by NaN (``connect='finite'``), masks and heat maps are ONE RGBA image composed
in numpy, and labels come from a small pool of ``pg.TextItem``. Items are created once and
updated with ``setData`` / ``setImage``, so a redraw with thousands of boxes stays in tens of ms.
What each stage draws is computed by the pure ``viewer.panels.canvas_plans.plan`` as an
``Overlay`` (plain data), with the numpy helpers of ``viewer.panels.canvas_arrays``; ``redraw``
applies it. The selection and its lineage come from ``canvas_selection.plan_highlight``, each
linked box in its own colour, explained in the legend line under the image. All boxes are
original-image pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from viewer.panels.canvas_arrays import (heat_rgba, mask_image, molded_rect, outline_arrays,
                                         pick_box)
from viewer.panels.canvas_controls import CanvasControls
from viewer.panels.canvas_filters import default_level
from viewer.panels.canvas_grid import RawMaskGrid
from viewer.panels.canvas_plans import Overlay, ViewState, class_colour, plan
from viewer.panels.canvas_selection import plan_highlight
from viewer.panels.canvas_styles import BOX_STYLES, STYLES
from viewer.panels.canvas_text import LabelLayer, legend_html
from viewer.panels.kit import SessionPanel
from viewer.panels.verdict_layer import VerdictLayer
from viewer.session import SELECTION_STAGES
from viewer.stages import stage_by_key

__all__ = ["CanvasPanel", "class_colour", "outline_arrays", "pick_box"]

pg.setConfigOptions(imageAxisOrder="row-major")

PEN_STYLES = {"solid": Qt.PenStyle.SolidLine, "dot": Qt.PenStyle.DotLine,
              "dash": Qt.PenStyle.DashLine, "dashdot": Qt.PenStyle.DashDotLine}
HIGHLIGHT_STYLES = tuple(name for name in STYLES if name == "selected" or
                         name.startswith("link:"))
TEXT_LINE_STYLE = "QLabel { background: rgb(30, 30, 34); color: rgb(215, 215, 220); }"
EMPTY_HINT = ("Open an image (Ctrl+O) and a model (Ctrl+M), a dataset (Ctrl+D), or a saved "
              "trace (Ctrl+T).\nImages can also be dropped here.")


def _lut(name="inferno") -> np.ndarray:
    return pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False).astype(np.uint8)


def _rect(xywh) -> QRectF:
    return QRectF(*(float(v) for v in xywh))


class CanvasPanel(SessionPanel):
    """The image view of the current stage; follows the Session, clicks select boxes."""

    def __init__(self, session, parent=None):
        super().__init__(session, EMPTY_HINT, parent)
        self.highlighted: dict = {}       # trace stage key -> box drawn highlighted
        self.highlight = plan_highlight(None, None, {}, "")
        self.last_redraw_ms = 0.0
        self._overlay = Overlay()
        self._base_key = None
        self._mask_key = None
        self._plan_key = None
        self._lut = _lut()
        self.controls = CanvasControls(session, self)
        self.controls.changed.connect(self.redraw)
        # The controls tests and scripts reach through the canvas.
        self.level_box, self.anchor_box = self.controls.level_box, self.controls.anchor_box
        self.threshold_slider = self.controls.threshold_slider
        self.overlay_boxes = self.controls.overlay_boxes
        self._build_view()
        self.follow(session.traceChanged, self._on_trace, lambda: session.trace)
        for signal in (session.stageChanged, session.selectionChanged,
                       session.scoreThresholdChanged, session.overlaysChanged):
            signal.connect(self.redraw)
        session.selectionChanged.connect(self._follow_selected_level)
        self.sync()

    # ---- widgets -------------------------------------------------------------------------

    def _build_view(self):
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground((30, 30, 34))
        self.view.ci.setContentsMargins(0, 0, 0, 0)
        self.vb = self.view.addViewBox(row=0, col=0)
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        for z, item in enumerate((self.image_item, self.heat_item, self.mask_item)):
            item.setZValue(z)
            self.vb.addItem(item)
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap="inferno",
                                          interactive=False, width=14)
        self.colour_bar.setContentsMargins(0, 8, 0, 8)  # room for the "1.0" tick label
        self.colour_bar.setVisible(False)  # in the layout only while a heat map is shown
        self.curves = {}
        for name in STYLES:
            self._curve(name)
        self.label_layer = LabelLayer(self.vb)
        self.labels = self.label_layer.items
        self.vb.sigRangeChanged.connect(self._on_zoom)
        self.view.scene().sigMouseClicked.connect(self._on_scene_click)
        self.verdicts = VerdictLayer(self.session, self.vb)  # GT verdicts, diagnosis evidence

        # Raw 28x28 masks as a grid, beside the image (raw masks stage only).
        self.grid_view = RawMaskGrid()
        self.grid_item = self.grid_view.item
        self.grid_view.detectionClicked.connect(lambda row: self.session.select("detection", row))

        self.info = self._text_line()
        self.legend = self._text_line()
        self.selection_line = self._text_line()
        self.selection_line.setToolTip("The selected box (magenta) and the boxes it came from or "
                                       "became, in their colours. Esc clears the selection.")
        views_box = QWidget()
        views = QHBoxLayout(views_box)
        views.setContentsMargins(0, 0, 0, 0)
        views.addWidget(self.view, 3)
        views.addWidget(self.grid_view, 1)
        self.empty_hint = self.hint
        self.hint.setStyleSheet("background: rgb(30, 30, 34); color: rgb(200, 200, 205);")
        self.set_content(views_box)
        self.stack.setMinimumSize(320, 240)
        self.panel_layout.setSpacing(2)
        self.panel_layout.insertWidget(0, self.controls)
        captions = QWidget()
        lines = QVBoxLayout(captions)
        lines.setContentsMargins(0, 0, 0, 0)
        lines.setSpacing(0)
        for line in (self.info, self.legend, self.selection_line):
            lines.addWidget(line)
        self.panel_layout.addWidget(captions)

    def _text_line(self) -> QLabel:
        # On the canvas's dark background: the legend's colour samples are the colours drawn
        # over the image, and light ones (grid, ground truth) vanish on a light panel.
        label = QLabel()
        label.setWordWrap(True)
        label.setContentsMargins(6, 1, 6, 1)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setStyleSheet(TEXT_LINE_STYLE)
        return label

    def _curve(self, name: str) -> pg.PlotCurveItem:
        curve = self.curves.get(name)
        if curve is None:
            if name.startswith("class:"):
                rgba, width, style, z = class_colour(int(name[6:])) + (255,), 2, "solid", 9
            else:
                rgba, width, style, z = STYLES[name]
            curve = pg.PlotCurveItem(pen=pg.mkPen(rgba, width=width, style=PEN_STYLES[style]),
                                     connect="finite", antialias=False)
            curve.setZValue(z)
            self.vb.addItem(curve)
            self.curves[name] = curve
        return curve

    @property
    def level(self) -> int:
        return self.controls.level

    @property
    def anchor_mode(self) -> str:
        return self.controls.anchor_box.currentText()

    def set_level(self, level: int) -> None:
        self.level_box.setValue(level)

    def view_state(self) -> ViewState:
        """The view options the current stage's plan depends on."""
        controls = self.controls
        return ViewState(level=controls.level, anchor_mode=self.anchor_mode,
                         top_n=controls.top_n, box_level=controls.box_level,
                         score_threshold=self.session.score_threshold,
                         overlays=dict(self.session.overlays))

    def caption_lines(self) -> list:
        """What the view shows, in words, for exported pictures: [(rich text)], the stage
        title and note, the legend, the selection."""
        stage = stage_by_key(self.session.stage).title if self.session.trace is not None else ""
        lines = [f"<b>{stage}</b> · {self.info.text()}" if stage else self.info.text()]
        return lines + [line.text() for line in (self.legend, self.selection_line)
                        if line.text()]

    # ---- session -> drawing --------------------------------------------------------------

    def _on_trace(self, trace):
        self.show_content(trace is not None)
        self.grid_view.reset()
        self._base_key = self._mask_key = self._plan_key = None
        if trace is not None and "input" in trace:
            height, width = trace.image.shape[:2]
            self.vb.setRange(QRectF(0, 0, width, height), padding=0.02)
        if trace is not None:
            # Open on the level with something to see, not a near-blank P2.
            self.level_box.blockSignals(True)
            self.level_box.setValue(default_level(trace))
            self.level_box.blockSignals(False)
        self.redraw()

    def _follow_selected_level(self, selection):
        """Show the selected box's anchor level in the one-level stages (Anchors, RPN scores)."""
        if selection is None or self.session.trace is None:
            return
        anchor = self.session.linked().get("anchors")
        levels = self.session.trace.get("anchors", {}).get("levels")
        if anchor is not None and levels is not None and 0 <= anchor < len(levels):
            self.set_level(int(levels[anchor]))

    def redraw(self, *_):
        """Draw the current stage of the session's trace (all items updated in place)."""
        start = time.perf_counter()
        trace = self.session.trace
        view = self.view_state()
        key = (id(trace), self.session.stage, view.score_threshold, view.level, view.anchor_mode,
               view.top_n, view.box_level, tuple(sorted(view.overlays.items())))
        if key != self._plan_key:
            # The stage's boxes, labels and heat map change only with this key; a selection
            # change redraws just the highlight (and the cached mask image).
            overlay = Overlay() if trace is None else plan(self.session.stage, trace, view)
            self._overlay, self._plan_key = overlay, key
            self._apply_base(trace, overlay.base)
            self._apply_boxes(overlay)
            self._apply_labels(overlay)
            self._apply_heat(overlay)
            self._apply_notes(overlay)
        self._apply_highlight(trace)
        self._apply_masks(trace, self._overlay)
        self.last_redraw_ms = (time.perf_counter() - start) * 1000.0

    def _on_zoom(self, *_):
        hidden = self.label_layer.hidden
        self.label_layer.place()
        if self.label_layer.hidden != hidden:
            self._apply_notes(self._overlay)

    def _apply_notes(self, overlay):
        note = overlay.note
        if self.label_layer.hidden:
            note += (f"; {self.label_layer.hidden} overlapping labels hidden (zoom in to see "
                     "them)")
        self.info.setText(note)
        shown = self.session.overlays.get("boxes", True)
        self._set_line(self.legend, legend_html(overlay.legend, "Legend: ")
                       if overlay.legend and shown else "")

    @staticmethod
    def _set_line(label, text):
        label.setText(text)
        label.setVisible(bool(text))  # an empty line would leave a gap under the image

    def _apply_base(self, trace, base):
        if trace is None:
            self.image_item.clear()
            self._base_key = None
            return
        if base == "molded" and "molded" not in trace["input"]:
            base = "image"
        key = (id(trace), base)
        if key == self._base_key:
            return
        self._base_key = key
        if base == "molded":
            self.image_item.setImage(trace["input"]["molded"], autoLevels=False, levels=(0, 255))
            self.image_item.setRect(_rect(molded_rect(trace, trace["input"]["molded"].shape[:2])))
        else:
            image = trace.image
            self.image_item.setImage(image, autoLevels=False, levels=(0, 255))
            self.image_item.setRect(QRectF(0, 0, image.shape[1], image.shape[0]))

    def _apply_boxes(self, overlay):
        show_boxes = self.session.overlays.get("boxes", True)
        for name in list(overlay.boxes):
            self._curve(name)
        for name, curve in self.curves.items():
            if name in HIGHLIGHT_STYLES:
                continue
            boxes = overlay.boxes.get(name)
            hidden = not show_boxes and (name in BOX_STYLES or name.startswith("class:"))
            if boxes is None or len(boxes) == 0 or hidden:
                if curve.xData is not None and len(curve.xData):
                    curve.setData([], [])
                curve.setVisible(False)
            else:
                curve.setData(*outline_arrays(boxes), connect="finite")
                curve.setVisible(True)

    def _apply_highlight(self, trace):
        """The selected item (magenta) and its lineage in other stages (a colour per stage),
        explained in the selection line."""
        selection = self.session.selection
        own_key = SELECTION_STAGES[selection.kind] if selection is not None else None
        self.highlight = plan_highlight(trace, own_key, self.session.linked(),
                                        self.session.stage)
        self.highlighted = dict(self.highlight.drawn)
        for name in HIGHLIGHT_STYLES:
            boxes = self.highlight.boxes.get(name, np.zeros((0, 4)))
            curve = self.curves[name]
            curve.setData(*outline_arrays(boxes), connect="finite")
            curve.setVisible(bool(len(boxes)))
        entries = self.highlight.entries
        self._set_line(self.selection_line, legend_html(entries, "Selected: ") if entries else "")

    def _apply_labels(self, overlay):
        labels = overlay.labels if self.session.overlays.get("labels", True) else []
        trace = self.session.trace
        bounds = trace.image.shape[:2] if trace is not None else (0, 0)
        self.label_layer.show(labels, bounds)

    def _apply_heat(self, overlay):
        if overlay.heat is not None:
            values, rect = overlay.heat
            self.heat_item.setImage(heat_rgba(values, self._lut), autoLevels=False)
            self.heat_item.setRect(_rect(rect))
            self.heat_item.setVisible(True)
        else:
            self.heat_item.setVisible(False)
        shown = self.colour_bar.isVisible()
        if overlay.colour_bar is not None:
            label, low, high = overlay.colour_bar
            self.colour_bar.setLevels((low, high))
            self.colour_bar.axis.setLabel(label)
            if not shown:
                self.view.addItem(self.colour_bar, row=0, col=1)
        elif shown:
            self.view.ci.removeItem(self.colour_bar)
        self.colour_bar.setVisible(overlay.colour_bar is not None)

    def _apply_masks(self, trace, overlay):
        rgba = self._mask_image(trace, overlay)
        if rgba is None:
            self.mask_item.setVisible(False)
        else:
            if rgba is not self.mask_item.image:
                self.mask_item.setImage(rgba, autoLevels=False)
                self.mask_item.setRect(QRectF(0, 0, rgba.shape[1], rgba.shape[0]))
            self.mask_item.setVisible(True)
        self._apply_grid(trace, overlay)

    # ---- masks ---------------------------------------------------------------------------

    def _mask_image(self, trace, overlay):
        """One RGBA image of the masks to draw (cached on its inputs), or None."""
        show_gt = self.session.overlays.get("gt", True) and trace is not None and \
            "gt" in trace and "masks" in trace["gt"] and overlay.base == "image"
        show_masks = overlay.masks and self.session.overlays.get("masks", True)
        if trace is None or not (show_masks or show_gt):
            return None
        rows = overlay.mask_rows if show_masks and overlay.mask_rows is not None else np.zeros(0, int)
        key = (id(trace), overlay.masks if show_masks else "", tuple(rows.tolist()), show_gt)
        if key == self._mask_key:
            return self.mask_item.image
        self._mask_key = key
        # The selection is shown by the highlight curves, so this image does not depend on it.
        return mask_image(trace, overlay.masks if show_masks else "", rows, show_gt, self._lut,
                          class_colour)

    def _apply_grid(self, trace, overlay):
        show = overlay.masks == "raw" and trace is not None and "masks/raw" in trace \
            and overlay.mask_rows is not None and len(overlay.mask_rows) > 0
        self.grid_view.setVisible(bool(show))
        if not show:
            return
        self.grid_view.show_masks(trace["masks/raw"]["masks"], overlay.mask_rows, self._lut,
                                  self.session.linked().get("detections"))

    # ---- picking -------------------------------------------------------------------------

    def pick(self, x: float, y: float):
        """(kind, row) of the smallest pickable box of this stage containing (x, y), or None."""
        if self._overlay.pick is None:
            return None
        kind, rows, boxes = self._overlay.pick
        hit = pick_box(boxes, x, y)
        return None if hit is None else (kind, int(np.asarray(rows)[hit]))

    def click_at(self, x: float, y: float) -> None:
        """Select what a click at image pixel (x, y) hits; a click on nothing clears."""
        hit = self.pick(x, y)
        self.session.select(*(hit if hit else (None, None)))

    def _on_scene_click(self, event):
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        point = self.vb.mapSceneToView(event.scenePos())
        self.click_at(point.x(), point.y())

    def scene_pos_of(self, x: float, y: float):
        """Widget (viewport) position of image pixel (x, y), for simulated clicks."""
        scene = self.vb.mapViewToScene(pg.Point(x, y))
        return self.view.mapFromScene(scene)

