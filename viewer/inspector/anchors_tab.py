"""The "Anchors" tab: pyramid anchors matched to the GT boxes by ``build_rpn_targets``.

Positive anchors green, negative red, neutral grey, the positives moved by their target deltas
dashed cyan, the GT boxes white — on the molded image, one pyramid level or all of them. Each
state is one batched curve however many anchors it holds (a 1024 image has ~260k anchors).
Counts per level sit under the picture.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox

from viewer.inspector.data import LEVELS
from viewer.inspector.graphics import DASH, SOLID, ImageBox
from viewer.inspector.tabs import InspectorTab

ALL_LEVELS = "All levels"
MATCH_NAMES = ("positive", "negative", "neutral")
# Neutral anchors (and negatives when not sampled) can be most of ~260k anchors: beyond this
# many per state an even sample is drawn (the counts stay exact).
DRAW_LIMIT = 20000
# state -> (rgba, width, pen style, z)
ANCHOR_STYLES = {
    "neutral": ((170, 170, 170, 70), 1.0, SOLID, 3),
    "negative": ((255, 80, 80, 150), 1.0, SOLID, 4),
    "positive": ((60, 255, 90, 255), 2.0, SOLID, 6),
    "gt": ((255, 255, 255, 255), 2.0, SOLID, 7),
    # Above the GT: a positive refined by its exact target deltas lands on its GT box.
    "refined": ((40, 200, 255, 255), 2.0, DASH, 8),
}
STATE_TIPS = {
    "positive": "IoU >= 0.7 with a GT box, or a GT box's best anchor (sampled)",
    "negative": "IoU < 0.3 with every GT box (sampled)",
    "neutral": "between the thresholds, touching a crowd region, or not sampled",
    "refined": "positive anchors moved by their target deltas (dashed; they land on the GT)",
    "gt": "ground-truth boxes of the molded image",
}


class AnchorsTab(InspectorTab):
    """Anchors of one level (or all) in their match states, with counts."""

    title = "Anchors"

    def __init__(self, data, parent=None):
        super().__init__(data, parent)
        self.controls.addWidget(QLabel("Level:"))
        self.level_box = QComboBox()
        self.level_box.addItems([ALL_LEVELS] + [f"P{level}" for level in LEVELS])
        self.level_box.setToolTip("Pyramid level whose anchors are drawn")
        self.level_box.currentIndexChanged.connect(self.redraw)
        self.controls.addWidget(self.level_box)
        self.state_boxes = {name: self._check(name.capitalize() if name != "gt" else "GT",
                                              checked=name != "neutral", tip=STATE_TIPS[name])
                            for name in ("positive", "negative", "neutral", "refined", "gt")}
        self.sample_box = self._check("Sample as in training", tip=(
            "Keep at most RPN_TRAIN_ANCHORS_PER_IMAGE anchors (half positive), the rest neutral; "
            "off: every anchor keeps the state its IoU gives it"))
        self.controls.addWidget(QLabel("Seed:"))
        self.seed_box = QSpinBox(minimum=0, maximum=999999, value=0)
        self.seed_box.setToolTip("Seed of the sampling (np.random.default_rng(seed))")
        self.seed_box.valueChanged.connect(self.redraw)
        self.controls.addWidget(self.seed_box)
        self.controls.addStretch(1)
        self.image = ImageBox(self.view.addViewBox(row=1, col=0))
        self.matches = None
        self.drawn: dict[str, int] = {}

    @property
    def level(self) -> int | None:
        """The selected pyramid level (2..6), None for all levels."""
        text = self.level_box.currentText()
        return None if text == ALL_LEVELS else int(text[1:])

    def set_level(self, level: int | None) -> None:
        self.level_box.setCurrentText(ALL_LEVELS if level is None else f"P{level}")

    def counts(self, level: int | None = None) -> dict:
        """Match-state counts of the drawn image on ``level`` (None: all levels)."""
        return self.matches.counts(level) if self.matches is not None else {}

    def draw(self, row: int) -> None:
        matches = self.matches = self.data.anchor_matches(
            row, seed=self.seed_box.value(), subsample=self.sample_box.isChecked())
        self.image.set_image(self.data.molded(row, self.seed_box.value()).image)
        level = self.level
        groups = {name: matches.state_boxes(name, level)
                  for name in ("positive", "negative", "neutral")}
        groups["refined"] = matches.refined_boxes(level)
        groups["gt"] = matches.gt_boxes[matches.gt_class_ids != 0]
        self.drawn = {}
        for name, boxes in groups.items():
            if not self.state_boxes[name].isChecked():
                boxes = boxes[:0]
            elif len(boxes) > DRAW_LIMIT:
                boxes = boxes[np.linspace(0, len(boxes) - 1, DRAW_LIMIT).astype(int)]
            rgba, width, style, z = ANCHOR_STYLES[name]
            self.image.set_boxes(name, boxes, rgba, width, style, z)
            self.drawn[name] = len(boxes)
        self.image.frame(margin=0.15)
        counts = matches.counts(level)
        where = "all levels" if level is None else f"P{level}"
        self.heading.setText(
            f"{row}: {self.data.name(row)} — {where}: {counts['positive']} positive, "
            f"{counts['negative']} negative, {counts['neutral']} neutral of {counts['total']}")
        self.info.setText(self._table(matches, level))

    def _table(self, matches, level) -> str:
        """HTML table of the counts per level (the selected one bold)."""
        header = "".join(f"<th style='padding:0 8px'>{h}</th>"
                         for h in ("level", "positive", "negative", "neutral", "total"))
        rows = []
        for value in list(LEVELS) + [None]:
            counts = matches.counts(value)
            cells = [f"P{value}" if value is not None else "all"] + [
                str(counts[k]) for k in ("positive", "negative", "neutral", "total")]
            weight = "bold" if value == level else "normal"
            rows.append(f"<tr style='font-weight:{weight}'>" + "".join(
                f"<td align='right' style='padding:0 8px'>{c}</td>" for c in cells) + "</tr>")
        counts = matches.counts(level)
        thinned = [name for name in MATCH_NAMES if self.state_boxes[name].isChecked()
                   and self.drawn.get(name, 0) < counts[name]]
        note = (f"<br>{', '.join(thinned).capitalize()} anchors: an even sample of {DRAW_LIMIT} "
                f"is drawn." if thinned else "")
        sampled = (f"sampled to RPN_TRAIN_ANCHORS_PER_IMAGE = "
                   f"{self.data.config.RPN_TRAIN_ANCHORS_PER_IMAGE}"
                   if self.sample_box.isChecked() else "not sampled")
        return (f"<table>{'<tr>' + header + '</tr>'}{''.join(rows)}</table>"
                f"Anchors matched by build_rpn_targets, {sampled}, seed {self.seed_box.value()}."
                + note)
