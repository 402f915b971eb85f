"""The Training panel: runs list, progress, loss curves, log, checkpoints, TensorBoard.

State lives in ``RunsModel`` / ``RunRecord`` (``viewer.training.runs``); this widget draws the
selected run and turns button presses into calls on it. It lays itself out in a row when it is
wide (a bottom dock) and in a column when it is tall (a right-hand tab).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QLabel, QListView,
                               QListWidget, QListWidgetItem, QMessageBox, QProgressBar,
                               QPushButton, QSplitter, QVBoxLayout, QWidget)

from viewer.training.closing import confirm_stop_runs, stop_all_and_wait
from viewer.training.continue_run import (ask_extra_epochs, can_continue, continue_request,
                                          install_runs_menu)
from viewer.training.log_view import TrainingLog
from viewer.training.loss_plot import LossPlot
from viewer.training.process import STOPPING
from viewer.training.tensorboard_controls import TensorBoardControls
from viewer.training.request import TrainRequest
from viewer.training.runs import FAILED, INTERRUPTED, RunRecord, RunsModel

RUNS_ROOT_KEY = "training/runs_root"
WIDE_RATIO = 1.6  # width / height above which the parts sit side by side
STOP_TIP = "Finish the current step, write a checkpoint and stop (press again to kill)"
CHECKPOINT_HINT = "Ctrl+click: pick two to compare"  # one line in a narrow dock
CHECKPOINT_HINT_TIP = ("Double-click a checkpoint to load it; Ctrl+click (Shift+click for a "
                       "range) selects a second one, then Compare… shows the two side by side")


def default_runs_root() -> str:
    return str(Path(os.getcwd()) / "runs")


class TrainingPanel(QWidget):
    """Runs list, progress, loss curves, log and checkpoints of the selected run.

    ``loadCheckpoint(weights, config)`` and ``compareCheckpoints(weights_a, weights_b, config)``
    ask the window to show checkpoints; ``runStarted(run_dir)`` says a run was started here.
    """

    loadCheckpoint = Signal(str, str)
    compareCheckpoints = Signal(str, str, str)
    runStarted = Signal(str)

    def __init__(self, settings: QSettings | None = None, current_dataset=None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.current_dataset = current_dataset or (lambda: None)
        self.model = RunsModel(self)
        self.record: RunRecord | None = None
        self.tensorboard_controls = TensorBoardControls(self._selected_tb_path, self)
        self.tensorboard = self.tensorboard_controls.process
        self._build()
        self.model.runStarted.connect(lambda record: self.runStarted.emit(str(record.path)))
        self.set_runs_root(self.runs_root, remember=False)

    # ---- construction ------------------------------------------------------------------------

    def _build(self) -> None:
        self.new_button = self._button("New run…", self.new_run, "Start a training run")
        self.stop_button = self._button("Stop", self.stop_selected, STOP_TIP)
        self.resume_button = self._button("Resume", self.resume_selected,
                                          "Continue the run from its last good checkpoint")
        self.continue_button = self._button("Continue training…", self.continue_selected,
                                            "Train this finished run more epochs (from its "
                                            "last checkpoint, same settings)")
        controls = self.tensorboard_controls
        self.tb_button, self.tb_label, self.tb_copy = (controls.button, controls.label,
                                                       controls.copy_button)
        buttons = QHBoxLayout()
        for widget in (self.new_button, self.stop_button, self.resume_button,
                       self.continue_button, self.tb_button):
            buttons.addWidget(widget)
        buttons.addWidget(self.tb_label, 1)
        buttons.addWidget(self.tb_copy)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.lists_splitter = QSplitter(Qt.Orientation.Vertical)
        self.lists_splitter.setChildrenCollapsible(False)
        self.lists_splitter.addWidget(self._build_runs_list())
        self.lists_splitter.addWidget(self._build_checkpoints())
        self.splitter.addWidget(self.lists_splitter)
        self.splitter.addWidget(self._build_progress_and_plot())
        self.splitter.addWidget(self._build_log())
        self.splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.splitter, 1)
        self._update_buttons()

    def _button(self, text, slot, tip) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda *_: slot())
        return button

    def _titled(self, title, widget, *extra) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        label = QLabel(f"<b>{title}</b>")
        layout.addWidget(label)
        layout.addWidget(widget, 1)
        for item in extra:
            layout.addLayout(item) if isinstance(item, QHBoxLayout) else layout.addWidget(item)
        box.title_label = label
        return box

    def _build_runs_list(self) -> QWidget:
        self.runs_view = QListView()
        self.runs_view.setModel(self.model)
        self.runs_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_view.selectionModel().currentChanged.connect(
            lambda current, _: self.select_record(self.model.record(current.row())))
        install_runs_menu(self)  # right-click: Resume, Continue training…
        self.runs_box = self._titled("Runs", self.runs_view)
        return self.runs_box

    def _build_checkpoints(self) -> QWidget:
        self.checkpoint_list = QListWidget()
        self.checkpoint_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.checkpoint_list.itemSelectionChanged.connect(self._update_buttons)
        self.checkpoint_list.itemDoubleClicked.connect(lambda *_: self.load_selected_checkpoint())
        self.load_button = self._button("Load checkpoint", self.load_selected_checkpoint,
                                        "Open the selected checkpoint in the pipeline view")
        self.compare_button = self._button("Compare…", self.compare_selected_checkpoints,
                                           "Compare two selected checkpoints side by side "
                                           "(Ctrl+click to select two)")
        row = QHBoxLayout()
        row.addWidget(self.load_button)
        row.addWidget(self.compare_button)
        self.checkpoint_hint = QLabel(CHECKPOINT_HINT)
        self.checkpoint_hint.setWordWrap(True)
        self.checkpoint_hint.setStyleSheet("color: gray")
        self.checkpoint_hint.setToolTip(CHECKPOINT_HINT_TIP)
        return self._titled("Checkpoints", self.checkpoint_list, row, self.checkpoint_hint)

    def _build_progress_and_plot(self) -> QWidget:
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumHeight(18)
        self.progress_label = QLabel("No run selected. Start one with New run….")
        self.progress_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_label.setWordWrap(True)  # a narrow (right-hand) dock takes two lines
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: rgb(220, 60, 60);")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        self.plot = LossPlot()
        self.plot.setMinimumSize(240, 160)
        self.log_y = QCheckBox("log scale")
        self.log_y.setToolTip("Logarithmic loss axis (losses fall by orders of magnitude)")
        self.log_y.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        top = QHBoxLayout()
        top.addWidget(self.progress_label, 1)
        top.addWidget(self.log_y)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.error_label)
        layout.addWidget(self.plot, 1)
        return box

    def _build_log(self) -> QWidget:
        self.log_box = TrainingLog()
        self.log_view = self.log_box.view
        return self.log_box

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        wide = self.width() >= WIDE_RATIO * self.height()
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.splitter.orientation() != orientation:
            self.splitter.setOrientation(orientation)
            # The two lists stay one above the other: side by side in a tall, narrow column
            # (the right-hand tab) they cut the checkpoints' labels and times.
            self.lists_splitter.setOrientation(Qt.Orientation.Vertical)
            self._size_parts(wide)

    def _size_parts(self, wide: bool) -> None:
        if wide:
            total = max(self.width(), 600)
            self.splitter.setSizes([int(total * 0.2), int(total * 0.5), int(total * 0.3)])
        else:
            total = max(self.height(), 400)
            self.splitter.setSizes([int(total * 0.36), int(total * 0.44), int(total * 0.20)])

    # ---- runs --------------------------------------------------------------------------------

    @property
    def runs_root(self) -> str:
        """The folder whose run directories are listed (QSettings, default ``<cwd>/runs``)."""
        if not getattr(self, "_runs_root", ""):
            value = self.settings.value(RUNS_ROOT_KEY, "") if self.settings is not None else ""
            self._runs_root = str(value or default_runs_root())
        return self._runs_root

    def set_runs_root(self, path, remember: bool = True) -> None:
        """List the runs under ``path`` (kept in QSettings when ``remember``)."""
        self._runs_root = str(path)
        if remember and self.settings is not None:
            self.settings.setValue(RUNS_ROOT_KEY, str(path))
            self.settings.sync()
        self.model.scan(path)
        self.runs_box.title_label.setText(f"<b>Runs</b> in {Path(path).name or path}/")
        self.runs_box.title_label.setToolTip(str(path))
        if self.record is not None and self.model.row_of(self.record) < 0:
            self.select_record(None)

    def start(self, request: TrainRequest) -> RunRecord:
        """Start ``request`` in a child process and show it."""
        record = self.model.start(request)
        self.select_record(record)
        return record

    def new_run(self) -> None:
        """Ask for a run with the training dialog and start it."""
        from viewer.dialogs.train_dialog import TrainDialog  # on first use: a big dialog module
        dialog = TrainDialog(self, runs_root=self.runs_root,
                             current_dataset=self.current_dataset())
        if dialog.exec():
            request = dialog.request()
            self._start_reporting(request, self._later_stages(dialog, request))

    @staticmethod
    def _later_stages(dialog, request: TrainRequest) -> list[TrainRequest]:
        """The dialog's stages after the first ("heads, then all") as resume requests."""
        stages = dialog.stages() if hasattr(dialog, "stages") else []
        if len(stages) < 2:
            return []
        from viewer.training.stages import stage_args

        return [stage_args(request, layers, until) for layers, until in stages[1:]]

    def _start_reporting(self, request: TrainRequest, later_stages=()) -> None:
        try:
            self.select_record(self.model.start(request, later_stages))
        except (RuntimeError, OSError) as error:
            QMessageBox.critical(self, "Cannot start training", str(error))

    def stop_selected(self) -> None:
        """Stop gracefully; pressed again while stopping ("Kill"), kill at once."""
        record = self.record
        if record is None:
            return
        if record.is_live() and record.status == STOPPING:
            record.process.kill()
        else:
            record.stop()
        self._refresh()

    def resume_selected(self) -> None:
        if self.record is not None and self.record.can_resume():
            self._start_reporting(self.record.resume_request())

    def continue_selected(self, extra_epochs: int | None = None) -> None:
        """Train the selected finished run ``extra_epochs`` more (asked when None)."""
        record = self.record
        if not can_continue(record):
            return
        extra_epochs = extra_epochs or ask_extra_epochs(self, record)
        if extra_epochs:
            self._start_reporting(continue_request(record, extra_epochs))

    def select_record(self, record: RunRecord | None) -> None:
        """Show ``record`` (reading its metrics on first selection)."""
        if record is self.record:
            return
        if self.record is not None:
            for signal, slot in self._record_connections():
                signal.disconnect(slot)
        self.record = record
        if record is not None:
            record.ensure_history()
            for signal, slot in self._record_connections():
                signal.connect(slot)
            row = self.model.row_of(record)
            if self.runs_view.currentIndex().row() != row:
                self.runs_view.setCurrentIndex(self.model.index(row))
        self._show_log()
        self._fill_checkpoints()
        self.plot.show_curves(record.curves if record is not None else None)
        self._refresh()

    def _record_connections(self):
        record = self.record
        return ((record.changed, self._refresh), (record.curvesChanged, self._redraw_curves),
                (record.logAppended, self._append_log),
                (record.checkpointsChanged, self._fill_checkpoints))

    # ---- drawing -----------------------------------------------------------------------------

    def _redraw_curves(self) -> None:
        self.plot.show_curves(self.record.curves if self.record is not None else None)

    def _refresh(self) -> None:
        record = self.record
        if record is None:
            self.progress_label.setText("No run selected. Start one with New run….")
            self.progress_bar.setValue(0)
            self.error_label.hide()
            self._update_buttons()
            return
        fraction, text = record.progress()
        status = f"running (pid {record.external_pid})" if record.external_pid else record.status
        self.progress_label.setText(f"<b>{record.name}</b> [{status}] · {text}")
        self.progress_label.setToolTip(f"{record.path}\n{record.description}")
        if fraction is None:
            self.progress_bar.setRange(0, 0 if record.is_live() else 1000)
            self.progress_bar.setValue(0)
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(round(fraction * 1000)))
        self._show_error(record)
        self._update_buttons()

    def _show_error(self, record: RunRecord) -> None:
        failed = record.status in (FAILED, INTERRUPTED) and not record.is_live()
        if failed or (record.reason and record.status == FAILED):
            self.error_label.setText(f"{record.status}: {record.reason}")
            tail = record.process.log_tail(15) if record.process is not None else ""
            self.error_label.setToolTip(f"Last lines of the log:\n{tail}" if tail else "")
            self.error_label.show()
        else:
            self.error_label.hide()

    def _show_log(self) -> None:
        record = self.record
        if record is None:
            self.log_box.set_lines([])
            return
        note = "(the log of a run started in an earlier session is not kept"
        self.log_box.set_lines(record.log, f"{note}; run.json says: {record.status or '?'}"
                               f"{' — ' + record.reason if record.reason else ''})")

    def _append_log(self, line: str) -> None:
        self.log_box.append(line)

    def _fill_checkpoints(self) -> None:
        selected = {item.data(Qt.ItemDataRole.UserRole)
                    for item in self.checkpoint_list.selectedItems()}
        self.checkpoint_list.clear()
        entries = self.record.checkpoints() if self.record is not None else []
        for entry in entries:
            text = f"epoch {entry['epoch']}"
            if entry.get("partial"):
                text += f" · step {entry['step']} (partial)"
            item = QListWidgetItem(f"{text}   {entry.get('time', '').replace('T', ' ')}".rstrip())
            item.setData(Qt.ItemDataRole.UserRole, entry["path"])
            item.setToolTip(entry["path"])
            self.checkpoint_list.addItem(item)
            item.setSelected(entry["path"] in selected)
        self._update_buttons()

    def _update_buttons(self) -> None:
        record = self.record
        stopping = record is not None and record.status == STOPPING
        self.stop_button.setEnabled(record is not None and record.is_running()
                                    and (record.is_live() or not stopping))
        self.stop_button.setText("Kill" if stopping and record.is_live() else "Stop")
        self.stop_button.setToolTip("Kill the process now (the epoch in progress is lost)"
                                    if stopping else STOP_TIP)
        self.resume_button.setEnabled(record is not None and record.can_resume())
        self.continue_button.setEnabled(can_continue(record))
        self.tensorboard_controls.update_button()
        count = len(self.selected_checkpoints())
        self.load_button.setEnabled(count == 1)
        self.compare_button.setEnabled(count == 2)

    # ---- checkpoints -------------------------------------------------------------------------

    def selected_checkpoints(self) -> list[str]:
        """Weights paths of the selected checkpoints, in list order (oldest first)."""
        items = self.checkpoint_list.selectedItems() if hasattr(self, "checkpoint_list") else []
        items = sorted(items, key=self.checkpoint_list.row)
        return [item.data(Qt.ItemDataRole.UserRole) for item in items]

    def config_path(self) -> str:
        return str(self.record.run_dir.config_path) if self.record is not None else ""

    def load_selected_checkpoint(self) -> None:
        paths = self.selected_checkpoints()
        if len(paths) == 1:
            self.loadCheckpoint.emit(paths[0], self.config_path())

    def compare_selected_checkpoints(self) -> bool:
        """Emit compareCheckpoints for the two selected checkpoints; False unless two are."""
        paths = self.selected_checkpoints()
        if len(paths) != 2:
            return False
        self.compareCheckpoints.emit(paths[0], paths[1], self.config_path())
        return True

    # ---- TensorBoard -------------------------------------------------------------------------

    def toggle_tensorboard(self) -> None:
        """Serve the selected run's tb/ (or stop serving it)."""
        self.tensorboard_controls.toggle()

    def _selected_tb_path(self):
        return None if self.record is None else str(self.record.run_dir.tb_path)

    # ---- closing -----------------------------------------------------------------------------

    def confirm_close(self, parent=None) -> bool:
        """Before the window closes: ask to stop running runs (False: keep the window open);
        on Yes stop them, waiting up to ~30 s before killing. Stops TensorBoard."""
        if not confirm_stop_runs(self.model, parent or self):
            return False
        self.shutdown()
        return True

    def stop_all_and_wait(self, parent=None) -> None:
        """Stop every live run gracefully (see ``closing.stop_all_and_wait``)."""
        stop_all_and_wait(self.model, parent or self)

    def shutdown(self) -> None:
        """Stop TensorBoard; kill any run still alive (no orphan outlives the window)."""
        self.tensorboard.stop()
        for record in self.model.running():
            record.process.kill()
            record.process.wait(3000)
