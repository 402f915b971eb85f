"""Compare windows' job runners, kept after their window is destroyed until the worker thread
ends (a model load cannot be interrupted), so no QThread is destroyed while running."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

RETIRE_POLL_MS = 200  # how often a closed window's runner is checked for finished threads

RUNNERS: set = set()  # runners of windows that are gone, whose threads still run
_QUIT_HOOKED = False


def keep_runner(runner) -> None:
    """Hold ``runner`` until its threads end after its window is gone; stop it at app quit."""
    global _QUIT_HOOKED
    RUNNERS.add(runner)
    app = QApplication.instance()
    if app is not None and not _QUIT_HOOKED:
        _QUIT_HOOKED = True
        app.aboutToQuit.connect(stop_all_runners)


def stop_all_runners() -> None:
    """The app is quitting: cancel every comparison and let its thread end (a step may take
    seconds) before Qt destroys the QThreads."""
    for runner in list(RUNNERS):
        runner.cancel()
        runner.wait(10000)


def retire_runner(runner) -> None:
    """Cancel the runner of a destroyed window; drop it once its worker threads have ended."""
    runner.cancel()

    def check():
        if runner.wait(0):
            RUNNERS.discard(runner)
        else:
            QTimer.singleShot(RETIRE_POLL_MS, check)

    check()
