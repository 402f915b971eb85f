"""``python -m mrcnn.train`` / ``mrcnn train``: train into a run directory, report JSON lines.

stdout carries JSON lines only, one object per line, flushed at once (the viewer's QProcess and
scripts parse it); TF logs, warnings and messages go to stderr. Events::

    {"event": "start", "run_dir", "epochs", "initial_epoch", "steps_per_epoch", "strategy", ...}
    {"event": "step", "step", "epoch", "loss", "<each loss>", "weight_decay", "lr",
     "images_per_s", "eta_s"}          losses of that step (not the epoch's running mean)
    {"event": "epoch", "epoch", "step", "loss", ..., "val_loss", "val_<each loss>", "time_s"}
    {"event": "checkpoint", "path", "epoch", "step", "partial"}
    {"event": "error", "message"}
    {"event": "end", "status": "finished"|"stopped"|"failed", "reason"}

Steps count from 1 over the whole run; epochs count from 1 (epoch 3 = the third pass).
Exit codes: 0 finished or stopped, 1 failed (NaN loss, bad data, ...), 2 bad arguments.

Stopping: SIGTERM, SIGINT or a ``STOP`` file in the run directory finish the current step, write
``checkpoints/epoch_EEEE_step_SSSS.h5`` (registered as partial, so ``--resume`` restarts epoch
EEEE) and exit 0 with status "stopped". With ``--stop-with-parent [PID]`` (the viewer passes
its pid) the same happens when the process that started this one exits, so a crashed or killed
viewer never leaves an orphan training on. If stdout's reader is gone, events are dropped and
training goes on (a broken pipe must not cost the epoch in progress). A NaN/Inf loss ends the
run with status "failed", exit 1, and no checkpoint of the broken weights.

Test hook: ``MRCNN_TEST_FORCE_NAN_AT_STEP=S`` makes the loss of global step S read as NaN, to
exercise the NaN path without waiting for a real divergence.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mrcnn.optimizer_state import optimizer_state_path  # noqa: E402
from mrcnn.runs import RunDir, default_run_dir, read_json, resume_epoch  # noqa: E402

log = logging.getLogger("mrcnn.train")

NAN_HOOK_ENV = "MRCNN_TEST_FORCE_NAN_AT_STEP"
LAYER_PRESETS = ("heads", "3+", "4+", "5+", "all")
# Seeds of the shapes validation images are offset so they never repeat training images.
SHAPES_VAL_SEED_OFFSET = 1_000_003


class UsageError(Exception):
    """Bad command-line arguments (exit code 2)."""


class RunStopped(Exception):
    """A stop request was honoured after a step (a checkpoint is written)."""


class LossNotFinite(Exception):
    """A loss became NaN or Inf; the message says where."""


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``train`` arguments (shared by ``python -m mrcnn.train`` and ``mrcnn train``)."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=["shapes", "coco"], default=None,
                      help="'shapes' (synthetic) or 'coco' (default when --train-json is given)")
    data.add_argument("--shapes-train", type=int, default=500, help="shapes training images")
    data.add_argument("--shapes-val", type=int, default=50, help="shapes validation images")
    data.add_argument("--shapes-size", type=int, default=128, help="shapes image side, pixels")
    data.add_argument("--train-json", help="COCO instances JSON of the training set")
    data.add_argument("--train-images", help="image directory of the training set")
    data.add_argument("--val-json", help="COCO instances JSON of the validation set")
    data.add_argument("--val-images", help="image directory of the validation set")
    parser.add_argument("--config", help="Config JSON (Config.from_json); NUM_CLASSES comes "
                        "from the dataset when the file does not set it")
    parser.add_argument("--init", default="none",
                        help="initial weights: none | last (newest checkpoint of a sibling run) "
                        "| PATH to an HDF5 weights file")
    parser.add_argument("--exclude", nargs="*", default=None, metavar="LAYER",
                        help="layers not to load from --init (default: the class-count layers "
                        "when the file's class count differs)")
    parser.add_argument("--layers", default="heads",
                        help=f"layers to train: {' | '.join(LAYER_PRESETS)} | a regex")
    parser.add_argument("--epochs", type=int, default=1, help="train until this epoch")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: the config's LEARNING_RATE")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="default: the config's STEPS_PER_EPOCH")
    parser.add_argument("--validation-steps", type=int, default=None,
                        help="default: the config's VALIDATION_STEPS; 0 = no validation")
    parser.add_argument("--augment", default="", help='e.g. "hflip,scale=0.8-1.2" (or "none")')
    parser.add_argument("--run-dir", help="run directory (default runs/<NAME>_<timestamp>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last good checkpoint")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 policy")
    parser.add_argument("--precise-bn", type=int, default=0, metavar="BATCHES",
                        help="with TRAIN_BN: before each epoch's checkpoint, set BatchNorm's "
                        "moving statistics to the average over BATCHES training batches "
                        "(needed when training from scratch; 0 = off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and init")
    parser.add_argument("--local-workers", type=int, default=1, metavar="N", help="run N "
                        "workers on this machine (MultiWorkerMirroredStrategy; mrcnn/multiworker.py)")
    parser.add_argument("--tb-images", type=int, default=0, metavar="N", help="each epoch, "
                        "detections on N fixed validation images to TensorBoard (mrcnn/tb_images.py)")
    parser.add_argument("--stop-with-parent", nargs="?", type=int, const=0, default=None,
                        metavar="PID",
                        help="stop (after the current step, with a checkpoint) when the parent "
                        "process exits: PID (default: the parent at start-up) is the one to outlive")
    return parser


def build_parser(prog="python -m mrcnn.train") -> argparse.ArgumentParser:
    return add_arguments(_Parser(prog=prog, description="Train Mask R-CNN into a run directory."))


def parse_args(argv):
    """Parsed arguments; ``--resume`` re-applies the run's saved argv, then the new one on top."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:
        if not args.run_dir:
            raise UsageError("--resume needs --run-dir (the run to continue)")
        run = RunDir(args.run_dir)
        if not run.exists():
            raise UsageError(f"--resume: {run.run_json_path} does not exist; nothing to resume")
        saved = run.read_run().get("argv", [])
        args = parser.parse_args(list(saved) + list(argv))
    args.argv = [a for a in (argv or []) if a != "--resume"]
    if args.dataset is None:
        args.dataset = "coco" if args.train_json else "shapes"
    if args.dataset == "coco":
        missing = [f"--{n.replace('_', '-')}" for n in ("train_json", "train_images")
                   if not getattr(args, n)]
        if missing:
            raise UsageError(f"--dataset coco needs {' and '.join(missing)}")
        if bool(args.val_json) != bool(args.val_images):
            raise UsageError("--val-json and --val-images go together")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    return args


# ---------------------------------------------------------------------------------------------
# strategy, datasets, config, initial weights
# ---------------------------------------------------------------------------------------------


def strategy_kind(tf_config_text, gpu_count) -> str:
    """'multi_worker' (TF_CONFIG names several workers), 'mirrored' (several GPUs) or 'default'."""
    if tf_config_text:
        try:
            cluster = json.loads(tf_config_text).get("cluster", {})
        except (json.JSONDecodeError, AttributeError):
            raise ValueError(f"TF_CONFIG is not a JSON object: {tf_config_text[:200]!r}") from None
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers > 1:
            return "multi_worker"
    return "mirrored" if gpu_count > 1 else "default"


def choose_strategy():
    """(tf.distribute strategy, description dict) for this machine / cluster; logged on stderr."""
    import tensorflow as tf

    kind = strategy_kind(os.environ.get("TF_CONFIG"), len(tf.config.list_physical_devices("GPU")))
    if kind == "multi_worker":
        from mrcnn.multiworker import make_multi_worker_strategy

        strategy = make_multi_worker_strategy()  # bounded detection of a dead worker
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    info = {"kind": kind, "name": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync), "chief": _is_chief(kind)}
    log.info("distribution strategy: %s with %d replica(s)", info["name"], info["replicas"])
    return strategy, info


def _is_chief(kind) -> bool:
    """Only the chief worker writes the run directory in multi-worker training."""
    if kind != "multi_worker":
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    if task.get("type") == "chief":
        return True
    is_first_worker = task.get("type") == "worker" and int(task.get("index", 0)) == 0
    return is_first_worker and "chief" not in cluster


def _task_index() -> int:
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


def load_datasets(args):
    """(train dataset, val dataset or None, summary dict) from the data arguments."""
    if args.dataset == "shapes":
        from mrcnn.data.shapes import ShapesDataset

        def shapes(count, seed):
            dataset = ShapesDataset()
            dataset.load_shapes(count, args.shapes_size, args.shapes_size, seed=seed)
            dataset.prepare()
            return dataset

        train = shapes(args.shapes_train, args.seed)
        val = None
        if args.shapes_val:
            val = shapes(args.shapes_val, args.seed + SHAPES_VAL_SEED_OFFSET)
        summary = {"kind": "shapes", "size": args.shapes_size}
    else:
        train = _coco(args.train_json, args.train_images)
        val = _coco(args.val_json, args.val_images) if args.val_json else None
        summary = {"kind": "coco", "train_json": args.train_json, "val_json": args.val_json}
    summary.update(train_images=len(train.image_ids),
                   val_images=len(val.image_ids) if val is not None else 0)
    return train, val, summary


def _coco(json_path, image_dir):
    from mrcnn.data.coco import CocoDataset

    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image directory {image_dir!r} (for {json_path}) does not exist")
    dataset = CocoDataset()
    dataset.load_coco(json_path, image_dir)
    dataset.prepare()
    if not dataset.image_ids.size:
        raise ValueError(f"{json_path}: no images to train on")
    return dataset


def default_config_values(args) -> dict:
    """Config fields used when no --config is given: a small model for shapes, matterport's else."""
    if args.dataset != "shapes":
        return {"NAME": "coco"}
    side = max(64, int(math.ceil(args.shapes_size / 64)) * 64)
    return {"NAME": "shapes", "BACKBONE": "resnet18", "IMAGES_PER_GPU": 2,
            "IMAGE_MIN_DIM": side, "IMAGE_MAX_DIM": side,
            "RPN_ANCHOR_SCALES": [s * side // 128 for s in (8, 16, 32, 64, 128)],
            "TRAIN_ROIS_PER_IMAGE": 32, "POST_NMS_ROIS_TRAINING": 500,
            "POST_NMS_ROIS_INFERENCE": 250, "PRE_NMS_LIMIT": 1000,
            "RPN_TRAIN_ANCHORS_PER_IMAGE": 64, "TOP_DOWN_PYRAMID_SIZE": 64,
            "FPN_CLASSIF_FC_LAYERS_SIZE": 256, "MAX_GT_INSTANCES": 10,
            "DETECTION_MAX_INSTANCES": 20, "MINI_MASK_SHAPE": [28, 28],
            "STEPS_PER_EPOCH": 100, "VALIDATION_STEPS": 5,
            **_if_known({"RPN_CONV_CHANNELS": 64, "MASK_HEAD_CHANNELS": 64})}


def _if_known(values) -> dict:
    """The entries of ``values`` that are Config fields (newer size knobs may be absent)."""
    from mrcnn.config import Config

    return {k: v for k, v in values.items() if hasattr(Config, k)}


def build_config(args, train_dataset, replicas, saved_config=None):
    """Config from --config (or the run's config.json on resume) + dataset + command line."""
    from mrcnn.config import Config

    if saved_config is not None:
        values = read_json(saved_config, "config file")
    elif args.config:
        values = read_json(args.config, "config file")
        if not isinstance(values, dict):
            raise ValueError(f"config file {args.config}: expected a JSON object of fields")
    else:
        values = default_config_values(args)
        log.info("no --config: using %s defaults %s", values["NAME"], values)
    num_classes = int(train_dataset.num_classes)
    if "NUM_CLASSES" not in values:
        values["NUM_CLASSES"] = num_classes
        log.info("config: NUM_CLASSES set to %d from the dataset (%s)", num_classes,
                 ", ".join(train_dataset.class_names))
    elif int(values["NUM_CLASSES"]) < num_classes:
        raise ValueError(f"config NUM_CLASSES is {values['NUM_CLASSES']} but the dataset has "
                         f"{num_classes} classes (background included)")
    overrides = {"LEARNING_RATE": args.learning_rate, "STEPS_PER_EPOCH": args.steps_per_epoch,
                 "VALIDATION_STEPS": args.validation_steps}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if replicas > 1:
        log.info("config: GPU_COUNT set to %d (one per replica)", replicas)
    values["GPU_COUNT"] = replicas
    return Config.from_dict(values).validate()


def file_class_count(path):
    """NUM_CLASSES of an HDF5 weights file (mrcnn_class_logits' output size), None if absent."""
    import h5py

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "mrcnn_class_logits" not in root:
            return None
        shapes = []
        root["mrcnn_class_logits"].visititems(
            lambda name, obj: shapes.append(obj.shape) if hasattr(obj, "shape") else None)
    kernels = [s for s in shapes if len(s) == 2]
    return int(kernels[0][1]) if kernels else None


def find_last_checkpoint(runs_root, exclude_dir=None):
    """The newest good checkpoint of any run directory under ``runs_root`` (None if none)."""
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


def load_initial_weights(model, args, run_dir):
    """Apply --init / --exclude; returns a description for run.json (None for --init none)."""
    if args.init == "none":
        return None
    path = args.init
    if path == "last":
        path = find_last_checkpoint(run_dir.path.parent, exclude_dir=run_dir.path)
        if path is None:
            raise FileNotFoundError(f"--init last: no run under {run_dir.path.parent} has a "
                                    f"good checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--init: weights file {path} does not exist")
    exclude = args.exclude
    if exclude is None:
        exclude = []
        count = file_class_count(path)
        if count is not None and count != model.config.NUM_CLASSES:
            from mrcnn.weights import CLASS_COUNT_LAYERS

            exclude = list(CLASS_COUNT_LAYERS)
            log.info("--init %s has %d classes, the model %d: not loading %s", path, count,
                     model.config.NUM_CLASSES, ", ".join(exclude))
    report = model.load_weights(path, exclude=exclude)
    return {"path": str(path), "exclude": exclude, "loaded_layers": len(report.loaded)}


# ---------------------------------------------------------------------------------------------
# progress: JSON events, metrics.jsonl, TensorBoard, checkpoints, stop and NaN handling
# ---------------------------------------------------------------------------------------------


class EventWriter:
    """Writes one JSON object per line to ``stream`` and flushes it at once.

    A reader that went away (broken pipe, closed stream) stops the events, not the run: the run
    directory still records everything that matters.
    """

    def __init__(self, stream):
        self.stream = stream

    def emit(self, event, **fields) -> dict:
        record = {"event": event, **fields}
        if self.stream is not None:
            try:
                self.stream.write(json.dumps(record, default=_jsonable) + "\n")
                self.stream.flush()
            except (OSError, ValueError) as error:  # ValueError: write to a closed file
                log.warning("stdout is gone (%s); no more JSON events, training goes on", error)
                self.stream = None
        return record


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _number(value):
    """A float for JSON: NaN and Inf become None (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


class StopFlag:
    """Set by SIGTERM / SIGINT; a second SIGINT interrupts at once."""

    def __init__(self):
        self.reason = None

    def install(self):
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


def make_progress_callback(model, run_dir, events, stop_flag, epochs, initial_epoch, chief=True,
                           precise_bn_batches=None):
    """A keras Callback that reports, checkpoints, stops on request and fails on NaN.

    ``precise_bn_batches``: an iterable of training batches whose BatchNorm statistics replace
    the moving averages before each whole-epoch checkpoint (``--precise-bn``), or None.
    """
    import keras

    from mrcnn.training import LOSS_NAMES

    config = model.config
    names = ("loss",) + LOSS_NAMES + ("weight_decay",)
    steps_per_epoch = int(config.STEPS_PER_EPOCH)
    force_nan_step = int(os.environ.get(NAN_HOOK_ENV, "0") or 0)

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            import tensorflow as tf

            self.writers = {}
            if chief:
                self.writers = {split: tf.summary.create_file_writer(str(run_dir.tb_path / split))
                                for split in ("train", "val")}
            self.step = initial_epoch * steps_per_epoch
            self.last_time = time.perf_counter()
            self.step_time = None  # moving average, seconds per step
            self.stop_reason = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self.previous_means = {name: 0.0 for name in names}
            self.epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            values = self._step_values(batch, logs or {})
            now = time.perf_counter()
            duration, self.last_time = now - self.last_time, now
            if self.step > initial_epoch * steps_per_epoch + 1:  # the first step includes tracing
                self.step_time = duration if self.step_time is None else \
                    0.9 * self.step_time + 0.1 * duration
            self._check_finite(values)
            remaining = (epochs - self.epoch) * steps_per_epoch + steps_per_epoch - (batch + 1)
            record = events.emit(
                "step", step=self.step, epoch=self.epoch,
                **{name: _number(values[name]) for name in names},
                lr=_number(self.model.optimizer.learning_rate.numpy()),
                images_per_s=_number(config.BATCH_SIZE / max(duration, 1e-9)),
                eta_s=_number(remaining * (self.step_time or duration)))
            if chief:
                run_dir.append_metrics(record)
                self._summaries("train", values, self.step)
            if stop_flag.reason or run_dir.stop_requested():
                self.stop_reason = stop_flag.reason or f"stop file {run_dir.stop_path}"
                if batch + 1 < steps_per_epoch:
                    self._checkpoint(partial=True)
                    raise RunStopped(self.stop_reason)
                # The epoch's last step: stop after its regular checkpoint (on_epoch_end).

        def _step_values(self, batch, logs):
            """This step's values from Keras' running means: k*m_k - (k-1)*m_(k-1)."""
            values = {}
            for name in names:
                mean = float(logs.get(name, float("nan")))
                values[name] = (batch + 1) * mean - batch * self.previous_means[name]
                self.previous_means[name] = mean
            if force_nan_step and self.step == force_nan_step:
                values["loss"] = float("nan")
            return values

        def _check_finite(self, values):
            broken = [n for n in names if not math.isfinite(values[n])]
            if not broken:
                return
            detail = ", ".join(f"{n}={values[n]:.4g}" for n in names)
            last = run_dir.last_checkpoint()
            kept = f"last good checkpoint: {last['path']}" if last else "no checkpoint was written"
            raise LossNotFinite(
                f"loss became {'NaN' if any(math.isnan(values[n]) for n in broken) else 'Inf'} "
                f"at step {self.step} (epoch {self.epoch}): {detail}; {kept}. "
                f"Try a lower --learning-rate or check the data.")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            means = {name: _number(logs[name]) for name in names if name in logs}
            val = {name: _number(logs[name]) for name in logs if name.startswith("val_")}
            record = events.emit("epoch", epoch=epoch + 1, step=self.step, **means, **val,
                                 time_s=round(time.perf_counter() - self.epoch_start, 3))
            if chief:
                run_dir.append_metrics(record)
                self._summaries("val", {k[4:]: v for k, v in val.items()}, epoch + 1)
                for writer in self.writers.values():
                    writer.flush()
            if precise_bn_batches is not None:
                from mrcnn.training import recompute_batchnorm_statistics

                start = time.perf_counter()
                used = recompute_batchnorm_statistics(model.trainer, precise_bn_batches)
                log.info("precise BN: statistics of %d batches (%.1f s)", used,
                         time.perf_counter() - start)
            self._checkpoint(partial=False)
            if self.stop_reason:
                raise RunStopped(self.stop_reason)

        def _summaries(self, split, values, step):
            import tensorflow as tf

            if split not in self.writers:
                return
            with self.writers[split].as_default():
                for name, value in values.items():
                    if value is not None and math.isfinite(value):
                        tf.summary.scalar(name, value, step=step)

        def _checkpoint(self, partial):
            if not chief:
                return
            step = self.step if partial else None
            path = run_dir.checkpoint_path(self.epoch, step)
            model.save_weights(path)  # temp file + rename
            model.save_optimizer_state(optimizer_state_path(path))  # so is this
            run_dir.register_checkpoint(path, epoch=self.epoch, step=self.step, partial=partial)
            events.emit("checkpoint", path=str(path), epoch=self.epoch, step=self.step,
                        partial=partial)

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()

    return Progress()


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


def prepare_run(args):
    """(RunDir, checkpoint entry to resume from or None) after checking the directory."""
    if args.resume:
        run_dir = RunDir(args.run_dir)
        entry = run_dir.last_checkpoint()
        if entry is None:
            log.info("--resume: %s has no good checkpoint; starting from epoch 0",
                     run_dir.path)
        run_dir.clear_stop()  # the request that ended the previous session is done
        return run_dir, entry
    path = Path(args.run_dir) if args.run_dir else None
    if path is not None and RunDir(path).exists():
        raise UsageError(f"--run-dir {path} already holds a run; add --resume to continue it "
                         f"or choose another directory")
    return (RunDir(path) if path else None), None


def run_training(args, events) -> int:
    """Train as the parsed ``args`` say, reporting through ``events``; returns the exit code."""
    stop_flag = StopFlag().install()  # early, so a SIGTERM during start-up still stops cleanly
    if args.stop_with_parent is not None:
        watch_parent(stop_flag, args.stop_with_parent)
    run_dir, resume_entry = prepare_run(args)
    # Data first: a wrong path fails in a second, before TensorFlow is imported.
    train_data, val_data, summary = load_datasets(args)
    import keras

    from mrcnn.data.augment import parse_augmentation
    from mrcnn.data.pipeline import make_dataset
    from mrcnn.model import MaskRCNN

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision: mixed_float16")
    keras.utils.set_random_seed(args.seed)
    strategy, strategy_info = choose_strategy()
    saved_config = run_dir.config_path if args.resume and run_dir.config_path.is_file() else None
    config = build_config(args, train_data, strategy_info["replicas"], saved_config)
    if run_dir is None:
        run_dir = RunDir(default_run_dir(config.NAME or "mrcnn"))
    if not strategy_info["chief"]:
        # Only the chief writes the run directory; other workers keep records in a temp folder.
        import tempfile

        run_dir = RunDir(tempfile.mkdtemp(prefix=f"mrcnn_worker_{_task_index()}_"))
    run_dir.create()
    args.run_dir = str(run_dir.path)  # so a later failure is recorded in this directory
    if not saved_config:
        config.to_json(run_dir.config_path)
    augmentation = parse_augmentation(args.augment)
    chief = strategy_info["chief"]

    model = MaskRCNN("training", config, run_dir.path, strategy=strategy)
    if resume_entry is not None:
        model.load_weights(resume_entry["path"])
        model.epoch = resume_epoch(resume_entry)
        init = {"resumed_from": resume_entry["path"]}
    else:
        init = load_initial_weights(model, args, run_dir)
    initial_epoch = model.epoch
    argv = args.argv if not args.resume else run_dir.read_run().get("argv", []) + args.argv
    run_dir.update_run(
        argv=argv, args={k: v for k, v in vars(args).items() if k != "argv"}, dataset=summary,
        class_names=list(train_data.class_names), strategy=strategy_info, init=init,
        status="running", reason="", pid=os.getpid(), initial_epoch=initial_epoch,
        started=time.strftime("%Y-%m-%dT%H:%M:%S"))

    learning_rate = args.learning_rate or config.LEARNING_RATE
    events.emit("start", run_dir=str(run_dir.path), epochs=args.epochs,
                initial_epoch=initial_epoch, steps_per_epoch=int(config.STEPS_PER_EPOCH),
                validation_steps=int(config.VALIDATION_STEPS) if val_data is not None else 0,
                batch_size=int(config.BATCH_SIZE), learning_rate=learning_rate,
                layers=args.layers, strategy=strategy_info["name"],
                replicas=strategy_info["replicas"], class_names=list(train_data.class_names),
                resumed_from=init.get("resumed_from") if init else None)
    if initial_epoch >= args.epochs:
        reason = f"already trained to epoch {initial_epoch} (--epochs {args.epochs})"
        run_dir.set_status("finished", reason)
        events.emit("end", status="finished", reason=reason)
        return 0

    # Each (re)start gets its own data order: a resumed run must not replay epoch 1's.
    seed = args.seed + 7919 * initial_epoch
    train_tf = make_dataset(train_data, config, shuffle=True, augmentation=augmentation, seed=seed)
    train_tf = train_tf.map(masks_as_uint8)
    val_tf = None
    if val_data is not None and config.VALIDATION_STEPS:
        val_tf = make_dataset(val_data, config, shuffle=False, seed=args.seed).map(masks_as_uint8)
    precise_bn = None
    if args.precise_bn > 0 and config.TRAIN_BN:
        if strategy_info["replicas"] > 1:
            log.warning("--precise-bn is ignored with %d replicas", strategy_info["replicas"])
        else:
            precise_bn = make_dataset(train_data, config, shuffle=True, seed=seed + 1) \
                .map(masks_as_uint8).take(args.precise_bn)
    progress = make_progress_callback(model, run_dir, events, stop_flag, args.epochs,
                                      initial_epoch, chief, precise_bn)
    from mrcnn.tb_images import tb_images_callbacks

    tb_images = tb_images_callbacks(args, model, val_data, run_dir, chief)
    try:
        model.train(train_tf, val_tf, learning_rate=learning_rate, epochs=args.epochs,
                    layers=args.layers, custom_callbacks=[progress] + tb_images, seed=args.seed,
                    optimizer_state=optimizer_state_path(resume_entry["path"])
                    if resume_entry is not None else None)
    except RunStopped as stop:
        return _finish(run_dir, events, "stopped", str(stop), 0, progress)
    except LossNotFinite as error:
        events.emit("error", message=str(error))
        return _finish(run_dir, events, "failed", str(error), 1, progress)
    return _finish(run_dir, events, "finished", f"reached epoch {args.epochs}", 0, progress)


def masks_as_uint8(batch):
    """Bool GT masks as uint8: Keras' fit under tf.distribute sums input tensors (AddN), which
    has no bool kernel. The training graph casts masks to float32 either way."""
    import tensorflow as tf

    return dict(batch, input_gt_masks=tf.cast(batch["input_gt_masks"], tf.uint8))


def _finish(run_dir, events, status, reason, code, progress):
    if hasattr(progress, "writers"):
        progress.on_train_end()
    run_dir.set_status(status, reason)
    events.emit("end", status=status, reason=reason)
    return code


def _claim_stdout():
    """A line-buffered stream on the real stdout; fd 1 and sys.stdout then point at stderr.

    Anything else that prints (TF's C++ side, pycocotools, keras) lands on stderr, so stdout
    stays pure JSON lines.
    """
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(json_fd, "w", buffering=1)


def _setup_logging():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.captureWarnings(True)


def main(argv=None) -> int:
    """Entry point of ``python -m mrcnn.train`` and ``mrcnn train``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        build_parser().print_help(sys.stderr)
        return 0
    from mrcnn.multiworker import run_local_workers, split_local_workers

    workers, argv = split_local_workers(argv)
    if workers > 1:
        return run_local_workers(argv, workers)
    events = EventWriter(_claim_stdout())
    _setup_logging()
    args = None
    try:
        args = parse_args(argv)
        return run_training(args, events)
    except UsageError as error:
        events.emit("error", message=str(error))
        events.emit("end", status="failed", reason=str(error))
        return 2
    except Exception as error:  # report every failure as an event; the traceback to stderr
        log.exception("training failed")
        from mrcnn.multiworker import worker_lost_message

        message = worker_lost_message(error) or _error_message(error)
        events.emit("error", message=message)
        run_dir = RunDir(args.run_dir) if args is not None and args.run_dir else None
        if run_dir is not None and run_dir.exists():
            run_dir.set_status("failed", message)
        events.emit("end", status="failed", reason=message)
        return 1


def _error_message(error) -> str:
    """``Type: message``, with the Python error inside a TF op error brought to the front."""
    text = str(error)
    if type(error).__module__.startswith("tensorflow"):
        # py_function errors arrive as "...DataLoadError: training image 3 (...)...": keep that.
        marker = text.find("DataLoadError:")
        if marker >= 0:
            return text[marker:].split("\n")[0]
    return f"{type(error).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
