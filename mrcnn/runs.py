"""Run directories: the files one training run leaves behind, readable without TensorFlow.

Layout of a run directory (``RunDir``)::

    config.json                 the Config the run trains with (Config.to_json)
    run.json                    args, dataset summary, class names, strategy, status (+ reason)
    metrics.jsonl               one JSON object per step and per epoch ("event": "step"/"epoch")
    tb/train, tb/val            TensorBoard event files (written by mrcnn train)
    checkpoints/epoch_0001.h5   weights after epoch 1 (matterport HDF5 layout)
    checkpoints/epoch_0003_step_0025.h5   weights at global step 25, epoch 3 unfinished (stop)
    checkpoints/index.json      the list of *good* checkpoints, oldest first
    STOP                        created by anyone who wants the run to stop gracefully

A checkpoint is good only when ``index.json`` lists it: the weights file is written first
(temp file + rename) and the index after it (again temp file + rename), so a run killed in
between leaves at worst an unlisted file, never a listed partial one. The viewer reads run
directories through this module, so it must not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

# run.json "status": a live run, then how it ended (also the status of the "end" event);
# "interrupted": a session killed without recording its end (mrcnn.run_repair).
RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = (
    "running", "finished", "stopped", "failed", "interrupted")
STATUSES = (RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED)
STOP_FILE = "STOP"
INDEX_FILE = "index.json"


def write_json_atomic(path, data) -> None:
    """Write ``data`` as pretty JSON to ``path`` atomically (mrcnn.atomic: temp file, fsync,
    rename; a full disk names the file and the space it needed)."""
    from mrcnn.atomic import write_bytes_atomic

    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_bytes_atomic(path, text.encode())


def _json_default(value):
    """numpy scalars/arrays and paths in run records become plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_json(path, what="file"):
    """Parsed JSON of ``path``; a missing or broken file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON ({e})") from None


def default_run_dir(name, root="runs") -> Path:
    """``<root>/<name>_<YYYYmmdd-HHMMSS>``."""
    return Path(root) / f"{name.lower()}_{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_name(epoch, step=None) -> str:
    """``epoch_0001.h5`` after a whole epoch, ``epoch_0001_step_0007.h5`` within one."""
    if step is None:
        return f"epoch_{int(epoch):04d}.h5"
    return f"epoch_{int(epoch):04d}_step_{int(step):04d}.h5"


class RunDir:
    """One run directory (module docstring); creating the object creates nothing on disk."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoint_dir = self.path / "checkpoints"
        self.config_path = self.path / "config.json"
        self.run_json_path = self.path / "run.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.index_path = self.checkpoint_dir / INDEX_FILE
        self.stop_path = self.path / STOP_FILE
        self.tb_path = self.path / "tb"

    def create(self) -> "RunDir":
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self

    def exists(self) -> bool:
        return self.run_json_path.is_file()

    # ---- run.json --------------------------------------------------------------------------

    def read_run(self) -> dict:
        return read_json(self.run_json_path, "run file")

    def write_run(self, record: dict) -> None:
        write_json_atomic(self.run_json_path, record)

    def update_run(self, **fields) -> dict:
        """Merge ``fields`` into run.json (created if missing) and return the new record."""
        record = self.read_run() if self.run_json_path.is_file() else {}
        record.update(fields)
        record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.write_run(record)
        return record

    def set_status(self, status, reason="") -> dict:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        return self.update_run(status=status, reason=reason)

    # ---- metrics ---------------------------------------------------------------------------

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")

    def read_metrics(self, event=None) -> list[dict]:
        """Records of metrics.jsonl (only ``event`` ones if given); a torn last line is skipped."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a killed run was writing
            if event is None or record.get("event") == event:
                records.append(record)
        return records

    # ---- checkpoints -----------------------------------------------------------------------

    def checkpoint_path(self, epoch, step=None) -> Path:
        return self.checkpoint_dir / checkpoint_name(epoch, step)

    def checkpoints(self) -> list[dict]:
        """Good checkpoints, oldest first: dicts with path (absolute), epoch, step, partial."""
        if not self.index_path.is_file():
            return []
        entries = read_json(self.index_path, "checkpoint index").get("checkpoints", [])
        good = []
        for entry in entries:
            path = self.checkpoint_dir / entry["file"]
            if path.is_file():  # deleted by hand: not usable
                good.append(dict(entry, path=str(path)))
        return good

    def register_checkpoint(self, path, epoch, step, partial=False, **extra) -> dict:
        """List an already written weights file in index.json (atomically); returns its entry."""
        path = Path(path)
        if path.parent.resolve() != self.checkpoint_dir.resolve():
            raise ValueError(f"checkpoint {path} is not inside {self.checkpoint_dir}")
        entries = []
        if self.index_path.is_file():
            entries = read_json(self.index_path, "checkpoint index").get("checkpoints", [])
        entries = [e for e in entries if e["file"] != path.name]
        entry = {"file": path.name, "epoch": int(epoch), "step": int(step),
                 "partial": bool(partial), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        entries.append(entry)
        write_json_atomic(self.index_path, {"checkpoints": entries})
        return dict(entry, path=str(path))

    def last_checkpoint(self) -> dict | None:
        """The most recently registered good checkpoint, or None."""
        good = self.checkpoints()
        return good[-1] if good else None

    # ---- stop request ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask a running training process to stop after its current step (writes STOP)."""
        self.stop_path.write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        if self.stop_path.exists():
            self.stop_path.unlink()


def find_last_checkpoint(runs_root, exclude_dir=None):
    """The newest good checkpoint (path) of any run directory under ``runs_root`` (None if none).

    ``exclude_dir``: a run directory to skip (the run that is about to start).
    """
    best = None
    root = Path(runs_root)
    if not root.is_dir():
        return None
    for child in root.iterdir():
        if exclude_dir is not None and child.resolve() == Path(exclude_dir).resolve():
            continue
        entry = RunDir(child).last_checkpoint() if child.is_dir() else None
        if entry and (best is None or os.path.getmtime(entry["path"]) > os.path.getmtime(best)):
            best = entry["path"]
    return best


def resume_epoch(entry: dict) -> int:
    """Epochs already complete when training restarts from checkpoint ``entry``.

    A whole-epoch checkpoint of epoch E resumes at E (the next one written is E + 1); a partial
    one taken during epoch E restarts epoch E from its beginning, i.e. at E - 1.
    """
    epoch = int(entry["epoch"])
    return epoch - 1 if entry.get("partial") else epoch


def resume_point(entry: dict, steps_per_epoch: int) -> tuple[int, int, int]:
    """(epochs complete, global steps done, steps of the next epoch done) at checkpoint ``entry``.

    The global step continues from the checkpoint's: its weights have seen that many steps. A
    whole-epoch checkpoint of epoch E continues with epoch E + 1 from its first step; a partial
    one taken at step S of epoch E finishes epoch E with its remaining steps, so a stop at step
    84 of 600 and a resume make epoch E 600 steps long, labelled 85, 86, ... Only when the steps
    per epoch changed so that S no longer lies inside epoch E does epoch E restart (from step
    S + 1 of the count, so steps still only grow).
    """
    epoch, step = int(entry["epoch"]), int(entry.get("step", 0))
    spe = int(steps_per_epoch)
    if not entry.get("partial"):
        return epoch, max(step, 0), 0
    done = step - (epoch - 1) * spe
    return epoch - 1, max(step, 0), (done if 0 < done < spe else 0)
