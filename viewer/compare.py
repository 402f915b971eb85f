"""Compare two checkpoints on one image: both traces side by side, views and stage linked.

``CompareWindow`` traces the image with model A, then model B, on one worker thread (a
``viewer.workers.JobRunner`` running ``TraceWorker`` jobs), never blocking the GUI. Each side is a
``CanvasPanel`` over its own ``Session``; zoom / pan, the stage, the score threshold and the
overlays are shared. Below, a table pairs A's and B's detections (same class, IoU >= 0.5) and
another gives per-stage counts and times with B - A. A side that fails says so inline, naming A
or B; the other side still shows. No TensorFlow here: it loads inside the worker thread.

The pairing and counting live in ``viewer.compare_data`` (no Qt), one side's widgets in
``viewer.compare_side`` and the PNG export in ``viewer.compare_export``; the names callers use
are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QImage, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QLabel, QMainWindow, QSplitter, QToolBar,
                               QVBoxLayout, QWidget)

from viewer.compare_data import (COUNTLESS_STAGES, IOU_THRESHOLD, ONLY_A, ONLY_B, TIME_PREFIX,
                                 DetectionPair, count_rows, detections_above, pair_detections,
                                 stage_counts)
from viewer.compare_export import PNG_SCALE, render_side_by_side, save_side_by_side
from viewer.compare_runners import keep_runner, retire_runner
from viewer.compare_side import DEFAULT_STAGE, ERROR_HINT_STYLE, CompareSide
from viewer.compare_tables import fill_counts_table, fill_pair_row, read_only_table
from viewer.stages import STAGE_KEYS, VIEW_STAGES
from viewer.status_bar import build_busy_status_bar, screen_fitted_size
from viewer.workers import JobRunner, ModelSpec, TraceWorker

# Re-exported: callers and tests import these from viewer.compare.
__all__ = ["COUNTLESS_STAGES", "ERROR_HINT_STYLE", "IOU_THRESHOLD", "ONLY_A", "ONLY_B",
           "TIME_PREFIX", "CompareSide", "CompareWindow", "DetectionPair", "count_rows",
           "pair_detections", "stage_counts"]

SIDE_NAMES = ("A", "B")
PAIR_COLUMNS = ("class", "score A", "score B", "IoU", "match")
COUNT_COLUMNS = ("stage", "A", "B", "B − A")
DEFAULT_SIZE = (1400, 940)


class CompareWindow(QMainWindow):
    """Two checkpoints on one image, side by side.

    ``specs`` / ``labels``: models A and B and how to name them. ``worker_factory(image_path,
    spec, model, class_names[, source=...])`` -> TraceWorker (as ``Document.worker_factory``;
    tests inject fake loaders). ``source``: a dataset image (``viewer.datasets.DatasetImage``)
    or ``viewer.shown_image.TraceImage`` traced instead of the file ``image_path`` (which may
    then be None), with its ground truth. Closing the window cancels the tracing.
    """

    def __init__(self, image_path: str | None, specs: tuple[ModelSpec, ModelSpec],
                 labels: tuple[str, str], parent=None, worker_factory=None, source=None):
        super().__init__(parent)
        if len(specs) != 2 or len(labels) != 2:
            raise ValueError(f"CompareWindow needs two models and two labels, got {len(specs)} "
                             f"and {len(labels)}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if image_path is None and source is None:
            raise ValueError("CompareWindow needs an image file or a source image to trace")
        self.source = source
        self.image_path = os.fspath(image_path) if image_path is not None else None
        # What titles, the sides' image path and export names show.
        self.image_name = source.name if source is not None else Path(self.image_path).name
        self.worker_factory = worker_factory or TraceWorker
        # No parent: it may outlive the window (see compare_runners), a worker step cannot be
        # cut short.
        self.runner = JobRunner()
        keep_runner(self.runner)
        self.sides = [CompareSide(name, str(label), spec, self)
                      for name, label, spec in zip(SIDE_NAMES, labels, specs)]
        self.pairs: list[DetectionPair] = []
        self.rows: list[tuple] = []
        self._current: int | None = None   # side being traced
        self._syncing = False
        self.setWindowTitle(f"Compare — {self.image_name} — "
                            f"{labels[0]} vs {labels[1]}")
        self.resize(*self._default_size())
        self._build()
        self._link_sides()
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.destroyed.connect(lambda *_, runner=self.runner: retire_runner(runner))
        self._update_tables()
        self._start_side(0)

    # ---- construction --------------------------------------------------------------------

    def _default_size(self):
        return screen_fitted_size(self, DEFAULT_SIZE)

    def _build(self):
        toolbar = QToolBar("Compare")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        toolbar.addWidget(QLabel(" Stage "))
        self.stage_box = QComboBox()
        for stage in VIEW_STAGES:
            self.stage_box.addItem(stage.title, stage.key)
            self.stage_box.setItemData(self.stage_box.count() - 1, stage.tooltip,
                                       Qt.ItemDataRole.ToolTipRole)
        self.stage_box.setCurrentIndex(STAGE_KEYS.index(DEFAULT_STAGE))
        self.stage_box.setToolTip("Pipeline stage shown by both sides (Left / Right step it)")
        self.stage_box.currentIndexChanged.connect(
            lambda _: self.set_stage(self.stage_box.currentData()))
        toolbar.addWidget(self.stage_box)
        toolbar.addSeparator()
        self._action(toolbar, "Fit", self.fit_view, ["F"], "Show the whole image on both sides")
        self._action(toolbar, "Clear selection", self.escape, ["Esc"],
                     "Esc: clear the selection; with nothing selected, close the window")
        self._action(toolbar, "Export PNG…", self.export_png, ["Ctrl+E"],
                     "Both views, side by side, as one PNG")
        self._action(None, "Previous stage", lambda: self.step_stage(-1), ["Left", "PgUp"])
        self._action(None, "Next stage", lambda: self.step_stage(1), ["Right", "PgDown"])
        self._action(None, "Close", self.close, ["Ctrl+W"])

        canvases = QSplitter(Qt.Orientation.Horizontal)
        for side in self.sides:
            canvases.addWidget(side.widget)
        canvases.setSizes([1, 1])
        canvases.setChildrenCollapsible(False)
        self.canvases = canvases

        self.pairs_hint = QLabel()
        self.pairs_hint.setWordWrap(True)
        self.pairs_hint.setContentsMargins(6, 2, 6, 2)
        self.pairs_table = read_only_table(
            PAIR_COLUMNS, f"A's and B's detections paired by class and IoU ≥ {IOU_THRESHOLD}; "
                          "click a row to highlight the pair on both sides")
        self.pairs_table.itemSelectionChanged.connect(self._on_pair_selected)
        self.counts_table = read_only_table(COUNT_COLUMNS, "Items per trace stage and milliseconds "
                                            "per step for A and B", stretch_column=0)
        tables = QSplitter(Qt.Orientation.Horizontal)
        tables.addWidget(self._titled("Detections", self.pairs_hint, self.pairs_table))
        tables.addWidget(self._titled("Per-stage counts and times", None, self.counts_table))
        tables.setSizes([3, 2])
        tables.setChildrenCollapsible(False)

        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(canvases)
        main.addWidget(tables)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        main.setChildrenCollapsible(False)
        self.setCentralWidget(main)
        self._main_splitter = main
        self._build_status_bar()

    def _titled(self, title, hint, table):
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        heading = QLabel(f"<b>{title}</b>")
        heading.setContentsMargins(4, 2, 4, 0)
        layout.addWidget(heading)
        if hint is not None:
            layout.addWidget(hint)
        layout.addWidget(table, 1)
        box.setMinimumSize(280, 150)
        return box

    def _build_status_bar(self):
        self.status_label, self.busy_bar, self.cancel_button = build_busy_status_bar(
            self, self.cancel, "Stop tracing; what is already traced stays")

    def _action(self, toolbar, text, slot, shortcuts=(), tip=""):
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
        action.triggered.connect(lambda *_: slot())
        self.addAction(action)
        if toolbar is not None:
            toolbar.addAction(action)
        return action

    def _link_sides(self):
        """Zoom / pan, threshold, overlays, level and selection: what one side does, both do."""
        side_a, side_b = self.sides
        side_b.canvas.vb.setXLink(side_a.canvas.vb)
        side_b.canvas.vb.setYLink(side_a.canvas.vb)
        for this, other in ((side_a, side_b), (side_b, side_a)):
            this.session.scoreThresholdChanged.connect(other.session.set_score_threshold)
            this.session.overlaysChanged.connect(
                lambda shown, o=other: [o.session.set_overlay(k, v) for k, v in shown.items()])
            this.canvas.level_box.valueChanged.connect(other.canvas.set_level)
            this.canvas.anchor_box.currentTextChanged.connect(
                other.canvas.anchor_box.setCurrentText)
            this.session.selectionChanged.connect(
                lambda selection, s=this: self._on_canvas_selection(s, selection))
        side_a.session.scoreThresholdChanged.connect(lambda _: self._update_tables())

    # ---- tracing -------------------------------------------------------------------------

    def _start_side(self, index: int) -> None:
        side = self.sides[index]
        self._current = index
        side.set_state("tracing")
        self._set_busy(True)
        self.status_label.setText(f"[{index + 1}/2] {side.heading}: starting…")
        try:
            extra = {"source": self.source} if self.source is not None else {}
            worker = self.worker_factory(self.image_path, side.spec, None, None, **extra)
            worker.stats_fn = False  # weight statistics are not compared
        except Exception as error:  # noqa: BLE001 - a bad spec fails this side only
            self._on_failed("Cannot start tracing", f"{type(error).__name__}: {error}")
            return
        self.runner.start(worker)

    def _on_progress(self, text: str) -> None:
        if self._current is None:
            return
        side = self.sides[self._current]
        text = text if text.endswith("…") else f"{text}…"
        side.set_state("tracing", text[:1].lower() + text[1:])
        self.status_label.setText(f"[{self._current + 1}/2] {side.heading}: {text}")

    def _on_finished(self, result) -> None:
        side, other = self.sides[self._current], self.sides[1 - self._current]
        # B's trace resets its view to the whole image; keep A's zoom (the views are linked).
        keep = other.canvas.vb.viewRange() if other.trace is not None else None
        side.show_trace(result.trace, self.image_path or self.image_name)
        if keep is not None:
            other.canvas.vb.setRange(xRange=keep[0], yRange=keep[1], padding=0)
        self._next()

    def _on_failed(self, title: str, message: str) -> None:
        self.sides[self._current].fail(title, message)
        self._next()

    def _on_cancelled(self) -> None:
        for side in self.sides:
            if side.state in ("waiting", "tracing"):
                side.set_state("cancelled")
        self._current = None
        self._set_busy(False)
        self.status_label.setText("Cancelled.")
        self._update_tables()

    def _next(self) -> None:
        if self._current == 0:
            self._start_side(1)
            self._update_tables()
            return
        self._current = None
        self._set_busy(False)
        self._update_tables()
        failed = [s.name for s in self.sides if s.error]
        self.status_label.setText(
            f"{' and '.join(failed)} failed; see the message above "
            f"{'its' if len(failed) == 1 else 'their'} view." if failed else
            f"Traced with A ({self.sides[0].summary()}) and B ({self.sides[1].summary()}).")

    def is_busy(self) -> bool:
        return self._current is not None

    def cancel(self) -> None:
        """Stop tracing; a side already traced stays."""
        if self.runner.is_busy():
            self.runner.cancel()

    def _set_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def closeEvent(self, event):
        self.cancel()
        super().closeEvent(event)

    # ---- stage, view, selection ------------------------------------------------------------

    def set_stage(self, key: str) -> None:
        """Show viewer stage ``key`` (a viewer.stages key) on both sides."""
        for side in self.sides:
            side.session.set_stage(key)
        index = STAGE_KEYS.index(key)
        if self.stage_box.currentIndex() != index:
            self.stage_box.setCurrentIndex(index)

    def step_stage(self, delta: int) -> None:
        index = STAGE_KEYS.index(self.sides[0].session.stage)
        self.set_stage(STAGE_KEYS[max(0, min(len(STAGE_KEYS) - 1, index + delta))])

    def fit_view(self) -> None:
        traced = [s for s in self.sides if s.trace is not None]
        if traced:
            height, width = traced[0].trace.image.shape[:2]
            traced[0].canvas.vb.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def clear_selection(self) -> None:
        self.pairs_table.clearSelection()
        for side in self.sides:
            side.session.select(None)

    def escape(self) -> None:
        """Esc: clear the selection, or close the window when nothing is selected."""
        if any(side.session.selection is not None for side in self.sides) \
                or self.pairs_table.selectionModel().hasSelection():
            self.clear_selection()
        else:
            self.close()

    def select_pair(self, row: int) -> None:
        """Select row ``row`` of the detections table: its detections on both sides."""
        self.pairs_table.selectRow(row)

    def _on_pair_selected(self):
        rows = self.pairs_table.selectionModel().selectedRows()
        if self._syncing or not rows:
            return
        pair = self.pairs[rows[0].row()]
        self._syncing = True
        try:
            for side, detection in zip(self.sides, (pair.a, pair.b)):
                if detection is None:
                    side.session.select(None)
                else:
                    side.session.select("detection", detection)
        finally:
            self._syncing = False

    def _on_canvas_selection(self, side, selection):
        """A detection clicked on one side selects its table row, hence its partner."""
        if self._syncing:
            return
        attr = "a" if side is self.sides[0] else "b"
        rows = [] if selection is None or selection.kind != "detection" else \
            [i for i, pair in enumerate(self.pairs) if getattr(pair, attr) == selection.index]
        if rows:
            self.pairs_table.selectRow(rows[0])
            self.pairs_table.scrollToItem(self.pairs_table.item(rows[0], 0))
        else:
            self._syncing = True
            self.pairs_table.clearSelection()
            self._syncing = False

    # ---- tables --------------------------------------------------------------------------

    def _update_tables(self) -> None:
        self._fill_counts()
        self._fill_pairs()

    def _fill_counts(self):
        self.rows = count_rows(self.sides[0].trace, self.sides[1].trace)
        fill_counts_table(self.counts_table, self.rows)

    def _fill_pairs(self):
        side_a, side_b = self.sides
        threshold = side_a.session.score_threshold
        self.pairs = []
        if side_a.trace is not None and side_b.trace is not None:
            hint = self._pair()
        else:
            missing = [s for s in self.sides if s.trace is None]
            hint = "; ".join(
                f"{s.name} failed: nothing to pair with" if s.error else
                f"{s.name} was cancelled" if s.state == "cancelled" else
                f"waiting for {s.name}" for s in missing)
        table = self.pairs_table
        self._syncing = True
        try:
            table.clearSelection()
            table.setRowCount(len(self.pairs))
            for row, pair in enumerate(self.pairs):
                self._fill_pair_row(row, pair)
        finally:
            self._syncing = False
        self.pairs_hint.setText(hint or f"IoU ≥ {IOU_THRESHOLD}, same class, "
                                        f"score ≥ {threshold:.2f}")

    def _pair(self) -> str:
        """Pair the two traces' detections into ``self.pairs``; a one-line summary."""
        threshold = self.sides[0].session.score_threshold
        traces = [s.trace for s in self.sides]
        if not all("detections" in t for t in traces):
            return "A trace has no detections stage."
        rows_a, boxes_a, names_a, scores_a = detections_above(traces[0], threshold)
        rows_b, boxes_b, names_b, scores_b = detections_above(traces[1], threshold)
        self.pairs = pair_detections(boxes_a, names_a, scores_a, boxes_b, names_b, scores_b,
                                     rows_a, rows_b)
        paired = sum(p.status == "paired" for p in self.pairs)
        text = (f"{paired} paired, {sum(p.status == ONLY_A for p in self.pairs)} only A, "
                f"{sum(p.status == ONLY_B for p in self.pairs)} only B (same class, IoU ≥ "
                f"{IOU_THRESHOLD}, score ≥ {threshold:.2f})")
        names = [t.class_names for t in traces]
        if names[0] != names[1]:
            text += (f". Note: A has {len(names[0])} classes, B {len(names[1])}"
                     if len(names[0]) != len(names[1]) else ". Note: A and B name their classes "
                                                             "differently") + \
                "; detections are paired by class name"
        return text

    def _fill_pair_row(self, row, pair):
        fill_pair_row(self.pairs_table, row, pair)

    # ---- export --------------------------------------------------------------------------

    def render_side_by_side(self, scale: int = PNG_SCALE) -> QImage:
        """Both views as one image, each under its heading; a failed side shows its error."""
        return render_side_by_side(self.sides, scale)

    def export_png(self, path=None):
        """Write both views side by side to ``path`` (asks when None); the path, or None."""
        if path is None:
            stem = Path(self.image_name).stem
            path, _ = QFileDialog.getSaveFileName(self, "Export comparison as PNG",
                                                  f"{stem}_compare.png", "PNG (*.png)")
            if not path:
                return None
        try:
            path = save_side_by_side(self.sides, path)
        except OSError as error:
            self.status_label.setText(f"Export failed: {error}")
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(self, "Export failed", f"{error}\n\nWhat to do: choose a folder "
                                                        "you can write to, with free space.")
            return None
        self.status_label.setText(f"Exported {path}")
        return path
