"""``mrcnn export``: write a served model (SavedModel in TF Serving's layout, or ONNX).

    mrcnn export --weights W [--config C.json] --out DIR [--format savedmodel|onnx]
                 [--small-masks] [--version N]

SavedModel: ``DIR/<N>/`` (N: --version, default the next free number, 1 for a new folder), the
layout TF Serving's ``--model_base_path=DIR`` expects; the serving signature is printed.
ONNX: ``DIR/model.onnx`` (needs the ``onnx`` extra: tf2onnx + onnxruntime).
Without --config, ``config.json`` beside the weights (or in their run directory) is used, else
the config is inferred from the weights' shapes.

Exit codes: 0 written, 2 bad input (unknown format, unreadable weights, weights that do not fit
the config, an output folder that cannot be written, a config that cannot be exported), each
with one line on stderr naming the file or option.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mrcnn.export import FORMATS, ExportError

PROG = "mrcnn export"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ExportError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, metavar="W", help="HDF5 weights file")
    parser.add_argument("--config", metavar="C.json",
                        help="config JSON (default: config.json beside the weights or in their "
                        "run directory, else inferred from the weights)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--format", default="savedmodel", help=f"one of {', '.join(FORMATS)}")
    parser.add_argument("--small-masks", action="store_true",
                        help="return 28x28 mask probabilities (with rois) instead of full-size "
                        "bool masks")
    parser.add_argument("--version", type=int, default=None,
                        help="SavedModel version folder (default: next free number)")
    return parser


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ExportError(f"--format {name!r} is not supported; expected one of "
                          f"{', '.join(FORMATS)}")
    return name


def find_config(weights, config=None):
    """--config, else config.json beside the weights or in their run directory, else None."""
    if config:
        return Path(config)
    folder = Path(weights).resolve().parent
    for candidate in (folder / "config.json", folder.parent / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def prepare_out_dir(out) -> Path:
    """Create ``out`` and prove it is writable (a probe file), before any slow work."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mrcnn_export_probe_"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ExportError(f"--out {out}: output folder cannot be written ({reason})") from None
    return path


def next_version(out_dir: Path, version=None) -> int:
    """--version if given (refusing one that exists), else 1 + the largest numbered folder."""
    numbers = [int(p.name) for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if version is None:
        return max(numbers, default=0) + 1
    if version < 1:
        raise ExportError(f"--version must be >= 1, got {version}")
    if version in numbers:
        raise ExportError(f"--out {out_dir}: version folder {version} already exists; choose "
                          f"another --version or leave it out for the next free number")
    return version


def load_model(weights, config_path):
    """(inference MaskRCNN with every weight loaded from ``weights``, config)."""
    from mrcnn.errors import InputError
    from mrcnn.export_graph import EXPORT_RESIZE_MODES
    from mrcnn.model_files import load_config, read_weight_shapes

    try:
        read_weight_shapes(weights)  # fail fast, before TensorFlow starts
        config = load_config(config_path, weights, "export")
    except InputError as error:
        raise ExportError(str(error)) from None
    if config.IMAGE_RESIZE_MODE not in EXPORT_RESIZE_MODES:
        raise ExportError(f"{config_path or weights}: IMAGE_RESIZE_MODE "
                          f"{config.IMAGE_RESIZE_MODE!r} cannot be exported (a random crop is a "
                          f"training augmentation); expected one of {EXPORT_RESIZE_MODES}")
    if int(config.IMAGE_CHANNEL_COUNT) != 3:
        raise ExportError(f"{config_path or weights}: IMAGE_CHANNEL_COUNT is "
                          f"{config.IMAGE_CHANNEL_COUNT}; the serving signature takes RGB (3)")
    from mrcnn.model import MaskRCNN
    from mrcnn.weights import WeightsError

    model = MaskRCNN("inference", config)
    try:
        report = model.load_weights(weights)
    except WeightsError as error:
        raise ExportError(f"weights do not fit the config ({config_path or 'inferred'}): "
                          f"{error}") from None
    if report.skipped_not_in_file:
        layers = report.skipped_not_in_file
        named = ", ".join(layers[:8]) + (f", +{len(layers) - 8} more" if len(layers) > 8 else "")
        raise ExportError(f"{weights}: has no weights for {len(layers)} layer(s) of the model "
                          f"({named}); the exported model would serve random weights. "
                          f"Check --config")
    return model, config


def run(args) -> int:
    export_format = check_format(args.format)
    out_dir = prepare_out_dir(args.out)
    version = next_version(out_dir, args.version) if export_format == "savedmodel" else None
    if export_format == "onnx":
        from mrcnn.export_onnx import require_onnx

        require_onnx()
    model, _ = load_model(args.weights, find_config(args.weights, args.config))
    if export_format == "savedmodel":
        from mrcnn.export import describe_signature, export_savedmodel

        target = export_savedmodel(model, out_dir, small_masks=args.small_masks, version=version)
        print(f"wrote SavedModel {target}")
        print(describe_signature(target))
        return 0
    from mrcnn.export_onnx import export_onnx

    target = export_onnx(model, out_dir, small_masks=args.small_masks)
    print(f"wrote ONNX model {target}")
    return 0


def main(argv=None) -> int:
    """``mrcnn export`` / ``python -m mrcnn.export_cli``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        build_parser().print_help()
        return 0
    try:
        return run(build_parser().parse_args(argv))
    except ExportError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
