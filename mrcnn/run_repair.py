"""Set a run directory straight when a session resumes it after a kill.

* ``mark_interrupted``: run.json still says ``running`` but its process is gone (SIGKILL,
  power cut): record ``interrupted`` before the new session starts (``interrupted_status``
  tells a lister the same without writing).
* ``merge_resume_argv``: the argv saved in run.json plus a resume's new arguments, each option
  once (the last value wins), so argv does not grow by ``--run-dir X`` on every resume.
* ``trim_redone_metrics``: drop metrics.jsonl records of steps and epochs after the checkpoint
  the run restarts from; those steps are trained again, and their old records would make the
  curves double back.
"""

from __future__ import annotations

import json
import os
import socket

from mrcnn.runs import RunDir

INTERRUPTED = "interrupted"
# Options that say which run to continue, not how to train: never stored in argv.
SESSION_OPTIONS = ("--resume", "--debug")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as gone; POSIX only:
    False on Windows, where os.kill cannot ask)."""
    if pid <= 0 or os.name == "nt":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def interrupted_status(record: dict) -> str:
    """``record``'s status, but ``interrupted`` for 'running' whose process on this host is gone."""
    status = record.get("status", "")
    if status != "running":
        return status
    host = record.get("host")
    if host and host != socket.gethostname():
        return status  # another machine's process: cannot tell
    return status if pid_alive(int(record.get("pid", 0) or 0)) else INTERRUPTED


def mark_interrupted(run_dir: RunDir) -> bool:
    """Write ``interrupted`` into run.json when its 'running' process is gone; True if so."""
    if not run_dir.exists():
        return False
    record = run_dir.read_run()
    if interrupted_status(record) != INTERRUPTED:
        return False
    run_dir.update_run(status=INTERRUPTED, reason=f"process {record.get('pid')} ended without "
                       "recording a status (killed?); resumed from the last good checkpoint")
    return True


def _option_groups(argv) -> list[list[str]]:
    """['--a', '1', '--b', 'x', 'y'] -> [['--a', '1'], ['--b', 'x', 'y']]."""
    groups: list[list[str]] = []
    for token in argv:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def merge_resume_argv(saved, new) -> list[str]:
    """Saved argv with the new options applied on top, each option once, in first-seen order."""
    merged: dict = {}
    for group in _option_groups(list(saved)) + _option_groups(list(new)):
        key = group[0].split("=", 1)[0]
        if key in SESSION_OPTIONS:
            continue
        merged.pop(key, None)  # a changed option moves to the end, like a re-parse would see it
        merged[key] = group
    return [token for group in merged.values() for token in group]


def trim_redone_metrics(run_dir: RunDir, initial_epoch: int, steps_per_epoch: int,
                        last_step: int | None = None) -> int:
    """Drop records after the restart point from metrics.jsonl (atomically); returns how many.

    ``last_step``: the global step the checkpoint resumed from had reached (a partial one lies
    inside epoch ``initial_epoch + 1``); default the end of epoch ``initial_epoch``.
    """
    if not run_dir.metrics_path.is_file():
        return 0
    if last_step is None:
        last_step = int(initial_epoch) * int(steps_per_epoch)
    kept, dropped = [], 0
    for line in run_dir.metrics_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # the torn line a kill left
            continue
        redone = (record.get("event") == "epoch" and int(record.get("epoch", 0)) > initial_epoch) \
            or (record.get("event") == "step" and int(record.get("step", 0)) > last_step)
        if redone:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        from mrcnn.atomic import write_bytes_atomic

        write_bytes_atomic(run_dir.metrics_path, "".join(f"{line}\n" for line in kept).encode())
    return dropped
