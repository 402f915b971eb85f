"""The runs the viewer knows: live ones (a TrainingProcess each) and past ones (run directories).

``RunsModel`` is the list the panel shows; each row is a ``RunRecord`` holding one run's state —
status, progress, loss curves, log, checkpoints — and emitting a signal when it changes, so the
panel only draws. Past runs are found under the runs root by their ``run.json`` (small, read at
once); their ``metrics.jsonl`` (can be large) is read only when the run is first selected.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor

from mrcnn.run_repair import pid_alive
from mrcnn.runs import RUNNING, RunDir
from mrcnn.train_events import CHECKPOINT, EPOCH, ERROR, START, STEP, TOTAL_LOSS, VAL_PREFIX
from mrcnn.train_events import LOSS_NAMES as TRAINER_LOSS_NAMES
from viewer.training.process import (FAILED, FINISHED, LIVE_STATES, STOPPED, STOPPING,
                                     TrainingProcess)
from viewer.training.request import TrainRequest

LOSS_NAMES = (TOTAL_LOSS,) + TRAINER_LOSS_NAMES  # the curves: the total, then each loss
SPLITS = ("train", "val")
INTERRUPTED = "interrupted"  # run.json says running, but its process is gone
LOG_LINES = 5000             # log lines kept per run in memory
STATUS_COLORS = {FAILED: QColor(200, 40, 40), INTERRUPTED: QColor(200, 120, 0),
                 STOPPED: QColor(150, 110, 0), FINISHED: QColor(30, 130, 50)}


class Curves:
    """Loss curves of one run, x = global step: train from "step" events (that step's losses),
    val from "epoch" events (``val_<name>`` at the epoch's last step).

    A resume continues the step count from its checkpoint, so its points extend the curve. A
    step at or before the last one seen means the run restarted there (resumed from a checkpoint
    older than the last steps recorded, e.g. after a kill), so the points from that step on are
    replaced, not doubled.
    """

    def __init__(self):
        self.points = {split: {name: ([], []) for name in LOSS_NAMES} for split in SPLITS}

    def add(self, record: dict) -> bool:
        """Take one metrics record / event; True when a curve changed."""
        kind, step = record.get("event"), record.get("step")
        if step is None or kind not in (STEP, EPOCH):
            return False
        split, prefix = ("train", "") if kind == STEP else ("val", VAL_PREFIX)
        changed = False
        for name in LOSS_NAMES:
            key = prefix + name
            if key not in record:
                continue
            xs, ys = self.points[split][name]
            while xs and xs[-1] >= step:  # a restart: drop what is redone
                xs.pop()
                ys.pop()
            value = record[key]
            xs.append(float(step))
            ys.append(float(value) if value is not None else math.nan)
            changed = True
        return changed

    def extend(self, records) -> None:
        for record in records:
            self.add(record)

    def arrays(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) float arrays of one curve; NaN where the loss was not finite."""
        xs, ys = self.points[split][name]
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def __len__(self) -> int:
        return len(self.points["train"]["loss"][0])


def describe_run(record: dict) -> str:
    """One line from run.json: "shapes · heads · 3 epochs"."""
    args = record.get("args") or {}
    dataset = (record.get("dataset") or {}).get("kind") or args.get("dataset") or ""
    parts = [dataset, args.get("layers") or ""]
    if args.get("epochs"):
        parts.append(f"{args['epochs']} epoch{'s' if args['epochs'] != 1 else ''}")
    return " · ".join(p for p in parts if p)


def format_duration(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunRecord(QObject):
    """One run directory and, while the viewer trains it, its TrainingProcess."""

    changed = Signal()          # status, progress or description
    curvesChanged = Signal()
    logAppended = Signal(str)
    checkpointsChanged = Signal()

    def __init__(self, path, request: TrainRequest | None = None, parent=None):
        super().__init__(parent)
        self.run_dir = RunDir(path)
        self.request = request
        self.process: TrainingProcess | None = None
        self.status = ""
        self.reason = ""
        self.description = request.description if request is not None else ""
        self.external_pid = 0      # a run another process is training
        self.start_info: dict = {}
        self.last_step: dict = {}
        self.last_epoch: dict = {}
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.curves: Curves | None = None  # None until loaded (past runs: on selection)
        self.planned_epochs = 0
        self.pending_stages: list[TrainRequest] = []  # started one by one as each finishes
        self.stage = (1, 1)  # (number, count) of the dialog's training stages
        self.modified = 0.0

    @property
    def path(self) -> Path:
        return self.run_dir.path

    @property
    def name(self) -> str:
        return self.path.name

    # ---- past runs ---------------------------------------------------------------------------

    def read_summary(self) -> None:
        """Status and description from run.json (cheap; metrics are not read)."""
        try:
            record = self.run_dir.read_run()
            self.modified = self.run_dir.run_json_path.stat().st_mtime
        except (OSError, ValueError) as error:
            self.status, self.reason = FAILED, str(error)
            return
        self.status, self.reason = record.get("status", ""), record.get("reason", "")
        self.description = self.description or describe_run(record)
        self.planned_epochs = int((record.get("args") or {}).get("epochs") or 0)
        self.external_pid = 0
        if self.status == RUNNING and not self.is_live():
            pid = int(record.get("pid", 0) or 0)
            if pid_alive(pid):
                self.external_pid = pid
            else:
                self.status = INTERRUPTED
                self.reason = ("run.json says running but its process is gone (killed or "
                               "crashed); Resume continues from the last good checkpoint")

    def ensure_history(self) -> Curves:
        """The curves, reading metrics.jsonl on first use (after a restart, live events add)."""
        if self.curves is None:
            self.curves = Curves()
            records = self.run_dir.read_metrics()
            self.curves.extend(records)
            steps = [r for r in records if r.get("event") == STEP]
            epochs = [r for r in records if r.get("event") == EPOCH]
            self.last_step = self.last_step or (steps[-1] if steps else {})
            self.last_epoch = self.last_epoch or (epochs[-1] if epochs else {})
        return self.curves

    def checkpoints(self) -> list[dict]:
        """Good checkpoints (RunDir.checkpoints), oldest first; [] when unreadable."""
        try:
            return self.run_dir.checkpoints()
        except (OSError, ValueError, KeyError):
            return []

    # ---- live runs ---------------------------------------------------------------------------

    def is_live(self) -> bool:
        return self.process is not None and self.process.is_running()

    def is_running(self) -> bool:
        """Training now: in this viewer, or (external_pid) in another process."""
        return self.is_live() or bool(self.external_pid)

    def attach(self, process: TrainingProcess) -> None:
        """Follow ``process`` (a new one per start / resume of this run)."""
        self.process = process
        self.request = process.request
        self.description = self.request.description or self.description
        self.status, self.reason = process.state, ""
        self.external_pid = 0
        if self.curves is None and self.run_dir.metrics_path.is_file():
            self.ensure_history()  # a resume: the curves continue the saved ones
        elif self.curves is None:
            self.curves = Curves()
        process.stateChanged.connect(self._on_state)
        process.event.connect(self._on_event)
        process.stderrLine.connect(self._append_log)
        process.exited.connect(self._on_exited)

    def _on_state(self, state: str) -> None:
        if state in LIVE_STATES:
            self.status = state
            self.changed.emit()

    def _on_event(self, record: dict) -> None:
        kind = record["event"]
        if kind == START:
            self.start_info = record
            self.last_step = {}
        elif kind == STEP:
            self.last_step = record
        elif kind == EPOCH:
            self.last_epoch = record
        elif kind == CHECKPOINT:
            self.checkpointsChanged.emit()
        elif kind == ERROR:
            self.reason = str(record.get("message", ""))
        if self.curves is not None and self.curves.add(record):
            self.curvesChanged.emit()
        if kind in (START, STEP, EPOCH, ERROR):
            self.changed.emit()

    def _append_log(self, line: str) -> None:
        self.log.append(line)
        self.logAppended.emit(line)

    def _on_exited(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason
        self.checkpointsChanged.emit()
        self.changed.emit()

    def stop(self, grace_ms=None, kill_ms=None) -> None:
        """Stop gracefully: the live process's escalation, or a STOP file for another one's."""
        if self.is_live():
            kwargs = {k: v for k, v in (("grace_ms", grace_ms), ("kill_ms", kill_ms)) if v}
            self.process.stop(**kwargs)
        elif self.external_pid:
            self.run_dir.request_stop()
            self.status = STOPPING
            self.changed.emit()

    def resume_request(self) -> TrainRequest:
        """Continue this run: ``--run-dir DIR --resume`` (mrcnn.train re-reads the rest of the
        arguments from run.json), with the environment it was started with."""
        env = dict(self.request.env) if self.request is not None else {}
        return TrainRequest(str(self.path.resolve()), ["--run-dir", str(self.path.resolve()),
                                                       "--resume"], env, self.description)

    def can_resume(self) -> bool:
        return not self.is_running() and self.run_dir.exists() and self.status != FINISHED

    # ---- progress ----------------------------------------------------------------------------

    def progress(self) -> tuple[float | None, str]:
        """(fraction of the run's steps done or None, one line "epoch 2/3 · step 7/12 · …").

        Steps count over the whole run, resumed sessions included (a resume continues the
        count: mrcnn.runs.resume_point), so the bar and the label go on where a stop left them.
        """
        info, step = self.start_info, self.last_step
        epochs = info.get("epochs")
        spe = info.get("steps_per_epoch")
        if not info:
            return self._past_progress()
        initial = int(info.get("initial_epoch", 0))
        if not step:
            if self.status in LIVE_STATES:
                done = int(info.get("initial_step", initial * (spe or 0)))
                resumed = f" (resumed after step {done})" if done else ""
                return ((done / (epochs * spe)) if epochs and spe else 0.0,
                        f"epoch {initial + 1}/{epochs}{resumed} · tracing the first step…")
            return self._past_progress()
        fraction = None
        if epochs and spe:
            fraction = step["step"] / (epochs * spe)
        parts = [f"epoch {step.get('epoch')}/{epochs or '?'}",
                 f"step {step.get('step')}/{epochs * spe if epochs and spe else '?'}"]
        if step.get("images_per_s") is not None:
            parts.append(f"{step['images_per_s']:.2f} img/s")
        if self.stage[1] > 1:
            parts.insert(0, f"stage {self.stage[0]}/{self.stage[1]} ({info.get('layers', '?')})")
        if self.status in LIVE_STATES:
            parts.append(f"ETA {format_duration(step.get('eta_s'))}")
        if step.get("loss") is not None:
            parts.append(f"loss {step['loss']:.4g}")
        return (min(max(fraction, 0.0), 1.0) if fraction is not None else None), " · ".join(parts)

    def _past_progress(self) -> tuple[float | None, str]:
        step, epoch = self.last_step, self.last_epoch
        if self.status in LIVE_STATES:
            return None, "starting (loading TensorFlow, building the model)…"
        if not step and not epoch:
            return None, "no steps recorded"
        planned = self.planned_epochs
        parts = [f"epoch {step.get('epoch', epoch.get('epoch'))}/{planned or '?'}",
                 f"last step {step.get('step', epoch.get('step'))}"]
        if epoch.get("val_loss") is not None:
            parts.append(f"val_loss {epoch['val_loss']:.4g}")
        elif step.get("loss") is not None:
            parts.append(f"loss {step['loss']:.4g}")
        fraction = None
        if self.status == FINISHED:
            fraction = 1.0
        elif planned and epoch.get("epoch"):
            fraction = min(int(epoch["epoch"]) / planned, 1.0)  # whole epochs done
        return fraction, " · ".join(parts)


class RunsModel(QAbstractListModel):
    """Runs, newest first: those started here, then past ones found under the runs root."""

    RecordRole = Qt.ItemDataRole.UserRole + 1
    runStarted = Signal(object)  # RunRecord

    def __init__(self, parent=None):
        super().__init__(parent)
        self.records: list[RunRecord] = []
        self.root: Path | None = None

    # ---- Qt model ----------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.records)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.records):
            return None
        record = self.records[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            status = f"running (pid {record.external_pid})" if record.external_pid \
                else record.status or "?"
            return f"{record.name}  [{status}]"
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(record.path), record.description]
            if record.reason:
                lines.append(f"{record.status}: {record.reason}")
            return "\n".join(line for line in lines if line)
        if role == Qt.ItemDataRole.ForegroundRole:
            return STATUS_COLORS.get(record.status)
        if role == self.RecordRole:
            return record
        return None

    # ---- records -----------------------------------------------------------------------------

    def record(self, row: int) -> RunRecord | None:
        return self.records[row] if 0 <= row < len(self.records) else None

    def row_of(self, record: RunRecord) -> int:
        return self.records.index(record) if record in self.records else -1

    def find(self, path) -> RunRecord | None:
        target = Path(path).resolve()
        return next((r for r in self.records if r.path.resolve() == target), None)

    def running(self) -> list[RunRecord]:
        """Runs whose process this viewer owns and which are still alive."""
        return [r for r in self.records if r.is_live()]

    def _insert(self, record: RunRecord, row: int) -> None:
        self.beginInsertRows(QModelIndex(), row, row)
        self.records.insert(row, record)
        self.endInsertRows()
        record.changed.connect(lambda r=record: self._row_changed(r))

    def _row_changed(self, record: RunRecord) -> None:
        row = self.row_of(record)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def scan(self, root) -> int:
        """List the past runs under ``root`` (their run.json only); live runs stay. Returns how
        many past runs were found."""
        self.root = Path(root)
        live = [r for r in self.records if r.is_live()]
        self.beginResetModel()
        self.records = list(live)
        self.endResetModel()
        found = []
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and RunDir(child).exists() and self.find(child) is None:
                    record = RunRecord(child, parent=self)
                    record.read_summary()
                    found.append(record)
        for record in sorted(found, key=lambda r: r.modified, reverse=True):
            self._insert(record, len(self.records))
        return len(found)

    def start(self, request: TrainRequest, later_stages=()) -> RunRecord:
        """Start ``request`` in a child process; its run is listed first (reused on resume).

        ``later_stages``: requests continuing the same run (``--resume`` with other layers),
        each started when the one before it finishes.
        """
        record = self.find(request.run_dir)
        if record is not None and record.is_running():
            raise RuntimeError(f"{record.path} is already being trained")
        if record is None:
            record = RunRecord(request.run_dir, request, parent=self)
            self._insert(record, 0)
        if later_stages:
            record.pending_stages = list(later_stages)
            record.stage = (1, 1 + len(record.pending_stages))
        process = TrainingProcess(request, parent=record)
        record.attach(process)
        process.exited.connect(lambda status, _, r=record: self._next_stage(r, status))
        record.modified = time.time()
        process.start()
        self._row_changed(record)
        self.runStarted.emit(record)
        return record

    def _next_stage(self, record: RunRecord, status: str) -> None:
        """After a stage finished, start the next one (a stopped or failed stage waits for
        Resume, and the stages after it run when that finishes)."""
        if status != FINISHED or not record.pending_stages:
            return
        request = record.pending_stages.pop(0)

        def start_next():
            # The stage number moves with the start, so no one sees "stage 3/3, finished"
            # while stage 3 has not even begun.
            record.stage = (record.stage[0] + 1, record.stage[1])
            self.start(request)

        # Not from inside the finished process's signal: start on the next event-loop turn.
        QTimer.singleShot(0, start_next)
