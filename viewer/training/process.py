"""One ``mrcnn train`` child process (``TrainingProcess``); TensorBoard is in ``tensorboard.py``.

The child writes JSON lines on stdout (``mrcnn.train_events`` lists them) and its
log on stderr. ``TrainingProcess`` splits both streams into lines however the reads cut them,
turns each stdout line into a signal per event kind, keeps the last stderr lines for crash
reports, and stops the child in three steps: a STOP file (the child finishes its step and writes
a checkpoint), then SIGTERM (same handling, for a child that never reads the file), then a kill.
When the child is gone, ``exited(status, reason)`` says how it ended, also when it never got to
say so itself (killed, out of memory, crashed interpreter).

Nothing here imports TensorFlow; ``LineSplitter``, ``parse_event_line`` and ``describe_exit`` are
Qt-free so they test without a process.
"""

from __future__ import annotations

import json
import os
import signal
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from mrcnn.runs import FAILED, FINISHED, STOPPED, RunDir  # noqa: F401 (states here too)
from mrcnn.train_events import CHECKPOINT, END, END_STATUSES, EPOCH, ERROR, START, STEP
from viewer.training.request import TrainRequest

# States of a TrainingProcess: the first four while the child lives, then how it ended
# (FINISHED, STOPPED, FAILED: the run statuses of mrcnn.runs).
IDLE, STARTING, RUNNING, STOPPING = "idle", "starting", "running", "stopping"
LIVE_STATES = (STARTING, RUNNING, STOPPING)

STOP_GRACE_MS = 60_000   # Stop button: time to finish the step and checkpoint before SIGTERM
KILL_AFTER_MS = 10_000   # after SIGTERM, time before the kill
LOG_TAIL_LINES = 400     # stderr lines kept for the crash report
VIEWER_PREFIX = "[viewer] "  # log lines the viewer adds, told apart from the child's

OOM_MARKERS = ("ResourceExhausted", "OOM when allocating", "out of memory", "MemoryError")
OOM_HINT = ("out of memory: lower IMAGES_PER_GPU, IMAGE_MAX_DIM or TRAIN_ROIS_PER_IMAGE, or "
            "train fewer layers")


class LineSplitter:
    """Bytes as they arrive -> complete text lines; a partial last line waits for the rest.

    Splitting happens on bytes, so a UTF-8 character cut between two reads decodes whole.
    """

    def __init__(self):
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data`` (without their newlines)."""
        lines = (self._pending + bytes(data)).split(b"\n")
        self._pending = lines.pop()
        return [_decode(line) for line in lines]

    def flush(self) -> list[str]:
        """The unterminated last line, if any (the stream has ended)."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def parse_event_line(line: str) -> dict | None:
    """The event of one stdout line: a JSON object with an "event" key, else None."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("event"), str) else None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(exit_code: int, crashed: bool, end_event: dict | None, errors: list[str],
                  stop_requested: bool = False, killed: bool = False) -> tuple[str, str]:
    """(status, reason) of a finished child: what its "end" event said, else what happened.

    ``crashed``: it died of a signal (``exit_code`` is then the signal number); ``killed``: the
    viewer killed it after a stop request went unanswered.
    """
    if end_event is not None:
        status = end_event.get("status")
        status = status if status in END_STATUSES else FAILED
        reason = str(end_event.get("reason") or (errors[-1] if errors else ""))
        return status, _with_oom_hint(reason)
    if killed:
        if stop_requested:
            return STOPPED, ("killed: it did not stop in time after the stop request; the "
                             "epoch in progress is lost, Resume continues from the last good "
                             "checkpoint")
        return FAILED, "killed from the viewer; Resume continues from the last good checkpoint"
    if crashed:
        name = signal_name(exit_code)
        reason = f"the training process was killed by {name}"
        if name == "SIGKILL" and not stop_requested:
            reason += " (by the system's out-of-memory killer, or by hand)"
        if errors:
            reason += f"; last error: {errors[-1]}"
        return (STOPPED if stop_requested and name == "SIGTERM" else FAILED), reason
    if errors:
        return FAILED, _with_oom_hint(errors[-1])
    if exit_code != 0:
        return FAILED, f"exited with code {exit_code} without reporting an error (see the log)"
    return FAILED, "exited without reporting the end of the run (see the log)"


def _with_oom_hint(reason: str) -> str:
    if any(marker in reason for marker in OOM_MARKERS) and OOM_HINT not in reason:
        return f"{reason} — {OOM_HINT}"
    return reason


def child_environment(extra: dict[str, str]) -> QProcessEnvironment:
    """This process's environment + ``extra`` (e.g. CUDA_VISIBLE_DEVICES), unbuffered, with
    mrcnn importable even when the viewer runs from a source checkout."""
    import mrcnn

    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    if not env.contains("TF_CPP_MIN_LOG_LEVEL"):
        env.insert("TF_CPP_MIN_LOG_LEVEL", "2")
    source_root = str(Path(mrcnn.__file__).resolve().parent.parent)
    paths = [p for p in env.value("PYTHONPATH", "").split(os.pathsep) if p]
    env.insert("PYTHONPATH", os.pathsep.join([source_root] + paths))
    for key, value in extra.items():
        env.insert(str(key), str(value))
    return env


class TrainingProcess(QObject):
    """A ``mrcnn train`` child process for ``request`` (a TrainRequest); start with ``start()``.

    Every stdout event is emitted as ``event`` and as its kind's signal; stdout lines that are
    not events go to ``noiseLine`` (they are logged, never parsed); stderr lines to
    ``stderrLine``. ``exited(status, reason)`` comes once, after the child is gone.
    """

    event = Signal(dict)
    startEvent = Signal(dict)
    stepEvent = Signal(dict)
    epochEvent = Signal(dict)
    checkpointEvent = Signal(dict)
    errorEvent = Signal(str)
    endEvent = Signal(dict)
    stderrLine = Signal(str)
    noiseLine = Signal(str)
    stateChanged = Signal(str)
    exited = Signal(str, str)

    def __init__(self, request: TrainRequest, parent=None):
        super().__init__(parent)
        self.request = request
        self.run_dir = RunDir(request.run_dir)
        self.state = IDLE
        self.reason = ""
        self.exit_code: int | None = None
        self.end_event: dict | None = None
        self.errors: list[str] = []
        self.log_lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.pid = 0
        self._stop_requested = False
        self._killed = False
        self._kill_ms = KILL_AFTER_MS
        self._stdout = LineSplitter()
        self._stderr = LineSplitter()
        self._process = QProcess(self)
        self._process.readyReadStandardOutput.connect(self._read_stdout)
        self._process.readyReadStandardError.connect(self._read_stderr)
        self._process.started.connect(self._on_started)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._terminate_timer = self._timer(self._terminate)
        self._kill_timer = self._timer(self.kill)

    def _timer(self, slot) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(slot)
        return timer

    # ---- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the child (once); its environment gets the request's variables."""
        if self.state != IDLE:
            raise RuntimeError(f"training process for {self.run_dir.path} was already started")
        program, arguments = self.request.program()
        self._process.setProcessEnvironment(child_environment(self.request.env))
        self._process.setWorkingDirectory(os.getcwd())
        self._set_state(STARTING)
        self._note(f"starting: {program} {' '.join(arguments)}")
        self._process.start(program, arguments)

    def is_running(self) -> bool:
        return self.state in LIVE_STATES

    def stop(self, grace_ms: int = STOP_GRACE_MS, kill_ms: int = KILL_AFTER_MS) -> None:
        """Ask the child to finish its step and checkpoint (STOP file); SIGTERM after
        ``grace_ms``, kill ``kill_ms`` after that. Returns at once."""
        if not self.is_running() or self._stop_requested:
            return
        self._stop_requested = True
        self._set_state(STOPPING)
        try:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            self.run_dir.request_stop()
            self._note(f"stop requested ({self.run_dir.stop_path}): finishing the current step "
                       f"and writing a checkpoint; SIGTERM in {grace_ms / 1000:.0f} s")
        except OSError as error:
            self._note(f"cannot write the STOP file ({error}); sending SIGTERM now")
            grace_ms = 0
        self._terminate_timer.start(max(0, int(grace_ms)))
        self._kill_ms = max(0, int(kill_ms))

    def _terminate(self) -> None:
        if self._process.state() == QProcess.ProcessState.NotRunning:
            return
        self._note(f"still running: sending SIGTERM; killing in {self._kill_ms / 1000:.0f} s")
        self._process.terminate()
        self._kill_timer.start(self._kill_ms)

    def kill(self) -> None:
        """Kill the child now (whatever it was doing is lost; written checkpoints stay)."""
        if self._process.state() == QProcess.ProcessState.NotRunning:
            return
        self._killed = True
        self._note("killing the training process")
        self._process.kill()

    def wait(self, msecs: int) -> bool:
        """Block until the child has exited (True) or ``msecs`` passed; for shutdown only."""
        if self._process.state() == QProcess.ProcessState.NotRunning:
            return True
        return self._process.waitForFinished(int(msecs))

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` stderr lines, for a crash report."""
        return "\n".join(list(self.log_lines)[-lines:])

    # ---- process -> signals ------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    def _note(self, text: str) -> None:
        self._log(VIEWER_PREFIX + text)

    def _log(self, line: str) -> None:
        self.log_lines.append(line)
        self.stderrLine.emit(line)

    def _on_started(self) -> None:
        self.pid = int(self._process.processId())
        if self.state == STARTING:
            self._set_state(RUNNING)

    def _read_stdout(self) -> None:
        self.feed_stdout(self._process.readAllStandardOutput().data())

    def _read_stderr(self) -> None:
        self.feed_stderr(self._process.readAllStandardError().data())

    def feed_stdout(self, data: bytes) -> None:
        """Handle bytes read from the child's stdout (each complete line is one event)."""
        for line in self._stdout.feed(data):
            self._handle_stdout_line(line)

    def feed_stderr(self, data: bytes) -> None:
        for line in self._stderr.feed(data):
            self._log(line)

    def _handle_stdout_line(self, line: str) -> None:
        record = parse_event_line(line)
        if record is None:
            if line.strip():
                self._log(f"{VIEWER_PREFIX}not an event on stdout: {line}")
                self.noiseLine.emit(line)
            return
        kind = record["event"]
        if kind == ERROR:
            self.errors.append(str(record.get("message", "")))
            self.errorEvent.emit(self.errors[-1])
        elif kind == END:
            self.end_event = record
        self.event.emit(record)
        signal_for = {START: self.startEvent, STEP: self.stepEvent, EPOCH: self.epochEvent,
                      CHECKPOINT: self.checkpointEvent, END: self.endEvent}.get(kind)
        if signal_for is not None:
            signal_for.emit(record)

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            program = self.request.program()[0]
            self.errors.append(f"could not start {program}: {self._process.errorString()}")
            self._note(self.errors[-1])
            self._finish(-1, crashed=False)

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_stdout()
        self._read_stderr()
        for line in self._stdout.flush():
            self._handle_stdout_line(line)
        for line in self._stderr.flush():
            self._log(line)
        self._finish(int(exit_code), exit_status == QProcess.ExitStatus.CrashExit)

    def _finish(self, exit_code: int, crashed: bool) -> None:
        if self.state not in LIVE_STATES:
            return  # FailedToStart is followed by no finished(); guard against both anyway
        self._terminate_timer.stop()
        self._kill_timer.stop()
        self.exit_code = exit_code
        status, self.reason = describe_exit(exit_code, crashed, self.end_event, self.errors,
                                            self._stop_requested, self._killed)
        self._record_in_run_dir(status)
        self._note(f"exited ({status}): {self.reason}")
        self._set_state(status)
        self.exited.emit(status, self.reason)

    def _record_in_run_dir(self, status: str) -> None:
        """A child that died without saying so leaves run.json at "running": correct it (only
        when run.json is this child's), and remove a STOP file nobody consumed."""
        try:
            if self.end_event is None and self.run_dir.exists():
                record = self.run_dir.read_run()
                if record.get("status") == RUNNING and int(record.get("pid", 0)) == self.pid:
                    self.run_dir.set_status(status, self.reason)
            self.run_dir.clear_stop()
        except (OSError, ValueError) as error:
            self._note(f"could not update {self.run_dir.run_json_path}: {error}")


# ---------------------------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------------------------
