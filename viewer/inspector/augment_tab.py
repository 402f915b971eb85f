"""The "Augmentation" tab: the molded image and a few augmented versions of it, side by side.

Each version is ``load_image_gt(..., augmentation, rng=default_rng(seed))`` for consecutive
seeds, so a version can be reproduced exactly; "Re-roll" moves to the next seeds. The spec is
the CLI string ``mrcnn.data.augment.parse_augmentation`` reads ("hflip=1,scale=0.8-1.2").
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton, QSpinBox

from mrcnn.data.augment import parse_augmentation
from viewer.inspector.graphics import (TEXT_COLOUR, ImageBox, class_labels, draw_instances,
                                       mask_overlay)
from viewer.inspector.tabs import InspectorTab, _escape

DEFAULT_AUGMENTATION = "hflip,vflip=0.2,scale=0.8-1.2,brightness=0.1,contrast=0.2"
DEFAULT_VERSIONS = 5
MAX_VERSIONS = 12
GRID_COLUMNS = 3


class AugmentationTab(InspectorTab):
    """Original + ``versions`` augmented copies of the molded image with boxes and masks."""

    title = "Augmentation"

    def __init__(self, data, parent=None):
        super().__init__(data, parent)
        self.controls.addWidget(QLabel("Augmentation:"))
        self.spec_edit = QLineEdit(DEFAULT_AUGMENTATION)
        self.spec_edit.setToolTip("Comma-separated: hflip[=P], vflip[=P], scale=LOW-HIGH, crop=F, "
                                  "brightness=F, contrast=F (as mrcnn train --augment)")
        self.spec_edit.setMinimumWidth(260)
        self.spec_edit.returnPressed.connect(self.redraw)
        self.controls.addWidget(self.spec_edit, 1)
        self.controls.addWidget(QLabel("Versions:"))
        self.versions_box = QSpinBox(minimum=1, maximum=MAX_VERSIONS, value=DEFAULT_VERSIONS)
        self.versions_box.valueChanged.connect(self.redraw)
        self.controls.addWidget(self.versions_box)
        self.reroll_button = QPushButton("Re-roll")
        self.reroll_button.setToolTip("Draw new random versions (the next seeds)")
        self.reroll_button.clicked.connect(self.reroll)
        self.controls.addWidget(self.reroll_button)
        self.masks_box = self._check("Masks")
        self.first_seed = 0
        self.augmentation = parse_augmentation(DEFAULT_AUGMENTATION)
        self.original = None
        self.versions: list = []   # Molded per augmented version
        self.seeds: list[int] = []
        self.cells: list[ImageBox] = []
        self.cell_titles: list = []

    def set_augmentation(self, text: str) -> None:
        """Use the spec ``text`` (as typed in the field) and draw."""
        self.spec_edit.setText(text)
        self.redraw()

    def reroll(self) -> None:
        self.first_seed += self.versions_box.value()
        self.redraw()

    def draw(self, row: int) -> None:
        problem = self._parse()
        count = self.versions_box.value()
        self.seeds = list(range(self.first_seed, self.first_seed + count))
        self.original = self.data.molded(row)
        self.versions = self.data.augmented(row, self.augmentation, self.seeds)
        self._ensure_cells(count + 1)
        self._draw_cell(0, self.original, "original (molded)")
        for index, (seed, molded) in enumerate(zip(self.seeds, self.versions), start=1):
            self._draw_cell(index, molded, f"seed {seed}")
        spec = self.augmentation.to_text() if self.augmentation is not None else "none"
        self.heading.setText(f"{row}: {self.data.name(row)} — augmentation {spec} — seeds "
                             f"{self.seeds[0]}..{self.seeds[-1]}")
        note = ("Boxes are recomputed from the augmented masks (load_image_gt); an instance "
                "pushed out of the image is dropped.")
        if problem:
            note = f"<span style='color:#ff6060'>{_escape(problem)}</span> {note}"
        elif self.augmentation is None:
            note = "No augmentation: every version equals the original. " + note
        self.info.setText(note)

    def _parse(self) -> str:
        """Parse the field into ``augmentation``; a bad spec keeps the last good one."""
        try:
            self.augmentation = parse_augmentation(self.spec_edit.text())
        except ValueError as error:
            return f"{error} — showing the last valid augmentation."
        return ""

    def _ensure_cells(self, count: int) -> None:
        if len(self.cells) == count:
            return
        layout = self.view.ci
        layout.clear()
        self.heading = layout.addLabel("", row=0, col=0, colspan=GRID_COLUMNS, color=TEXT_COLOUR)
        self.cells, self.cell_titles = [], []
        for index in range(count):
            cell = layout.addLayout(row=1 + index // GRID_COLUMNS, col=index % GRID_COLUMNS)
            self.cell_titles.append(cell.addLabel("", row=0, col=0, color=TEXT_COLOUR, size="9pt"))
            self.cells.append(ImageBox(cell.addViewBox(row=1, col=0)))

    def _draw_cell(self, index: int, molded, title: str) -> None:
        cell = self.cells[index]
        cell.set_image(molded.image)
        cell.set_masks(mask_overlay(molded.masks, molded.class_ids)
                       if self.masks_box.isChecked() else None)
        draw_instances(cell, self.data, molded.boxes, molded.class_ids)
        cell.set_labels(class_labels(self.data, molded.boxes, molded.class_ids))
        count = len(molded.class_ids)
        self.cell_titles[index].setText(f"{title} — {count} instance{'' if count == 1 else 's'}")

    def version_boxes(self) -> list[np.ndarray]:
        """[N, 4] boxes of each augmented version, as drawn."""
        return [molded.boxes for molded in self.versions]
