"""Ground-truth panel: GT instances, RPN and ROI target summaries, and RPN recall against GT.

Shown for traces made with ground truth (``gt``, ``targets/rpn``, ``targets/rois`` stages).
Recall answers "could the later stages still find this object?": the share of GT boxes that some
anchor / refined anchor / proposal overlaps at IoU >= 0.5, computed here with numpy.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHeaderView, QLabel, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from mrcnn.boxes import compute_overlaps
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE
from viewer.export import export_widget_png
from viewer.panels.kit import SessionPanel

RECALL_IOU = 0.5
# (label, trace stage whose boxes are matched against GT), in pipeline order.
RECALL_SOURCES = (("Anchors", "anchors"), ("Refined anchors", "proposals/pre_nms"),
                  ("Proposals", "proposals/post_nms"))
_CHUNK = 50_000  # boxes per IoU block: 260k anchors x G at once would be a large matrix


def gt_recall(boxes, gt_boxes, iou: float = RECALL_IOU) -> float:
    """Share of [G, 4] GT boxes whose best IoU with any of [N, 4] ``boxes`` is >= ``iou``.

    Boxes are ``[y1, x1, y2, x2]`` in the same pixel frame. No GT gives 1.0 (nothing missed).
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(gt_boxes) == 0:
        return 1.0
    best = np.zeros(len(gt_boxes))
    for start in range(0, len(boxes), _CHUNK):
        best = np.maximum(best, compute_overlaps(gt_boxes, boxes[start:start + _CHUNK]).max(axis=1))
    return float(np.mean(best >= iou))


def recall_summary(trace, iou: float = RECALL_IOU) -> dict:
    """{label: (box count, recall)} for each RECALL_SOURCES stage the trace has.

    Crowd regions and padding (class id <= 0) are not objects to recall and are left out.
    """
    gt = trace["gt"]
    gt_boxes = np.asarray(gt["boxes"]).reshape(-1, 4)
    if "class_ids" in gt:
        gt_boxes = gt_boxes[np.asarray(gt["class_ids"]) > 0]
    out = {}
    for label, key in RECALL_SOURCES:
        if key in trace:
            boxes = trace[key]["boxes"]
            out[label] = (int(len(boxes)), gt_recall(boxes, gt_boxes, iou))
    return out


def rpn_match_summary(match) -> dict:
    """{"positive", "negative", "neutral"} anchor counts of a ``targets/rpn`` match array."""
    match = np.asarray(match)
    return {"positive": int(np.sum(match == POSITIVE)),
            "negative": int(np.sum(match == NEGATIVE)),
            "neutral": int(np.sum(match == NEUTRAL))}


def roi_target_summary(class_ids, class_names) -> dict:
    """{"positive", "negative", "per_class": {name: count}} of ``targets/rois`` class ids."""
    class_ids = np.asarray(class_ids).astype(np.int64)
    per_class = {}
    for class_id in np.unique(class_ids[class_ids > 0]):
        name = class_names[class_id] if class_id < len(class_names) else f"class {class_id}"
        per_class[name] = int(np.sum(class_ids == class_id))
    return {"positive": int(np.sum(class_ids > 0)), "negative": int(np.sum(class_ids == 0)),
            "per_class": per_class}


def _class_name(class_id: int, names: list[str]) -> str:
    if class_id < 0:
        return "crowd"
    return names[class_id] if class_id < len(names) else f"class {class_id}"


def _item(value, text: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(str(value) if text is None else text)
    if not isinstance(value, str):
        item.setData(Qt.UserRole, value)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


class GroundTruthPanel(SessionPanel):
    """GT instances (click one to select it everywhere), target summaries and RPN recall."""

    def __init__(self, session, parent=None):
        super().__init__(session, "No ground truth in this trace.\nTrace an image from a dataset "
                                  "(with its annotations) to compare the RPN and heads with "
                                  "ground truth.", parent)
        self.recall: dict = {}        # derived from the trace: {label: (box count, recall)}
        self.rpn_summary: dict | None = None
        self.roi_summary: dict | None = None
        self.set_content(self._build())
        self.follow(session.traceChanged, self._on_trace_changed, lambda: session.trace)
        session.selectionChanged.connect(self._on_selection_changed)
        self.sync()

    def _build(self) -> QWidget:
        self.gt_table = QTableWidget(0, 5)
        self.gt_table.setHorizontalHeaderLabels(["#", "Class", "Box [y1, x1, y2, x2]", "Box area",
                                                 "Mask area"])
        self.gt_table.verticalHeader().setVisible(False)
        self.gt_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.gt_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.gt_table.setSelectionMode(QAbstractItemView.SingleSelection)
        header = self.gt_table.horizontalHeader()
        for column in (0, 1, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.gt_table.itemSelectionChanged.connect(self._on_gt_row_selected)

        self.recall_table = QTableWidget(0, 3)
        self.recall_table.setHorizontalHeaderLabels(["Boxes", "Count",
                                                     f"Recall @ IoU {RECALL_IOU:g}"])
        self.recall_table.verticalHeader().setVisible(False)
        self.recall_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.recall_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.rpn_label = QLabel()
        self.roi_label = QLabel()
        for label in (self.rpn_label, self.roi_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        summaries = QWidget()
        summary_layout = QVBoxLayout(summaries)
        summary_layout.setContentsMargins(0, 0, 0, 0)
        for title, widget in (("RPN recall", self.recall_table),
                              ("RPN targets (anchor matches)", self.rpn_label),
                              ("Detection targets (sampled ROIs)", self.roi_label)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            summary_layout.addWidget(box)

        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.gt_table)
        splitter.addWidget(summaries)
        return splitter

    # ---- session -> view -----------------------------------------------------------------

    def _on_trace_changed(self, trace) -> None:
        has_gt = trace is not None and "gt" in trace
        self.show_content(has_gt)
        self.recall = recall_summary(trace) if has_gt else {}
        self._fill_gt_table(trace if has_gt else None)
        self._fill_recall()
        self._fill_target_summaries(trace if has_gt else None)

    def _fill_gt_table(self, trace) -> None:
        table = self.gt_table
        table.blockSignals(True)
        table.setRowCount(0)
        if trace is not None:
            gt = trace["gt"]
            boxes = np.asarray(gt["boxes"]).reshape(-1, 4)
            class_ids = np.asarray(gt.get("class_ids", np.zeros(len(boxes), np.int64)))
            masks = gt.get("masks")
            names = trace.class_names
            table.setRowCount(len(boxes))
            for row, (box, class_id) in enumerate(zip(boxes, class_ids)):
                area = float((box[2] - box[0]) * (box[3] - box[1]))
                mask_area = int(np.count_nonzero(masks[..., row])) if masks is not None \
                    and masks.ndim == 3 and row < masks.shape[-1] else None
                cells = (_item(row), _item(_class_name(int(class_id), names)),
                         _item(", ".join(f"{v:.0f}" for v in box)), _item(area, f"{area:,.0f}"),
                         _item(mask_area, "-" if mask_area is None else f"{mask_area:,}"))
                for column, cell in enumerate(cells):
                    table.setItem(row, column, cell)
        table.blockSignals(False)
        self._on_selection_changed(self.session.selection)

    def _fill_recall(self) -> None:
        table = self.recall_table
        table.setRowCount(len(self.recall))
        for row, (label, (count, recall)) in enumerate(self.recall.items()):
            table.setItem(row, 0, _item(label))
            table.setItem(row, 1, _item(count, f"{count:,}"))
            table.setItem(row, 2, _item(recall, f"{100 * recall:.1f} %"))

    def _fill_target_summaries(self, trace) -> None:
        self.rpn_summary = self.roi_summary = None
        if trace is not None and "targets/rpn" in trace:
            self.rpn_summary = rpn_match_summary(trace["targets/rpn"]["match"])
            s = self.rpn_summary
            self.rpn_label.setText(f"positive {s['positive']:,}   negative {s['negative']:,}   "
                                   f"neutral {s['neutral']:,}")
        else:
            self.rpn_label.setText("No RPN targets in this trace.")
        if trace is not None and "targets/rois" in trace:
            self.roi_summary = roi_target_summary(trace["targets/rois"]["class_ids"],
                                                  trace.class_names)
            s = self.roi_summary
            per_class = ", ".join(f"{name}: {n}" for name, n in s["per_class"].items()) or "none"
            text = (f"positive {s['positive']}   negative {s['negative']}\n"
                    f"positives per class: {per_class}")
            if s["positive"] == 0:
                # Negatives are sampled in proportion to positives (matterport), so none either.
                text += ("\nNo proposal overlaps a GT box at IoU >= 0.5, so no ROIs are sampled "
                         "(negatives are drawn in proportion to positives).")
            self.roi_label.setText(text)
        else:
            self.roi_label.setText("No detection targets in this trace.")

    def _on_selection_changed(self, selection) -> None:
        row = selection.index if selection is not None and selection.kind == "gt" else None
        table = self.gt_table
        table.blockSignals(True)
        if row is not None and 0 <= row < table.rowCount():
            table.selectRow(row)
            table.scrollToItem(table.item(row, 0))
        else:
            table.clearSelection()
        table.blockSignals(False)

    # ---- user -> session -----------------------------------------------------------------

    def _on_gt_row_selected(self) -> None:
        rows = {index.row() for index in self.gt_table.selectedIndexes()}
        if rows:
            self.session.select("gt", min(rows))

    def export_png(self, path):
        """Write the panel as shown to ``path`` (PNG)."""
        return export_widget_png(self, path)
