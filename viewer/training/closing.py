"""Stopping a RunsModel's live runs when the window closes: ask, then stop gracefully with a
progress dialog, and kill what outlives the grace period."""

from __future__ import annotations

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog

CLOSE_GRACE_MS = 20_000  # closing the window: STOP file, then SIGTERM after this...
CLOSE_KILL_MS = 10_000   # ...and a kill this much later (~30 s in all)


def confirm_stop_runs(model, parent) -> bool:
    """Ask to stop ``model``'s running runs and stop them on Yes; False when the user keeps
    them running (the window stays open). True at once when nothing runs."""
    running = model.running()
    if not running:
        return True
    names = ", ".join(record.name for record in running)
    answer = QMessageBox.question(
        parent, "Stop training?",
        f"Training is still running ({names}).\n\nStop it and close? The current step "
        "finishes and a checkpoint is written, so Resume can continue later.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    if answer != QMessageBox.StandardButton.Yes:
        return False
    stop_all_and_wait(model, parent)
    return True


def stop_all_and_wait(model, parent) -> None:
    """Stop every live run of ``model`` gracefully, showing a progress dialog; kill what
    outlives the grace period (or everything, when the dialog's Kill now is pressed)."""
    running = model.running()
    if not running:
        return
    dialog = QProgressDialog("Stopping training: finishing the step and writing a "
                             "checkpoint…", "Kill now", 0, 0, parent)
    dialog.setWindowTitle("Stopping training")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.show()
    for record in running:
        record.stop(CLOSE_GRACE_MS, CLOSE_KILL_MS)
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: loop.quit() if dialog.wasCanceled() or
                         not model.running() else None)
    poll.start(100)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    deadline.start(CLOSE_GRACE_MS + CLOSE_KILL_MS + 2000)
    loop.exec()
    poll.stop()
    deadline.stop()
    for record in model.running():  # Kill now, or the escalation did not end it
        record.process.kill()
        record.process.wait(3000)
    QApplication.processEvents()  # deliver the exits
    dialog.close()
