"""Stopping a training run gracefully: signals, the parent watch, and the exceptions that end fit.

SIGTERM, SIGINT or a ``STOP`` file in the run directory finish the current step, write a
checkpoint (``mrcnn.train_callbacks.CheckpointWriter``) and end the run with status "stopped".
With ``--stop-with-parent [PID]`` (the viewer passes its pid) the same happens when the process
that started this one exits, so a crashed or killed viewer never leaves an orphan training on.
TensorFlow-free.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger("mrcnn.train")


class RunStopped(Exception):
    """A stop request was honoured after a step (a checkpoint is written)."""


class LossNotFinite(Exception):
    """A loss became NaN or Inf; the message says where."""


class StopFlag:
    """Set by SIGTERM / SIGINT; a second SIGINT interrupts at once."""

    def __init__(self):
        self.reason = None

    def install(self):
        """Handle SIGTERM and SIGINT from now on; returns self."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def request(self, reason: str) -> None:
        """Ask for a stop after the current step (from any thread); a pending one stays."""
        if self.reason is None:
            self._stop(reason)

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._stop(f"received {signal.Signals(signum).name}")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        log.info("%s: stopping after the current step", reason)


def watch_parent(stop_flag: StopFlag, parent: int = 0, interval_s: float = 1.0,
                 getppid=os.getppid):
    """Start a daemon thread that requests a stop once ``parent`` (0: the parent now) is no
    longer this process's parent; returns the thread.

    An orphan is re-parented (to init or a subreaper), so a different ``getppid()`` means the
    parent has exited - already before this call, when ``parent`` was named and has gone.
    """
    parent = parent or getppid()

    def watch():
        while getppid() == parent:
            time.sleep(interval_s)
        stop_flag.request(f"parent process {parent} exited")

    thread = threading.Thread(target=watch, name="mrcnn-parent-watch", daemon=True)
    thread.start()
    return thread
