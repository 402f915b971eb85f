"""The Keras callbacks of one ``mrcnn train`` run, one job each (detectron2's hooks, in Keras).

``training_callbacks`` builds them in the order they must run after every step and epoch:

    StepLosses         advances the global step; this step's losses from Keras' running means
    ResumedEpochEnd    ends the epoch a partial checkpoint resumed in after its remaining steps
    NanGuard           a NaN / Inf loss ends the run (LossNotFinite), before anything is written
    ProgressReporter   "step" / "epoch" events (mrcnn.train_events) and metrics.jsonl
    TensorBoardWriter  train / val scalars under the run's tb/ (chief only)
    PreciseBatchNorm   BatchNorm statistics over N batches before each epoch checkpoint
    CheckpointWriter   epoch checkpoints; on a stop request a partial one, then RunStopped

They share one ``RunProgress`` (step, epoch, this step's losses). Importing this module loads
Keras; ``mrcnn.train`` imports it only once the data has been checked.
"""

from __future__ import annotations

import logging
import math
import os
import time

import keras

from mrcnn.optimizer_state import optimizer_state_path
from mrcnn.train_events import (CHECKPOINT, EPOCH, NAN_HOOK_ENV, STEP, STEP_LOSSES, VAL_PREFIX,
                                json_number)
from mrcnn.train_stop import LossNotFinite, RunStopped

log = logging.getLogger("mrcnn.train")


class RunProgress:
    """Where the run is, shared by the callbacks: global step, epoch, this step's losses.

    A session resumed from a partial checkpoint starts inside epoch ``initial_epoch + 1``:
    ``resumed_batches`` of its steps were done before, and the global step goes on from
    ``initial_step`` (mrcnn.runs.resume_point), so labels and curves continue where they were.
    """

    def __init__(self, epochs: int, initial_epoch: int, steps_per_epoch: int,
                 initial_step: int | None = None, resumed_batches: int = 0):
        self.epochs = int(epochs)                  # train until this epoch (counted from 1)
        self.initial_epoch = int(initial_epoch)    # epochs complete before this session
        self.steps_per_epoch = int(steps_per_epoch)
        self.initial_step = self.initial_epoch * self.steps_per_epoch \
            if initial_step is None else int(initial_step)  # global steps before this session
        self.resumed_batches = int(resumed_batches)  # steps of the first epoch done before
        self.step = self.initial_step              # global, counted from 1
        self.epoch = self.initial_epoch            # the epoch in progress, from 1
        self.batch = -1                            # index of the last step within its epoch
        self.batch_offset = 0                      # steps of this epoch done in an earlier session
        self.values: dict = {}                     # this step's numbers, STEP_LOSSES keys

    @property
    def first_step(self) -> int:
        """The global step this session starts with (it includes graph tracing)."""
        return self.initial_step + 1

    def begin_epoch(self, keras_epoch: int) -> None:
        """Keras' epoch index (from 0) begins: the first one may continue a partial epoch."""
        self.epoch = keras_epoch + 1
        self.batch = -1
        self.batch_offset = self.resumed_batches if keras_epoch == self.initial_epoch else 0

    def remaining_steps(self) -> int:
        """Steps left after the current one until the last epoch ends."""
        return (self.epochs - self.epoch + 1) * self.steps_per_epoch - (self.batch + 1)


class StepLosses(keras.callbacks.Callback):
    """Counts steps and turns Keras' running epoch means back into each step's own losses."""

    def __init__(self, progress: RunProgress, force_nan_step: int = 0):
        super().__init__()
        self.progress = progress
        self.force_nan_step = force_nan_step  # NAN_HOOK_ENV: this step's loss reads as NaN
        self.previous_means: dict = {}

    def on_train_begin(self, logs=None):
        self.progress.step = self.progress.initial_step

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.begin_epoch(epoch)
        self.previous_means = {name: 0.0 for name in STEP_LOSSES}

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        progress = self.progress
        progress.step += 1
        progress.batch = progress.batch_offset + batch
        values = {}
        for name in STEP_LOSSES:  # this step's value: k*m_k - (k-1)*m_(k-1), k counted by Keras
            mean = float(logs.get(name, float("nan")))
            values[name] = (batch + 1) * mean - batch * self.previous_means[name]
            self.previous_means[name] = mean
        if self.force_nan_step and progress.step == self.force_nan_step:
            values["loss"] = float("nan")
        progress.values = values


class ResumedEpochEnd(keras.callbacks.Callback):
    """Ends the epoch a partial checkpoint resumed in once it has its ``steps_per_epoch`` steps.

    Keras runs every epoch for ``steps_per_epoch`` steps; its loop leaves an epoch early when
    ``stop_training`` is set (validation and on_epoch_end still run) and the whole fit only if
    the flag is still set after on_epoch_end, where it is cleared again.
    """

    def __init__(self, progress: RunProgress):
        super().__init__()
        self.progress = progress
        self.ended_early = False

    def on_train_batch_end(self, batch, logs=None):
        progress = self.progress
        if progress.batch_offset and progress.batch + 1 >= progress.steps_per_epoch:
            self.model.stop_training = True
            self.ended_early = True

    def on_epoch_end(self, epoch, logs=None):
        if self.ended_early:
            self.model.stop_training = False
            self.ended_early = False


class NanGuard(keras.callbacks.Callback):
    """Raises LossNotFinite when a step's loss is NaN or Inf, naming the last good checkpoint."""

    def __init__(self, progress: RunProgress, run_dir):
        super().__init__()
        self.progress = progress
        self.run_dir = run_dir

    def on_train_batch_end(self, batch, logs=None):
        values = self.progress.values
        broken = [n for n in STEP_LOSSES if not math.isfinite(values[n])]
        if not broken:
            return
        detail = ", ".join(f"{n}={values[n]:.4g}" for n in STEP_LOSSES)
        last = self.run_dir.last_checkpoint()
        kept = f"last good checkpoint: {last['path']}" if last else "no checkpoint was written"
        kind = "NaN" if any(math.isnan(values[n]) for n in broken) else "Inf"
        raise LossNotFinite(
            f"loss became {kind} at step {self.progress.step} (epoch {self.progress.epoch}): "
            f"{detail}; {kept}. Try a lower --learning-rate or check the data.")


class ProgressReporter(keras.callbacks.Callback):
    """Emits the "step" and "epoch" events and appends them to metrics.jsonl (chief only)."""

    def __init__(self, progress: RunProgress, events, run_dir, batch_size: int, chief=True):
        super().__init__()
        self.progress = progress
        self.events = events
        self.run_dir = run_dir
        self.batch_size = int(batch_size)
        self.chief = chief
        self.last_time = self.epoch_start = time.perf_counter()
        self.step_time = None  # moving average, seconds per step

    def on_train_begin(self, logs=None):
        self.last_time = time.perf_counter()
        self.step_time = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        progress = self.progress
        now = time.perf_counter()
        duration, self.last_time = now - self.last_time, now
        if progress.step > progress.first_step:  # the first step includes tracing
            # A moving average of seconds per step, for the ETA.
            self.step_time = duration if self.step_time is None else \
                0.9 * self.step_time + 0.1 * duration
        record = self.events.emit(
            STEP, step=progress.step, epoch=progress.epoch,
            **{name: json_number(progress.values[name]) for name in STEP_LOSSES},
            lr=json_number(self.model.optimizer.learning_rate.numpy()),
            images_per_s=json_number(self.batch_size / max(duration, 1e-9)),
            eta_s=json_number(progress.remaining_steps() * (self.step_time or duration)))
        if self.chief:
            self.run_dir.append_metrics(record)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        means = {name: json_number(logs[name]) for name in STEP_LOSSES if name in logs}
        val = {name: json_number(logs[name]) for name in logs if name.startswith(VAL_PREFIX)}
        record = self.events.emit(EPOCH, epoch=epoch + 1, step=self.progress.step, **means, **val,
                                  time_s=round(time.perf_counter() - self.epoch_start, 3))
        if self.chief:
            self.run_dir.append_metrics(record)


class TensorBoardWriter(keras.callbacks.Callback):
    """Each step's losses under ``log_dir/train``, each epoch's validation losses under ``/val``."""

    SPLITS = ("train", "val")

    def __init__(self, progress: RunProgress, log_dir):
        super().__init__()
        self.progress = progress
        self.log_dir = log_dir
        self.writers: dict = {}

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.writers = {split: tf.summary.create_file_writer(str(self.log_dir / split))
                        for split in self.SPLITS}

    def on_train_batch_end(self, batch, logs=None):
        self._write("train", self.progress.values, self.progress.step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val = {name[len(VAL_PREFIX):]: json_number(logs[name]) for name in logs
               if name.startswith(VAL_PREFIX)}
        self._write("val", val, epoch + 1)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Close the event files (also after fit ended by an exception); idempotent."""
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()

    def _write(self, split, values, step):
        import tensorflow as tf

        if split not in self.writers:
            return
        with self.writers[split].as_default():
            for name, value in values.items():
                if value is not None and math.isfinite(value):
                    tf.summary.scalar(name, value, step=step)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each epoch's checkpoint, BatchNorm's moving statistics become the average over
    ``batches`` (training batches; ``--precise-bn``) - needed when training from scratch."""

    def __init__(self, trainer, batches):
        super().__init__()
        self.trainer = trainer
        self.batches = batches

    def on_epoch_end(self, epoch, logs=None):
        from mrcnn.trainer import recompute_batchnorm_statistics

        start = time.perf_counter()
        used = recompute_batchnorm_statistics(self.trainer, self.batches)
        log.info("precise BN: statistics of %d batches (%.1f s)", used, time.perf_counter() - start)


class CheckpointWriter(keras.callbacks.Callback):
    """Writes (chief only) and registers a checkpoint after each epoch, and honours stop requests:
    within an epoch a partial checkpoint and RunStopped, at its last step after the epoch's one."""

    def __init__(self, progress: RunProgress, model, run_dir, events, stop_flag, chief=True):
        super().__init__()
        self.progress = progress
        self.mrcnn_model = model  # mrcnn.model.MaskRCNN (Keras sets self.model to the trainer)
        self.run_dir = run_dir
        self.events = events
        self.stop_flag = stop_flag
        self.chief = chief
        self.stop_reason = None

    def on_train_batch_end(self, batch, logs=None):
        if not (self.stop_flag.reason or self.run_dir.stop_requested()):
            return
        self.stop_reason = self.stop_flag.reason or f"stop file {self.run_dir.stop_path}"
        if self.progress.batch + 1 < self.progress.steps_per_epoch:
            self.write(partial=True)
            raise RunStopped(self.stop_reason)
        # The epoch's last step: stop after its regular checkpoint (on_epoch_end).

    def on_epoch_end(self, epoch, logs=None):
        self.write(partial=False)
        if self.stop_reason:
            raise RunStopped(self.stop_reason)

    def write(self, partial: bool) -> None:
        """Weights, then optimizer state, then the index entry, then the "checkpoint" event."""
        if not self.chief:
            return
        epoch, step = self.progress.epoch, self.progress.step
        path = self.run_dir.checkpoint_path(epoch, step if partial else None)
        self.mrcnn_model.save_weights(path)  # temp file + rename
        try:
            self.mrcnn_model.save_optimizer_state(optimizer_state_path(path))  # so is this
        except BaseException:  # no half pair: the index keeps the last good checkpoint
            os.remove(path)
            raise
        self.run_dir.register_checkpoint(path, epoch=epoch, step=step, partial=partial)
        self.events.emit(CHECKPOINT, path=str(path), epoch=epoch, step=step, partial=partial)


def training_callbacks(model, run_dir, events, stop_flag, epochs, initial_epoch, chief=True,
                       precise_bn_batches=None, initial_step=None, resumed_batches=0) -> list:
    """The callbacks of one run, in order (module docstring); ``model`` is the MaskRCNN.

    ``precise_bn_batches``: an iterable of training batches whose BatchNorm statistics replace
    the moving averages before each whole-epoch checkpoint (``--precise-bn``), or None.
    ``initial_step`` / ``resumed_batches``: where a resumed run continues
    (mrcnn.runs.resume_point); default: the start of epoch ``initial_epoch + 1``.
    """
    config = model.config
    progress = RunProgress(epochs, initial_epoch, config.STEPS_PER_EPOCH, initial_step,
                           resumed_batches)
    force_nan_step = int(os.environ.get(NAN_HOOK_ENV, "0") or 0)
    callbacks = [StepLosses(progress, force_nan_step), ResumedEpochEnd(progress),
                 NanGuard(progress, run_dir),
                 ProgressReporter(progress, events, run_dir, config.BATCH_SIZE, chief)]
    if chief:
        callbacks.append(TensorBoardWriter(progress, run_dir.tb_path))
    if precise_bn_batches is not None:
        callbacks.append(PreciseBatchNorm(model.trainer, precise_bn_batches))
    callbacks.append(CheckpointWriter(progress, model, run_dir, events, stop_flag, chief))
    return callbacks


def close_callbacks(callbacks) -> None:
    """Release what the callbacks hold open (fit may have ended by an exception)."""
    for callback in callbacks:
        if hasattr(callback, "close"):
            callback.close()
