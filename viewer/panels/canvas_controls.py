"""The canvas's control bar: pyramid level, anchor sample, Top-N / level filters of the dense
stages, the score slider, and the Overlays drop-down. Which controls show depends on the stage.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QMenu, QSlider, QSpinBox,
                               QToolButton, QWidget)

from viewer.panels.canvas_filters import DEFAULT_TOP_N, TOP_N_CHOICES_MAX
from viewer.panels.canvas_plans import ANCHOR_SAMPLE

OVERLAY_TITLES = {"boxes": "Boxes", "masks": "Masks", "labels": "Labels",
                  "gt": "Ground truth (dashed white)", "window": "Image window (dash-dot)"}
PER_LEVEL_STAGES = ("anchors", "rpn_scores")
DENSE_STAGES = ("refined_anchors", "proposals")
LEVEL_CHOICES = ("All levels", "P2", "P3", "P4", "P5", "P6")


class CanvasControls(QWidget):
    """One row of view options; emits ``changed`` when a canvas-only option changes (the score
    threshold and overlays go to the session directly)."""

    changed = Signal()

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        bar = QHBoxLayout(self)
        bar.setContentsMargins(4, 2, 4, 2)
        self.level_label = QLabel("Level")
        self.level_box = QSpinBox(minimum=2, maximum=6, value=2, prefix="P")
        self.level_box.setToolTip("Pyramid level shown by the Anchors and RPN scores stages")
        self.anchor_box = QComboBox()
        self.anchor_box.addItems(["sample", "all"])
        self.anchor_box.setToolTip(f"Anchors: a sample of {ANCHOR_SAMPLE} per level, or all of it")
        self.top_label = QLabel("Top")
        self.top_box = QSpinBox(minimum=0, maximum=TOP_N_CHOICES_MAX, value=DEFAULT_TOP_N,
                                singleStep=10)
        self.top_box.setSpecialValueText("all")
        self.top_box.setToolTip("Draw only the best N boxes by score (0: all of them)")
        self.box_level_box = QComboBox()
        self.box_level_box.addItems(LEVEL_CHOICES)
        self.box_level_box.setToolTip("Only boxes whose anchor lies on this pyramid level")
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.threshold_slider.setToolTip("Score threshold: hide boxes and detections scoring below")
        self.threshold_slider.setMinimumWidth(90)
        self.threshold_slider.setMaximumWidth(220)
        self.threshold_slider.valueChanged.connect(
            lambda v: self.session.set_score_threshold(v / 100.0))
        self.threshold_label = QLabel("0.00")
        self._build_overlay_menu()
        for item in (self.level_label, self.level_box, self.anchor_box, self.top_label,
                     self.top_box, self.box_level_box, QLabel("Score ≥"), self.threshold_slider,
                     self.threshold_label):
            bar.addWidget(item)
        bar.addStretch(1)
        bar.addWidget(self.overlay_button)
        for signal in (self.level_box.valueChanged, self.anchor_box.currentTextChanged,
                       self.top_box.valueChanged, self.box_level_box.currentIndexChanged):
            signal.connect(lambda *_: self.changed.emit())
        session.scoreThresholdChanged.connect(self.sync)
        session.overlaysChanged.connect(self.sync)
        session.stageChanged.connect(self.sync_stage)
        self.sync()
        self.sync_stage()

    def _build_overlay_menu(self):
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

    # ---- values ----------------------------------------------------------------------------

    @property
    def level(self) -> int:
        return int(self.level_box.value())

    @property
    def top_n(self) -> int:
        return int(self.top_box.value())

    @property
    def box_level(self) -> int:
        """Level filter of the dense stages: 0 for all, else 2..6."""
        index = self.box_level_box.currentIndex()
        return 0 if index <= 0 else index + 1

    def set_box_level(self, level: int) -> None:
        self.box_level_box.setCurrentIndex(0 if not level else int(level) - 1)

    # ---- following the session -------------------------------------------------------------

    def sync(self, *_):
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

    def sync_stage(self, *_):
        """Level and anchor mode matter to the one-level stages, Top and level filter to the
        dense ones."""
        stage = self.session.stage
        for widget in (self.level_label, self.level_box):
            widget.setVisible(stage in PER_LEVEL_STAGES)
        self.anchor_box.setVisible(stage == "anchors")
        for widget in (self.top_label, self.top_box, self.box_level_box):
            widget.setVisible(stage in DENSE_STAGES)
