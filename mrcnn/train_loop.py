"""One training run from parsed arguments to its "end" event: start, record, fit, finish.

``mrcnn.train.run_training`` calls these in order once the data has been loaded:

    start_run      seed, precision, strategy, config (written to the run directory), the model
                   and its initial weights (or the checkpoint a --resume continues from)
    record_start   run.json (status running) and the "start" event
    fit            the input pipelines and callbacks (mrcnn.train_callbacks), Keras' fit, and
                   the run's end: finished, stopped (RunStopped) or failed (LossNotFinite)

Importing this module does not load TensorFlow; ``start_run`` does.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from mrcnn import run_repair
from mrcnn.optimizer_state import optimizer_state_path
from mrcnn.precision import apply_precision, training_choice
from mrcnn.runs import FAILED, FINISHED, RUNNING, STOPPED, RunDir, default_run_dir, resume_point
from mrcnn.train_events import END, ERROR, EXIT_FAILED, EXIT_OK, START
from mrcnn.train_setup import (build_config, choose_strategy, input_pipelines,
                               load_initial_weights, task_index)
from mrcnn.train_stop import LossNotFinite, RunStopped

log = logging.getLogger("mrcnn.train")


@dataclass
class StartedRun:
    """A run whose directory, config and model are ready to fit."""

    run_dir: RunDir
    model: object                 # mrcnn.model.MaskRCNN in training mode
    strategy: dict                # choose_strategy's description: kind, name, replicas, chief
    init: dict | None             # how the weights were initialised (run.json "init")
    resume_entry: dict | None     # the checkpoint a --resume continues from
    augmentation: object          # --augment or --augment-albumentations, parsed
    initial_step: int = 0         # global steps done before this session (a resume's)
    resumed_batches: int = 0      # steps of the epoch in progress done before (partial resume)

    @property
    def chief(self) -> bool:
        return self.strategy["chief"]


def start_run(args, run_dir, resume_entry, train_data) -> StartedRun:
    """Seed, strategy, config (written to the run directory) and the model with its weights."""
    import keras

    from mrcnn.data.albumentations_aug import training_augmentation
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(args.seed)
    strategy, strategy_info = choose_strategy()
    saved_config = run_dir.config_path if args.resume and run_dir.config_path.is_file() else None
    config = build_config(args, train_data, strategy_info["replicas"], saved_config)
    config = apply_precision(config, training_choice(args.precision, args.mixed_precision))
    if run_dir is None:
        run_dir = RunDir(default_run_dir(config.NAME or "mrcnn"))
    if not strategy_info["chief"]:
        # Only the chief writes the run directory; other workers keep records in a temp folder.
        import tempfile

        run_dir = RunDir(tempfile.mkdtemp(prefix=f"mrcnn_worker_{task_index()}_"))
    run_dir.create()
    args.run_dir = str(run_dir.path)  # so a later failure is recorded in this directory
    if not saved_config:
        config.to_json(run_dir.config_path)
    augmentation = training_augmentation(args.augment, args.augment_albumentations)

    model = MaskRCNN("training", config, run_dir.path, strategy=strategy)
    initial_step = resumed_batches = 0
    if resume_entry is not None:
        model.load_weights(resume_entry["path"])
        model.epoch, initial_step, resumed_batches = resume_point(resume_entry,
                                                                  config.STEPS_PER_EPOCH)
        init = {"resumed_from": resume_entry["path"]}
        log.info("resuming at epoch %d, global step %d (%d steps of the epoch done before)",
                 model.epoch + 1, initial_step + 1, resumed_batches)
    else:
        init = load_initial_weights(model, args, run_dir)
    return StartedRun(run_dir, model, strategy_info, init, resume_entry, augmentation,
                      initial_step, resumed_batches)


def record_start(args, run: StartedRun, events, summary, train_data, val_data) -> int:
    """Write run.json (status running) and emit the "start" event; returns the initial epoch."""
    run_dir, config, init = run.run_dir, run.model.config, run.init
    initial_epoch = run.model.epoch
    argv = args.argv if not args.resume else \
        run_repair.merge_resume_argv(run_dir.read_run().get("argv", []), args.argv)
    if args.resume:
        run_repair.trim_redone_metrics(run_dir, initial_epoch, config.STEPS_PER_EPOCH,
                                       last_step=run.initial_step)
    run_dir.update_run(
        argv=argv, args={k: v for k, v in vars(args).items() if k != "argv"}, dataset=summary,
        class_names=list(train_data.class_names), strategy=run.strategy, init=init,
        status=RUNNING, reason="", pid=os.getpid(), initial_epoch=initial_epoch,
        initial_step=run.initial_step,
        started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    events.emit(START, run_dir=str(run_dir.path), epochs=args.epochs,
                initial_epoch=initial_epoch, initial_step=run.initial_step,
                steps_per_epoch=int(config.STEPS_PER_EPOCH),
                validation_steps=int(config.VALIDATION_STEPS) if val_data is not None else 0,
                batch_size=int(config.BATCH_SIZE), learning_rate=_learning_rate(args, config),
                layers=args.layers, strategy=run.strategy["name"],
                replicas=run.strategy["replicas"], class_names=list(train_data.class_names),
                resumed_from=init.get("resumed_from") if init else None)
    return initial_epoch


def _learning_rate(args, config) -> float:
    return args.learning_rate or config.LEARNING_RATE


def fit(args, run: StartedRun, events, stop_flag, train_data, val_data) -> int:
    """Fit until ``--epochs`` with the run's callbacks; returns the exit code."""
    from mrcnn.train_callbacks import close_callbacks, training_callbacks

    model, run_dir = run.model, run.run_dir
    initial_epoch = model.epoch
    train_tf, val_tf, precise_bn = input_pipelines(
        args, model.config, train_data, val_data, run.augmentation, run.strategy["replicas"],
        initial_epoch, run.resumed_batches)
    callbacks = training_callbacks(model, run_dir, events, stop_flag, args.epochs,
                                   initial_epoch, run.chief, precise_bn, run.initial_step,
                                   run.resumed_batches)
    from mrcnn.tb_images import tb_images_callbacks

    callbacks = callbacks + tb_images_callbacks(args, model, val_data, run_dir, run.chief)
    resume = run.resume_entry
    status, reason, code = FINISHED, f"reached epoch {args.epochs}", EXIT_OK
    try:
        model.train(train_tf, val_tf, learning_rate=_learning_rate(args, model.config),
                    epochs=args.epochs, layers=args.layers, custom_callbacks=callbacks,
                    seed=args.seed,
                    optimizer_state=optimizer_state_path(resume["path"]) if resume else None)
    except RunStopped as stop:
        status, reason = STOPPED, str(stop)
    except LossNotFinite as error:
        events.emit(ERROR, message=str(error))
        status, reason, code = FAILED, str(error), EXIT_FAILED
    close_callbacks(callbacks)  # fit ended by an exception does not close them itself
    return finish(run_dir, events, status, reason, code)


def finish(run_dir, events, status, reason, code) -> int:
    """Record ``status`` in run.json, emit the "end" event; returns ``code``."""
    run_dir.set_status(status, reason)
    events.emit(END, status=status, reason=reason)
    return code
