"""``mrcnn-viewer [IMAGE] [--weights W] [--config C] [--trace T.npz]``: start the viewer.

The window shows at once; TensorFlow loads later, on the worker thread, only when a model is
opened. ``--stage KEY`` (hidden) opens at a viewer stage, for screenshots and bug reports.
"""

from __future__ import annotations

import argparse
import os
import sys

from viewer.stages import STAGE_KEYS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrcnn-viewer", description="Step through Mask R-CNN's pipeline for one image.")
    parser.add_argument("image", nargs="?", help="image to open (traced when a model is given)")
    parser.add_argument("--weights", help="model weights (.h5, Keras HDF5)")
    parser.add_argument("--config", help="model config JSON (default: inferred from the weights)")
    parser.add_argument("--class-names", help="class names file (.txt one per line, or JSON list)")
    parser.add_argument("--demo", action="store_true", help="use the built-in demo model")
    parser.add_argument("--trace", help="saved trace (.npz) to open; needs no TensorFlow")
    parser.add_argument("--stage", choices=STAGE_KEYS, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from PySide6.QtWidgets import QApplication

    from viewer.main_window import MainWindow
    from viewer.workers import ModelSpec, demo_model_spec

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("mrcnn")
    app.setApplicationName("mrcnn-viewer")
    window = MainWindow()
    window.show()
    window.pending_stage = args.stage
    if args.trace:
        window.open_trace(args.trace)
    spec = None
    if args.demo:
        spec = demo_model_spec()
        if spec is None:
            window.show_error("No demo model", "resources/demo/ is not installed.\n\nWhat to do: "
                                               "open a weights file with File > Open model.")
    elif args.weights:
        spec = ModelSpec(weights=args.weights, config=args.config or "",
                         class_names=args.class_names or "")
    if args.image:
        window.open_image(args.image, spec)
    elif spec is not None:
        window.set_model(spec)
    status = app.exec()
    _dispose(app, window)
    return status


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
