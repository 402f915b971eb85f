"""``mrcnn-viewer [IMAGE] [--weights W] [--config C] [--trace T.npz] [--coco J | --shapes N]``.

With no arguments it opens the built-in demo: the demo model (``resources/demo``) traces the
first sample shapes image (``resources/samples/shapes``), ground truth shown beside it. The
window shows at once; TensorFlow loads later, on the worker thread, only when a model is
opened. ``--stage KEY`` and ``--panel TITLE`` (hidden) open at a viewer stage and raise a dock
for screenshots and bug reports.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from viewer.datasets import SHAPES_DEFAULT_SIZE, DatasetSpec
from viewer.stages import STAGE_KEYS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrcnn-viewer", description="Step through Mask R-CNN's pipeline for one image.")
    parser.add_argument("image", nargs="?", help="image to open (traced when a model is given)")
    parser.add_argument("--weights", help="model weights (.h5, Keras HDF5)")
    parser.add_argument("--config", help="model config JSON (default: config.json beside the "
                        "weights or in their run directory, else inferred from the weights)")
    parser.add_argument("--class-names", help="class names file (.txt one per line, or JSON list)")
    parser.add_argument("--demo", action="store_true",
                        help="use the built-in demo model (the default when nothing is named)")
    parser.add_argument("--trace", help="saved trace (.npz) to open; needs no TensorFlow")
    parser.add_argument("--report", metavar="DIR",
                        help="mrcnn analyze output (report.json or its folder) to browse in the "
                             "Errors browser")
    data = parser.add_argument_group("dataset (images with ground truth)")
    data.add_argument("--coco", metavar="JSON", help="COCO instances JSON to browse")
    data.add_argument("--coco-images", metavar="DIR", help="folder of the COCO JSON's images "
                                                          "(default: the JSON's folder)")
    data.add_argument("--shapes", type=int, metavar="COUNT",
                      help="generate COUNT synthetic shapes images to browse")
    data.add_argument("--shapes-size", type=int, default=SHAPES_DEFAULT_SIZE, metavar="PX",
                      help=f"shapes image size (default {SHAPES_DEFAULT_SIZE})")
    data.add_argument("--seed", type=int, default=0, help="shapes generator seed (default 0)")
    data.add_argument("--dataset-image", type=int, default=0, metavar="ROW",
                      help="dataset image to open first (default 0)")
    script = parser.add_argument_group("scripting")
    script.add_argument("--save-detections", metavar="JSON",
                        help="write the detections as JSON when the first trace is ready")
    script.add_argument("--quit-after-trace", action="store_true",
                        help="quit when the first trace is ready (exit 0), or at the first error "
                             "(printed to stderr, exit 1): smoke tests and scripts")
    parser.add_argument("--debug", action="store_true",
                        help="print tracebacks of errors on stderr")
    parser.add_argument("--stage", choices=STAGE_KEYS, help=argparse.SUPPRESS)
    parser.add_argument("--panel", help=argparse.SUPPRESS)  # dock to raise, for screenshots
    parser.add_argument("--select", metavar="KIND:ROW", help=argparse.SUPPRESS)  # e.g. gt:0
    return parser


def dataset_spec(args):
    """The DatasetSpec the arguments name, or None."""
    if args.coco:
        return DatasetSpec("coco", annotations=args.coco,
                           image_dir=args.coco_images or os.path.dirname(os.path.abspath(args.coco)))
    if args.shapes:
        return DatasetSpec("shapes", count=args.shapes, height=args.shapes_size,
                           width=args.shapes_size, seed=args.seed)
    return None


RESULT_STAGE = "composite"  # "Final result": the stage a model's first trace opens on
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "resources" / "samples"


def demo_dataset_spec(folder=SAMPLES_DIR / "shapes") -> DatasetSpec | None:
    """The sample shapes images with their COCO JSON (``resources/samples/shapes``), or None."""
    annotations = Path(folder) / "annotations.json"
    if not annotations.is_file():
        return None
    return DatasetSpec("coco", annotations=str(annotations), image_dir=str(folder))


def _nothing_named(args) -> bool:
    return not (args.image or args.weights or args.trace or args.coco or args.shapes
                or args.report)


def startup_plan(args):
    """(model spec or None, DatasetSpec or None, (title, message) of a problem or None): what
    the window opens first. Nothing named on the command line means the demo model on the
    sample images, when resources/ has them."""
    from viewer.workers import ModelSpec, demo_model_spec

    data = dataset_spec(args)
    demo = args.demo or (_nothing_named(args) and demo_model_spec() is not None)
    if _nothing_named(args) and demo:
        data = data or demo_dataset_spec()
    if demo:
        spec = demo_model_spec()
        if spec is None:
            return None, data, ("No demo model", "resources/demo/ is not installed.\n\nWhat to "
                                                 "do: open a weights file with File > Open model.")
        return spec, data, None
    if args.weights:
        return ModelSpec(weights=args.weights, config=args.config or "",
                         class_names=args.class_names or ""), data, None
    return None, data, None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mrcnn.checks import debug

    from viewer.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("mrcnn")
    app.setApplicationName("mrcnn-viewer")
    debug.enable(args.debug)
    window = MainWindow()
    window.exit_on_error = args.quit_after_trace
    if args.save_detections or args.quit_after_trace:
        window.session.traceChanged.connect(
            lambda trace: _first_trace_ready(app, window, trace, args))
    if args.quit_after_trace:  # a model opened with nothing to trace is done once loaded
        window.document.runner.finished.connect(
            lambda result: app.exit(0) if result.trace is None else None)
    window.show()
    window.document.pending_stage = args.stage
    if args.panel == "Training":  # hidden until asked for
        window.training_actions.show_training()
    elif args.panel in window.docks:
        window.docks[args.panel].show()
        window.docks[args.panel].raise_()
    if args.select:
        _select_on_first_trace(window, args.select)
    # Open once the event loop runs: an exit() asked for before exec() (a trace ready at
    # once, an error at once) would be lost, and --quit-after-trace would never quit.
    QTimer.singleShot(0, lambda: open_startup(window, args))
    status = app.exec()
    _dispose(app, window)
    return status


def open_startup(window, args) -> None:
    """Open what the command line names: trace, dataset, image or model."""
    if args.trace:
        window.open_trace(args.trace)
    if args.report:
        window.errors_actions.open_report(args.report)
    spec, data, problem = startup_plan(args)
    if spec is not None and window.document.pending_stage is None:
        # A model on the first image (the demo): show what it finds, as the README says.
        window.document.pending_stage = RESULT_STAGE
    if spec is not None and spec.demo and not args.panel and "Diagnosis" in window.docks:
        window.docks["Diagnosis"].raise_()  # the demo's first screen: why each object was found
    if problem:
        window.show_error(*problem)
    if data is not None:
        window.open_dataset(data, row=args.dataset_image, model=spec)
    elif args.image:
        window.open_image(args.image, spec)
    elif spec is not None:
        window.set_model(spec)


def _select_on_first_trace(window, text: str) -> None:
    """--select KIND:ROW (hidden, for screenshots): select that item once the first trace shows
    (after the trace's own selection reset and the --stage jump)."""
    from PySide6.QtCore import QTimer

    kind, _, row = text.partition(":")
    if not row.isdigit():
        raise SystemExit(f"mrcnn-viewer: --select expects KIND:ROW such as gt:0, got {text!r}")

    def select(trace):
        if trace is not None and not getattr(window, "_selected_once", False):
            window._selected_once = True
            QTimer.singleShot(0, lambda: window.session.select(kind, int(row)))
    window.session.traceChanged.connect(select)


def _first_trace_ready(app, window, trace, args) -> None:
    """--save-detections / --quit-after-trace: act once, on the first real trace."""
    if trace is None or getattr(window, "_first_trace_done", False):
        return
    window._first_trace_done = True
    if args.save_detections:
        from viewer.export import export_detections_json

        try:
            export_detections_json(trace, args.save_detections)
        except (OSError, ValueError) as e:
            print(f"mrcnn-viewer: {e}", file=sys.stderr)
            app.exit(1)
            return
    if args.quit_after_trace:
        app.exit(0)


def _dispose(app, window) -> None:
    """Destroy the window's Qt objects before the interpreter shuts down: letting the garbage
    collector meet live pyqtgraph items during finalization can crash PySide6 on exit."""
    import gc

    window.close()
    window.deleteLater()
    app.processEvents()
    del window
    gc.collect()


if __name__ == "__main__":
    sys.exit(main())
