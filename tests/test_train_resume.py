"""Resuming a stopped run continues its global step count, metrics and checkpoint labels.

The fast tests drive the real callbacks (``mrcnn.train_callbacks``) through a loop that calls
them exactly as Keras 3's ``fit`` does (keras/src/backend/tensorflow/trainer.py: stop_training
leaves the epoch, validation and on_epoch_end still run, the fit ends only if the flag is still
set afterwards). The slow one runs ``mrcnn train`` twice: stopped at its first step, resumed.
"""

import json

import pytest

from mrcnn.runs import RunDir, resume_point
from mrcnn.train_callbacks import training_callbacks
from mrcnn.train_stop import RunStopped, StopFlag

LOSSES = ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
          "mrcnn_mask_loss", "weight_decay")


class _Events:
    def __init__(self):
        self.records = []

    def emit(self, event, **fields):
        record = {"event": event, **fields}
        self.records.append(record)
        return record


class _LearningRate:
    def numpy(self):
        return 0.01


class _Trainer:
    """What the callbacks read from Keras' model: the optimizer's lr and ``stop_training``."""

    def __init__(self):
        self.stop_training = False
        self.optimizer = type("Optimizer", (), {"learning_rate": _LearningRate()})()


class _Model:
    """The MaskRCNN side the callbacks use: config and the two writers of a checkpoint."""

    def __init__(self, steps_per_epoch):
        self.config = type("Config", (), {"STEPS_PER_EPOCH": steps_per_epoch, "BATCH_SIZE": 1})()
        self.trainer = None

    def save_weights(self, path):
        path.write_bytes(b"weights")

    def save_optimizer_state(self, path):
        path.write_bytes(b"state")


def keras_fit(callbacks, initial_epoch, epochs, steps_per_epoch, stop_after=None):
    """Keras 3's fit loop over ``callbacks`` with constant losses; ``stop_after(step)`` -> True
    requests a stop after that global step (as the STOP file would). Returns the trainer."""
    trainer = _Trainer()
    for callback in callbacks:
        callback.set_model(trainer)
    for callback in callbacks:
        callback.on_train_begin()
    progress = callbacks[0].progress
    logs = {name: 1.0 for name in LOSSES}
    for epoch in range(initial_epoch, epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            for callback in callbacks:
                callback.on_train_batch_begin(batch)
            for callback in callbacks:
                if stop_after and callback is callbacks[-1] and stop_after(progress.step):
                    callback.stop_flag.request("test stop")
                callback.on_train_batch_end(batch, logs)
            if trainer.stop_training:
                break
        for callback in callbacks:
            callback.on_epoch_end(epoch, dict(logs))
        if trainer.stop_training:
            break
    return trainer


def _session(run_dir, events, epochs, steps_per_epoch, entry=None, stop_at=None):
    """One training session over ``run_dir`` (resumed from checkpoint ``entry`` if given);
    returns how it ended: "finished" or "stopped"."""
    initial_epoch, initial_step, resumed = (0, 0, 0) if entry is None else \
        resume_point(entry, steps_per_epoch)
    callbacks = training_callbacks(_Model(steps_per_epoch), run_dir, events, StopFlag(), epochs,
                                   initial_epoch, True, None, initial_step, resumed)
    callbacks = [c for c in callbacks if type(c).__name__ != "TensorBoardWriter"]
    try:
        keras_fit(callbacks, initial_epoch, epochs, steps_per_epoch,
                  stop_after=(lambda step: step == stop_at) if stop_at else None)
    except RunStopped:
        return "stopped"
    return "finished"


def _steps(events):
    return [r["step"] for r in events.records if r["event"] == "step"]


def test_resume_from_a_partial_checkpoint_continues_the_step_count(tmp_path):
    """The issue's run: 600 steps per epoch, stopped at 84, resumed, stopped 116 steps later."""
    run = RunDir(tmp_path / "run").create()
    first = _Events()
    assert _session(run, first, epochs=2, steps_per_epoch=600, stop_at=84) == "stopped"
    assert _steps(first) == list(range(1, 85))
    entry = run.last_checkpoint()
    assert (entry["epoch"], entry["step"], entry["partial"]) == (1, 84, True)
    assert resume_point(entry, 600) == (0, 84, 84)

    second = _Events()
    assert _session(run, second, epochs=2, steps_per_epoch=600, entry=entry,
                    stop_at=200) == "stopped"
    assert _steps(second) == list(range(85, 201))
    assert [s["epoch"] for s in second.records if s["event"] == "step"] == [1] * 116
    entry = run.last_checkpoint()
    assert (entry["epoch"], entry["step"], entry["partial"]) == (1, 200, True)
    assert entry["file"] == "epoch_0001_step_0200.h5"

    third = _Events()
    assert _session(run, third, epochs=2, steps_per_epoch=600, entry=entry) == "finished"
    # Epoch 1 ends after its 600th step overall, not 600 steps after the resume.
    assert _steps(third) == list(range(201, 1201))
    epoch_ends = [(r["epoch"], r["step"]) for r in third.records if r["event"] == "epoch"]
    assert epoch_ends == [(1, 600), (2, 1200)]
    labels = [(c["epoch"], c["step"], c["partial"]) for c in run.checkpoints()]
    assert labels == [(1, 84, True), (1, 200, True), (1, 600, False), (2, 1200, False)]
    all_steps = [r["step"] for r in run.read_metrics("step")]
    assert all_steps == list(range(1, 1201))  # metrics.jsonl: each step once, in order


def test_stop_at_the_last_step_of_a_resumed_epoch_writes_the_whole_epoch(tmp_path):
    run = RunDir(tmp_path / "run").create()
    _session(run, _Events(), epochs=2, steps_per_epoch=5, stop_at=2)
    events = _Events()
    assert _session(run, events, epochs=2, steps_per_epoch=5, entry=run.last_checkpoint(),
                    stop_at=5) == "stopped"
    assert _steps(events) == [3, 4, 5]
    entry = run.last_checkpoint()
    assert (entry["file"], entry["step"], entry["partial"]) == ("epoch_0001.h5", 5, False)
    assert resume_point(entry, 5) == (1, 5, 0)


@pytest.mark.parametrize("entry, spe, expected", [
    ({"epoch": 3, "step": 30, "partial": False}, 10, (3, 30, 0)),
    ({"epoch": 3, "step": 27, "partial": True}, 10, (2, 27, 7)),
    # Steps per epoch changed (20 -> 10): step 27 is not inside epoch 2 any more; epoch 2
    # restarts, the count still goes on from 27.
    ({"epoch": 2, "step": 27, "partial": True}, 10, (1, 27, 0)),
])
def test_resume_point(entry, spe, expected):
    assert resume_point(entry, spe) == expected


def test_step_losses_are_each_steps_own_in_a_resumed_epoch(tmp_path):
    """Keras' running means restart with the session; each step's loss is still its own."""
    run = RunDir(tmp_path / "run").create()
    events = _Events()
    callbacks = training_callbacks(_Model(10), run, events, StopFlag(), 1, 0, True, None, 4, 4)
    callbacks = [c for c in callbacks if type(c).__name__ != "TensorBoardWriter"]
    trainer = _Trainer()
    for callback in callbacks:
        callback.set_model(trainer)
        callback.on_train_begin()
        callback.on_epoch_begin(0)
    own = [3.0, 1.0, 2.0]
    for batch, value in enumerate(own):
        mean = sum(own[: batch + 1]) / (batch + 1)
        for callback in callbacks:
            callback.on_train_batch_end(batch, {name: mean for name in LOSSES})
    steps = [r for r in events.records if r["event"] == "step"]
    assert [s["step"] for s in steps] == [5, 6, 7]
    assert [s["loss"] for s in steps] == pytest.approx(own)
    # What is left: the epoch's 10 steps less the 4 done before and the 3 done now.
    assert callbacks[0].progress.remaining_steps() == 3


# ---- mrcnn train, twice ------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_resume_after_a_stop_continues_metrics_and_checkpoints(tmp_path):
    from test_train_cli import _cli_args, of, run_cli

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "STOP").write_text("")  # stops after the first step
    code, events, stderr = run_cli(_cli_args(tmp_path, run_dir, steps=3, epochs=2))
    assert code == 0, stderr[-3000:]
    assert [c["step"] for c in of(events, "checkpoint")] == [1]

    code, events, stderr = run_cli(["--run-dir", str(run_dir), "--resume"])
    assert code == 0, stderr[-3000:]
    start = events[0]
    assert (start["initial_epoch"], start["initial_step"]) == (0, 1)
    assert [s["step"] for s in of(events, "step")] == [2, 3, 4, 5, 6]
    assert [s["epoch"] for s in of(events, "step")] == [1, 1, 2, 2, 2]
    run = RunDir(run_dir)
    assert [r["step"] for r in run.read_metrics("step")] == [1, 2, 3, 4, 5, 6]
    assert [(r["epoch"], r["step"]) for r in run.read_metrics("epoch")] == [(1, 3), (2, 6)]
    assert [(c["file"], c["step"]) for c in run.checkpoints()] == [
        ("epoch_0001_step_0001.h5", 1), ("epoch_0001.h5", 3), ("epoch_0002.h5", 6)]
    assert json.loads(run.run_json_path.read_text())["status"] == "finished"
