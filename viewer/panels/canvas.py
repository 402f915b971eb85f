"""Canvas: the image with the current stage's overlays; zoom, pan, click to select.

Drawing is batched: every box style is ONE ``pg.PlotCurveItem`` whose data are the outlines of all
its boxes separated by NaN (``connect='finite'``), masks and heat maps are ONE RGBA image composed
in numpy, and labels come from a small pool of ``pg.TextItem``. Items are created once and
updated with ``setData`` / ``setImage``, so a redraw with thousands of boxes stays in tens of ms.
What each stage draws is computed by the pure ``viewer.panels.canvas_plans.plan`` as an
``Overlay`` (plain data), with the numpy helpers of ``viewer.panels.canvas_arrays``; ``redraw``
applies it. All boxes are original-image pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QMenu, QSlider, QSpinBox,
                               QToolButton, QWidget)

from viewer.panels.canvas_arrays import (box_of, heat_rgba, mask_image, molded_rect,
                                         outline_arrays, pick_box, refined_box_of_roi)
from viewer.panels.canvas_grid import RawMaskGrid
from viewer.panels.canvas_plans import ANCHOR_SAMPLE, Overlay, ViewState, class_colour, plan
from viewer.panels.kit import SessionPanel
from viewer.panels.verdict_layer import VerdictLayer
from viewer.session import SELECTION_STAGES

__all__ = ["CanvasPanel", "class_colour", "outline_arrays", "pick_box"]

pg.setConfigOptions(imageAxisOrder="row-major")

_DOT, _DASH, _SOLID = Qt.PenStyle.DotLine, Qt.PenStyle.DashLine, Qt.PenStyle.SolidLine
# style name -> (rgba, width, pen style, z)
STYLES = {
    "faint": ((210, 210, 210, 90), 1, _SOLID, 3),
    "anchor": ((255, 200, 60, 170), 1, _SOLID, 4),
    "neutral": ((170, 170, 170, 110), 1, _SOLID, 4),
    "negative": ((255, 80, 80, 170), 1, _SOLID, 4),
    "positive": ((60, 255, 90, 255), 2, _SOLID, 5),
    "dotted": ((255, 200, 60, 200), 1, _DOT, 5),
    "dashed": ((80, 200, 255, 220), 1, _DASH, 6),
    "solid": ((60, 255, 140, 210), 1, _SOLID, 7),
    "gt": ((255, 255, 255, 230), 1.5, _DASH, 8),
    "window": ((255, 255, 0, 220), 1.5, Qt.PenStyle.DashDotLine, 8),
    "linked": ((0, 255, 255, 255), 2.5, _SOLID, 20),
    "selected": ((255, 0, 255, 255), 3.5, _SOLID, 21),
}
BOX_STYLES = ("faint", "anchor", "neutral", "negative", "positive", "dotted", "dashed", "solid")
OVERLAY_TITLES = {"boxes": "Boxes", "masks": "Masks", "labels": "Labels",
                  "gt": "Ground truth (dashed white)", "window": "Image window (dash-dot)"}
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
        self.level = 2
        self.anchor_mode = "sample"
        self.highlighted: dict = {}       # trace stage key -> box drawn highlighted
        self.last_redraw_ms = 0.0
        self._overlay = Overlay()
        self._base_key = None
        self._mask_key = None
        self._plan_key = None
        self._lut = _lut()
        self._build_controls()
        self._build_view()
        self.follow(session.traceChanged, self._on_trace, lambda: session.trace)
        for signal in (session.stageChanged, session.selectionChanged,
                       session.scoreThresholdChanged, session.overlaysChanged):
            signal.connect(self.redraw)
        session.scoreThresholdChanged.connect(self._sync_controls)
        session.overlaysChanged.connect(self._sync_controls)
        session.stageChanged.connect(self._sync_stage_controls)
        self.sync()
        self._sync_stage_controls()

    # ---- widgets -------------------------------------------------------------------------

    def _build_controls(self):
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.level_box = QSpinBox(minimum=2, maximum=6, value=self.level, prefix="P")
        self.level_box.setToolTip("Pyramid level shown by the Anchors and RPN scores stages")
        self.level_box.valueChanged.connect(self._on_level)
        self.anchor_box = QComboBox()
        self.anchor_box.addItems(["sample", "all"])
        self.anchor_box.setToolTip(f"Anchors: a sample of {ANCHOR_SAMPLE} per level, or all of it")
        self.anchor_box.currentTextChanged.connect(self._on_anchor_mode)
        self.level_label = QLabel("Level")
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.threshold_slider.setToolTip("Score threshold: hide boxes and detections scoring below")
        self.threshold_slider.setMinimumWidth(90)
        self.threshold_slider.setMaximumWidth(220)
        self.threshold_slider.valueChanged.connect(
            lambda v: self.session.set_score_threshold(v / 100.0))
        self.threshold_label = QLabel("0.00")
        # Overlay switches live in one drop-down: a row of check boxes would set the canvas's
        # minimum width and squeeze the docks on a 1280 px screen.
        self.overlay_button = QToolButton()
        self.overlay_button.setText("Overlays")
        self.overlay_button.setToolTip("Choose what is drawn over the image")
        self.overlay_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.overlay_button)
        self.overlay_boxes = {}
        for name in self.session.overlays:
            action = menu.addAction(OVERLAY_TITLES.get(name, name))
            action.setCheckable(True)
            action.toggled.connect(lambda on, n=name: self.session.set_overlay(n, on))
            self.overlay_boxes[name] = action
        self.overlay_button.setMenu(menu)
        for item in (self.level_label, self.level_box, self.anchor_box, QLabel("Score ≥"),
                     self.threshold_slider, self.threshold_label):
            bar.addWidget(item)
        bar.addStretch(1)
        bar.addWidget(self.overlay_button)
        self._controls = bar
        self._sync_controls()

    def _sync_stage_controls(self, *_):
        """Level and anchor mode only matter to the stages that draw one pyramid level."""
        per_level = self.session.stage in ("anchors", "rpn_scores")
        for widget in (self.level_label, self.level_box):
            widget.setVisible(per_level)
        self.anchor_box.setVisible(self.session.stage == "anchors")

    def _build_view(self):
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground((30, 30, 34))
        self.view.ci.setContentsMargins(0, 0, 0, 0)
        self.vb = self.view.addViewBox()
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        for z, item in enumerate((self.image_item, self.heat_item, self.mask_item)):
            item.setZValue(z)
            self.vb.addItem(item)
        self.curves = {}
        for name in STYLES:
            self._curve(name)
        self.labels: list[pg.TextItem] = []
        self.view.scene().sigMouseClicked.connect(self._on_scene_click)
        self.verdicts = VerdictLayer(self.session, self.vb)  # GT verdicts, diagnosis evidence

        # Raw 28x28 masks as a grid, beside the image (raw masks stage only).
        self.grid_view = RawMaskGrid()
        self.grid_item = self.grid_view.item
        self.grid_view.detectionClicked.connect(lambda row: self.session.select("detection", row))

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setContentsMargins(6, 2, 6, 2)
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
        self.panel_layout.insertLayout(0, self._controls)
        self.panel_layout.addWidget(self.info)

    def _curve(self, name: str) -> pg.PlotCurveItem:
        curve = self.curves.get(name)
        if curve is None:
            if name.startswith("class:"):
                rgba, width, style, z = class_colour(int(name[6:])) + (255,), 2, _SOLID, 9
            else:
                rgba, width, style, z = STYLES[name]
            curve = pg.PlotCurveItem(pen=pg.mkPen(rgba, width=width, style=style),
                                     connect="finite", antialias=False)
            curve.setZValue(z)
            self.vb.addItem(curve)
            self.curves[name] = curve
        return curve

    def _sync_controls(self, *_):
        value = int(round(self.session.score_threshold * 100))
        if self.threshold_slider.value() != value:
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(value)
            self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"{self.session.score_threshold:.2f}")
        for name, box in self.overlay_boxes.items():
            box.blockSignals(True)
            box.setChecked(self.session.overlays.get(name, True))
            box.blockSignals(False)

    def _on_level(self, level: int):
        self.level = int(level)
        self.redraw()

    def _on_anchor_mode(self, mode: str):
        self.anchor_mode = mode
        self.redraw()

    def set_level(self, level: int) -> None:
        self.level_box.setValue(level)

    def view_state(self) -> ViewState:
        """The view options the current stage's plan depends on."""
        return ViewState(level=self.level, anchor_mode=self.anchor_mode,
                         score_threshold=self.session.score_threshold,
                         overlays=dict(self.session.overlays))

    # ---- session -> drawing --------------------------------------------------------------

    def _on_trace(self, trace):
        self.show_content(trace is not None)
        self.grid_view.reset()
        self._base_key = self._mask_key = self._plan_key = None
        if trace is not None and "input" in trace:
            height, width = trace.image.shape[:2]
            self.vb.setRange(QRectF(0, 0, width, height), padding=0.02)
        self.redraw()

    def redraw(self, *_):
        """Draw the current stage of the session's trace (all items updated in place)."""
        start = time.perf_counter()
        trace = self.session.trace
        key = (id(trace), self.session.stage, self.session.score_threshold, self.level,
               self.anchor_mode, tuple(sorted(self.session.overlays.items())))
        if key != self._plan_key:
            # The stage's boxes, labels and heat map change only with this key; a selection
            # change redraws just the highlight (and the cached mask image).
            overlay = Overlay() if trace is None else plan(self.session.stage, trace,
                                                           self.view_state())
            self._overlay, self._plan_key = overlay, key
            self._apply_base(trace, overlay.base)
            self._apply_boxes(overlay)
            self._apply_labels(overlay)
            self._apply_heat(overlay)
            self.info.setText(overlay.note)
        self._apply_highlight(trace)
        self._apply_masks(trace, self._overlay)
        self.last_redraw_ms = (time.perf_counter() - start) * 1000.0

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
            if name in ("selected", "linked"):
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
        """The selected item (magenta) and its linked items in other stages (cyan), any stage."""
        self.highlighted = {}
        selection = self.session.selection
        selected, linked = [], []
        if trace is not None and selection is not None:
            own_key = SELECTION_STAGES[selection.kind]
            for key, row in self.session.linked().items():
                box = box_of(trace, key, row)
                if box is None:
                    continue
                self.highlighted[key] = box
                (selected if key == own_key else linked).append(box)
            refined = self._refined_box(trace)
            if refined is not None:
                self.highlighted["heads/refined"] = refined
                linked.append(refined)
        for name, boxes in (("selected", selected), ("linked", linked)):
            curve = self.curves[name]
            curve.setData(*outline_arrays(boxes), connect="finite")
            curve.setVisible(bool(boxes))

    def _refined_box(self, trace):
        """Class-specific refined box of the selection's ROI (ROI refinement stage only)."""
        if self.session.stage != "roi_refinement":
            return None
        return refined_box_of_roi(trace, self.session.linked().get("proposals/post_nms"))

    def _apply_labels(self, overlay):
        labels = overlay.labels if self.session.overlays.get("labels", True) else []
        trace = self.session.trace
        self._label_room = 0.05 * trace.image.shape[0] if trace is not None else 0.0
        while len(self.labels) < len(labels):
            item = pg.TextItem(anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
            item.setZValue(30)
            self.vb.addItem(item)
            self.labels.append(item)
        for item, (box, text, rgb) in zip(self.labels, labels):
            if getattr(item, "_key", None) != (text, rgb):
                item.setText(text, color=rgb)
                item._key = (text, rgb)
            # Above the box, or just inside it where "above" would leave the image.
            inside = float(box[0]) < self._label_room
            item.setAnchor((0, 0) if inside else (0, 1))
            item.setPos(float(box[1]), float(box[0]))
            item.setVisible(True)
        for item in self.labels[len(labels):]:
            item.setVisible(False)

    def _apply_heat(self, overlay):
        if overlay.heat is not None:
            values, rect = overlay.heat
            self.heat_item.setImage(heat_rgba(values, self._lut), autoLevels=False)
            self.heat_item.setRect(_rect(rect))
            self.heat_item.setVisible(True)
        else:
            self.heat_item.setVisible(False)

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

