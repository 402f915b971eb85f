"""``python -m mrcnn.train`` / ``mrcnn train``: train into a run directory, report JSON lines.

This file is the command: its arguments (``add_arguments``, the one place they are declared),
``parse_args`` and ``run_training``, which composes the pieces of a run:

    mrcnn.train_setup      strategy, datasets, config, initial weights, input pipelines
    mrcnn.train_loop       start the run, record it, fit, finish (the "end" event)
    mrcnn.train_callbacks  the Keras callbacks: step losses, NaN guard, events, TensorBoard,
                           precise BN, checkpoints and stop requests
    mrcnn.train_events     the JSON-lines event schema on stdout (names, fields, exit codes)
    mrcnn.train_stop       StopFlag (SIGTERM / SIGINT / STOP file) and the parent watch
    mrcnn.trainer          the training graph and the keras.Model whose train_step fits it
    mrcnn.runs             the run directory: run.json, metrics.jsonl, checkpoints, STOP

stdout carries JSON lines only (``mrcnn.train_events`` lists the events); TF logs, warnings and
messages go to stderr. Exit codes: 0 finished or stopped, 1 failed (NaN loss, bad data, ...),
2 bad arguments.

Stopping: SIGTERM, SIGINT or a ``STOP`` file in the run directory finish the current step, write
``checkpoints/epoch_EEEE_step_SSSS.h5`` (registered as partial: ``--resume`` continues epoch
EEEE at global step SSSS + 1, so steps, metrics and checkpoint labels go on where the stop left
them) and exit 0 with status "stopped". With ``--stop-with-parent [PID]`` (the viewer passes
its pid) the same happens when the process that started this one exits, so a crashed or killed
viewer never leaves an orphan training on. If stdout's reader is gone, events are dropped and
training goes on (a broken pipe must not cost the epoch in progress). A NaN/Inf loss ends the
run with status "failed", exit 1, and no checkpoint of the broken weights.

Test hook: ``MRCNN_TEST_FORCE_NAN_AT_STEP=S`` (``train_events.NAN_HOOK_ENV``) makes the loss of
global step S read as NaN, to exercise the NaN path without waiting for a real divergence.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from mrcnn import run_repair  # noqa: E402
from mrcnn.checks import debug  # noqa: E402
from mrcnn.checks.errors import BadInputError, OptionError  # noqa: E402
from mrcnn.checks.options import check_train_options  # noqa: E402
from mrcnn.errors import InputError  # noqa: E402
from mrcnn.precision import add_precision_argument  # noqa: E402
from mrcnn.runs import FAILED, FINISHED, RunDir  # noqa: E402
from mrcnn.train_events import (END, ERROR, EXIT_FAILED, EXIT_OK, EXIT_USAGE,  # noqa: E402
                                EventWriter)
from mrcnn.train_loop import finish, fit, record_start, start_run  # noqa: E402
from mrcnn.train_setup import load_datasets  # noqa: E402
from mrcnn.train_stop import StopFlag, watch_parent  # noqa: E402

log = logging.getLogger("mrcnn.train")

LAYER_PRESETS = ("heads", "3+", "4+", "5+", "all")


class UsageError(InputError):
    """Bad command-line arguments (exit code 2)."""


# ---- arguments ----------------------------------------------------------------------------------

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
    data.add_argument("--skip-bad", action="store_true",
                      help="leave out images / annotations that fail the dataset check (missing "
                      "or unreadable images, < 3-point polygons, ...) instead of refusing")
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
    parser.add_argument("--augment-albumentations", default="", metavar="MODULE:ATTR|FILE",
                        help="an albumentations pipeline instead of --augment: "
                        "'package.module:attribute' or a JSON/YAML file from albumentations.save")
    parser.add_argument("--run-dir", help="run directory (default runs/<NAME>_<timestamp>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last good checkpoint")
    parser.add_argument("--mixed-precision", action="store_true", help="same as --precision auto")
    add_precision_argument(parser)
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
    check_train_options(args)  # OptionError (exit 2) naming the option and its range
    if args.init not in ("none", "last") and not args.resume:
        from mrcnn.checks.weights import check_init_file

        check_init_file(args.init)  # a foreign / broken file fails before TensorFlow starts
    return args


# ---- the run ------------------------------------------------------------------------------------

def prepare_run(args):
    """(RunDir, checkpoint entry to resume from or None) after checking the directory."""
    if args.resume:
        run_dir = RunDir(args.run_dir)
        entry = run_dir.last_checkpoint()
        if entry is None:
            log.warning("--resume: %s has no good checkpoint; starting again from epoch 0",
                        run_dir.path)
        if run_repair.mark_interrupted(run_dir):
            log.warning("--resume: the previous session was interrupted (run.json said "
                        "'running' but its process is gone)")
        run_dir.clear_stop()  # the request that ended the previous session is done
        return run_dir, entry
    path = Path(args.run_dir) if args.run_dir else None
    if path is not None:
        from mrcnn.checks.options import check_output_dir

        check_output_dir(path, "--run-dir")  # a file or a read-only place: said now, not later
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
    run = start_run(args, run_dir, resume_entry, train_data)
    initial_epoch = record_start(args, run, events, summary, train_data, val_data)
    if initial_epoch >= args.epochs:
        reason = f"already trained to epoch {initial_epoch} (--epochs {args.epochs})"
        return finish(run.run_dir, events, FINISHED, reason, EXIT_OK)
    return fit(args, run, events, stop_flag, train_data, val_data)


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
    argv, debugging = debug.pop_debug_flag(sys.argv[1:] if argv is None else argv)
    debug.enable(debugging)
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
    except (UsageError, BadInputError) as error:
        if not isinstance(error, (UsageError, OptionError)) and args is not None:
            return _fail(args, events, str(error))  # the data / weights checks: exit 1
        events.emit(ERROR, message=str(error))
        events.emit(END, status=FAILED, reason=str(error))
        return EXIT_USAGE
    except Exception as error:  # every failure is an event; the traceback only with --debug
        debug.print_traceback()
        from mrcnn.multiworker import worker_lost_message

        return _fail(args, events, worker_lost_message(error) or _error_message(error))


def _fail(args, events, message) -> int:
    """Report a failure (error + end events, one line on stderr, run.json 'failed'); 1."""
    log.error("training failed: %s", message)
    events.emit(ERROR, message=message)
    run_dir = RunDir(args.run_dir) if args is not None and args.run_dir else None
    if run_dir is not None and run_dir.exists():
        run_dir.set_status(FAILED, message)
    events.emit(END, status=FAILED, reason=message)
    return EXIT_FAILED


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
