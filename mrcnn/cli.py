"""``mrcnn`` command line: detect, trace, inspect-weights (and hooks for train / evaluate).

Each command is registered by an ``add_*_parser(subparsers)`` function that declares the
command's arguments and sets the parser's ``run`` default; ``main`` only builds the parser from
``COMMANDS`` and dispatches. Commands that live in other modules (``train``, ``evaluate``) are
delegated lazily (``delegating_parser``): their module is imported only when the command runs,
and gets the remaining arguments as ``main(argv)``. To add a command, write its
``add_<name>_parser`` (or one ``delegating_parser`` line) and list it in ``COMMANDS``.

Model files (weights, config, class names, images) are read by ``mrcnn.model_files``. Exit
codes: 0 success, 2 bad input - any ``mrcnn.errors.InputError`` (missing / unreadable image,
weights, config or class names), printed as one line on stderr naming the file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from mrcnn.errors import InputError
from mrcnn.model_files import load_config, model_class_names, read_image, read_weight_shapes
from mrcnn.precision import add_precision_argument, apply_precision
from mrcnn.atomic import atomic_write, write_bytes_atomic
from mrcnn.checks import debug
from mrcnn.checks.options import DETECT_RULES, check_options, check_output_dir
from mrcnn.checks.reporting import run_reporting

PROG = "mrcnn"


class CliError(InputError):
    """A command-line error not about one file (the file errors are mrcnn.errors'): one line
    on stderr, exit code 2."""


def _class_names(args, config) -> list[str]:
    """--class-names, else the names of the run the weights come from, else defaults."""
    return model_class_names(getattr(args, "weights", None), config.NUM_CLASSES,
                             getattr(args, "class_names", None))


def build_model(args, command: str):
    """(inference MaskRCNN with weights loaded, config) from --weights / --config."""
    from mrcnn.checks.weights import check_loaded_weights, require_mask_rcnn_layers

    # Fail fast, before TensorFlow starts: unreadable files and other models' weights.
    require_mask_rcnn_layers(read_weight_shapes(args.weights), args.weights)
    config = load_config(args.config, args.weights, command)
    config = apply_precision(config, args.precision)
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", config)
    report = model.load_weights(args.weights)  # WeightsError: an InputError, one line on stderr
    check_loaded_weights(model.keras_model, report, getattr(args, "allow_nonfinite", False))
    return model, config


# ---- detect ----------------------------------------------------------------------------------

def _rle(mask) -> dict:
    import pycocotools.mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def detection_records(result, class_names) -> list[dict]:
    """JSON-friendly detections of one image: box, class id/name, score, mask area and RLE."""
    records = []
    for i, class_id in enumerate(result["class_ids"]):
        mask = result["masks"][:, :, i]
        records.append({
            "box": [int(v) for v in result["rois"][i]],
            "class_id": int(class_id),
            "class_name": class_names[int(class_id)] if class_id < len(class_names) else str(class_id),
            "score": float(result["scores"][i]),
            "mask_area": int(mask.sum()),
            "mask_rle": _rle(mask),
        })
    return records


def run_detect(args) -> int:
    check_options(args, DETECT_RULES)
    check_output_dir(args.out)
    images = [(path, read_image(path)) for path in args.images]
    model, config = build_model(args, "detect")
    class_names = _class_names(args, config)
    from mrcnn.visualize import display_instances

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path, image in images:
        result = model.detect([image])[0]
        figure = display_instances(image, result["rois"], result["masks"], result["class_ids"],
                                   class_names, result["scores"], title=Path(path).name)
        overlay = out_dir / f"{Path(path).stem}.png"
        atomic_write(overlay, lambda f: figure.savefig(f, format="png", dpi=args.dpi,
                                                       bbox_inches="tight"))
        records.append({"image": os.fspath(path), "height": int(image.shape[0]),
                        "width": int(image.shape[1]), "overlay": os.fspath(overlay),
                        "detections": detection_records(result, class_names)})
        print(f"{path}: {len(result['class_ids'])} detections -> {overlay}")
    document = {"weights": os.fspath(args.weights), "class_names": class_names, "images": records}
    write_bytes_atomic(out_dir / "detections.json", json.dumps(document, indent=1).encode())
    return 0


def add_detect_parser(subparsers):
    parser = subparsers.add_parser("detect", help="detect instances; overlay PNGs + detections.json")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    _model_arguments(parser)
    parser.add_argument("--class-names", metavar="FILE",
                        help="one class name per line (or a JSON list), 'BG' optional")
    parser.add_argument("--dpi", type=int, default=100)
    parser.set_defaults(run=run_detect)


def _model_arguments(parser):
    parser.add_argument("--weights", required=True, metavar="W", help="HDF5 weights file")
    parser.add_argument("--config", metavar="C.json",
                        help="config JSON (default: inferred from the weights file)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_precision_argument(parser)
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="load weights holding NaN / Inf (with a warning) instead of refusing")


# ---- trace -----------------------------------------------------------------------------------

def stage_file_name(index: int, stage_key: str) -> str:
    """'03_rpn_deltas.png' for stage 3 'rpn/deltas'."""
    return f"{index:02d}_{stage_key.replace('/', '_')}.png"


def run_trace(args) -> int:
    check_options(args, DETECT_RULES)
    check_output_dir(args.out)
    image = read_image(args.image)
    gt = None
    if args.gt:  # read before TensorFlow starts: a wrong file fails fast
        from mrcnn.trace_gt import check_class_count, coco_ground_truth

        gt = coco_ground_truth(args.gt, args.image)
    model, config = build_model(args, "trace")
    class_names = _class_names(args, config)
    if gt is not None:
        check_class_count(gt, args.gt, config.NUM_CLASSES)
        gt = {key: gt[key] for key in ("boxes", "class_ids", "masks")}
    from mrcnn.trace import trace
    from mrcnn.visualize import stage_figure

    try:
        result = trace(model, image, gt=gt, activations=args.activations, class_names=class_names)
    except ValueError as e:
        raise CliError(str(e)) from None
    result.meta["image_path"] = os.fspath(args.image)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = result.save(out_dir / "trace.npz")
    for index, key in enumerate(result.stages):
        figure = stage_figure(result, key)
        atomic_write(out_dir / stage_file_name(index, key),
                     lambda f: figure.savefig(f, format="png", dpi=args.dpi))
    timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items())
    print(f"{args.image}: {len(result.stages)} stages -> {saved} ({timings})")
    if gt is not None:
        from mrcnn.diagnose import Diagnosis

        counts = Diagnosis.from_trace(result).counts()
        print("diagnosis: " + ", ".join(f"{k} {v}" for k, v in counts["gt"].items() if v)
              + "; detections: " + ", ".join(f"{k} {v}" for k, v in counts["detections"].items()
                                            if v))
    return 0


def add_trace_parser(subparsers):
    parser = subparsers.add_parser("trace", help="trace every stage of one image: trace.npz + PNGs")
    parser.add_argument("image", metavar="IMAGE")
    _model_arguments(parser)
    parser.add_argument("--activations", nargs="*", metavar="LAYER", default=None,
                        help="layers whose activations to record (default: C2-C5, fpn_p2..p6)")
    parser.add_argument("--class-names", metavar="FILE")
    parser.add_argument("--gt", metavar="COCO.json",
                        help="ground truth of IMAGE from a COCO instances JSON (matched by file "
                             "name): adds RPN/ROI targets and why each object was missed")
    parser.add_argument("--dpi", type=int, default=80)
    parser.set_defaults(run=run_trace)


# ---- inspect-weights -------------------------------------------------------------------------

def run_inspect_weights(args) -> int:
    from mrcnn.stats import format_stats_table, stats_to_dicts, weight_stats_from_file

    read_weight_shapes(args.weights)  # one-line errors for missing / foreign files
    stats = weight_stats_from_file(args.weights)
    if args.json:
        print(json.dumps(stats_to_dicts(stats)))
        return 0
    print(format_stats_table(stats, anomalies_only=args.anomalies_only))
    for stat in stats:
        if stat.flags:
            print(f"WARNING: {stat.layer}/{stat.name}: {', '.join(stat.flags)}", file=sys.stderr)
    return 0


def add_inspect_weights_parser(subparsers):
    parser = subparsers.add_parser("inspect-weights",
                                   help="statistics of every weight tensor in an HDF5 file")
    parser.add_argument("weights", metavar="W")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    parser.add_argument("--anomalies-only", action="store_true",
                        help="list only dead / exploding tensors")
    parser.set_defaults(run=run_inspect_weights)


# ---- delegated commands ----------------------------------------------------------------------

# Command name -> function(argv) of the commands whose arguments another module parses.
DELEGATED: dict = {}


def delegating_parser(name: str, module: str, help_text: str):
    """An ``add_parser`` for a command implemented by ``module.main(argv)``, imported lazily."""

    def run(args) -> int:
        return delegate(list(args.rest))

    def delegate(argv) -> int:
        try:
            target = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            raise CliError(f"'{name}' is not available: module {module} is not installed") from None
        entry = getattr(target, "main", None)
        if entry is None:
            raise CliError(f"'{name}' is not available: {module} has no main(argv)")
        return int(entry(argv) or 0)

    def add_parser(subparsers):
        parser = subparsers.add_parser(name, help=help_text, add_help=False,
                                       description=f"arguments are passed to {module}.main")
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(run=run)

    DELEGATED[name] = delegate
    return add_parser


add_train_parser = delegating_parser("train", "mrcnn.train", "train a model (see mrcnn train --help)")
add_evaluate_parser = delegating_parser("evaluate", "mrcnn.evaluate_cli",
                                        "evaluate a model (see mrcnn evaluate --help)")
add_analyze_parser = delegating_parser("analyze", "mrcnn.analyze_cli",
                                       "why objects are missed, per stage (see mrcnn analyze --help)")
add_export_parser = delegating_parser("export", "mrcnn.export_cli",
                                      "export a SavedModel or ONNX model (see mrcnn export --help)")
add_explain_parser = delegating_parser("explain", "mrcnn.explain_cli",
                                       "saliency map of one detection (see mrcnn explain --help)")

COMMANDS = [add_detect_parser, add_trace_parser, add_inspect_weights_parser, add_train_parser,
            add_evaluate_parser, add_analyze_parser, add_export_parser, add_explain_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Mask R-CNN on Keras 3")
    parser.add_argument("--debug", action="store_true",
                        help="print tracebacks of errors on stderr (any position in argv)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mrcnn`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv, debugging = debug.pop_debug_flag(sys.argv[1:] if argv is None else argv)
    debug.enable(debugging)
    if argv and argv[0] in DELEGATED:
        # The module's own parser sees the arguments untouched, in order.
        return run_reporting(f"{PROG} {argv[0]}", lambda: DELEGATED[argv[0]](argv[1:]))
    args = build_parser().parse_args(argv)
    return run_reporting(f"{PROG} {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
