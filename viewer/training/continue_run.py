"""Continue training: a finished run trained N more epochs, as ``mrcnn train --resume``.

A finished run stopped because it reached ``--epochs``; continuing it is a resume with a later
``--epochs`` (``mrcnn.train`` re-reads the rest of the arguments from run.json and restarts from
the last checkpoint, optimizer state included). Qt only for the question; no TensorFlow.
"""

from __future__ import annotations

from viewer.training.request import TrainRequest

DEFAULT_EXTRA_EPOCHS = 1
MAX_EXTRA_EPOCHS = 100_000


def trained_epochs(record) -> int:
    """Epochs the run has completed: its planned ``--epochs`` or the last whole-epoch
    checkpoint's, whichever is later (a run resumed past its plan records the new one)."""
    whole = [int(entry["epoch"]) for entry in record.checkpoints() if not entry.get("partial")]
    return max([int(record.planned_epochs or 0)] + whole)


def can_continue(record) -> bool:
    """Only a finished run that nothing is training is extended (others are resumed)."""
    from viewer.training.process import FINISHED

    return record is not None and record.status == FINISHED and not record.is_running() \
        and record.run_dir.exists()


def continue_request(record, extra_epochs: int) -> TrainRequest:
    """``--run-dir R --resume --epochs old+N`` with the environment the run was started with."""
    if int(extra_epochs) < 1:
        raise ValueError(f"Continue training: extra epochs must be at least 1, got {extra_epochs}")
    until = trained_epochs(record) + int(extra_epochs)
    path = str(record.path.resolve())
    env = dict(record.request.env) if record.request is not None else {}
    head = record.description.split(" · ")[0] if record.description else record.name
    return TrainRequest(path, ["--run-dir", path, "--resume", "--epochs", str(until)], env,
                        f"{head} · continued to epoch {until}")


def ask_extra_epochs(parent, record) -> int | None:
    """Ask how many more epochs to train ``record``; None when cancelled."""
    from PySide6.QtWidgets import QInputDialog

    done = trained_epochs(record)
    value, ok = QInputDialog.getInt(
        parent, "Continue training",
        f"{record.name} finished at epoch {done}.\nTrain this many more epochs (from its last "
        "checkpoint, same settings):", DEFAULT_EXTRA_EPOCHS, 1, MAX_EXTRA_EPOCHS)
    return int(value) if ok else None


def runs_menu(panel, record):
    """The runs list's context menu for ``record``: Resume and Continue training…"""
    from PySide6.QtWidgets import QMenu

    menu = QMenu(panel.runs_view)
    resume = menu.addAction("Resume", panel.resume_selected)
    resume.setEnabled(record.can_resume())
    resume.setToolTip("Continue the stopped run from its last good checkpoint")
    extend = menu.addAction("Continue training…", panel.continue_selected)
    extend.setEnabled(can_continue(record))
    extend.setToolTip("Train this finished run more epochs")
    return menu


def install_runs_menu(panel) -> None:
    """Right-click on a run in ``panel``'s list: select it and offer ``runs_menu``."""
    from PySide6.QtCore import Qt

    view = panel.runs_view
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def show(position):
        record = panel.model.record(view.indexAt(position).row())
        if record is not None:
            panel.select_record(record)
            runs_menu(panel, record).exec(view.viewport().mapToGlobal(position))

    view.customContextMenuRequested.connect(show)
