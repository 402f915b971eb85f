"""``mrcnn`` command line: detect, trace, inspect-weights (and hooks for train / evaluate).

Each command is registered by an ``add_*_parser(subparsers)`` function that sets the parser's
``run`` default; ``main`` only builds the parser from ``COMMANDS`` and dispatches. Commands
that live in other modules (``train``, ``evaluate``) are delegated lazily: their module is
imported only when the command runs, and gets the remaining arguments as ``main(argv)``.

Exit codes: 0 success, 2 bad input (missing / unreadable image, weights or config), with one
line on stderr naming the file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

PROG = "mrcnn"


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 2."""


# ---- weights file introspection (h5py only) --------------------------------------------------

def read_weight_shapes(path) -> dict:
    """{layer: {weight short name: shape}} of a Keras-2 HDF5 weights file; CliError if unreadable."""
    import h5py

    from mrcnn.stats import NotKeras2WeightsError, iter_file_weights

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CliError(f"weights file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            shapes: dict = {}
            for layer, name, dataset in iter_file_weights(handle):
                shapes.setdefault(layer, {})[name] = tuple(dataset.shape)
            return shapes
    except NotKeras2WeightsError:
        raise CliError(f"{path}: not a Keras-2 (matterport layout) weights file "
                       "(no 'layer_names' attribute)") from None
    except (OSError, KeyError) as e:
        raise CliError(f"{path}: not a readable HDF5 weights file ({e})") from None


def infer_config_values(shapes: dict) -> dict:
    """Config fields implied by a weights file's shapes (NUM_CLASSES, BACKBONE, head sizes)."""
    values = {}
    logits = shapes.get("mrcnn_class_logits", {}).get("kernel")
    if logits:
        values["NUM_CLASSES"] = int(logits[-1])
    if "res4w_branch2c" in shapes or "res4w_branch2a" in shapes:
        values["BACKBONE"] = "resnet101"
    elif "res2a_branch2c" in shapes:
        values["BACKBONE"] = "resnet50"
    elif "res2a_branch2a" in shapes:
        # Basic blocks: ResNet-34 has six stage-4 blocks (res4a..res4f), ResNet-18 two.
        values["BACKBONE"] = "resnet34" if "res4c_branch2a" in shapes else "resnet18"
    conv1 = shapes.get("mrcnn_class_conv1", {}).get("kernel")
    if conv1:
        values["POOL_SIZE"] = int(conv1[0])
        values["FPN_CLASSIF_FC_LAYERS_SIZE"] = int(conv1[-1])
    p5 = shapes.get("fpn_c5p5", {}).get("kernel")
    if p5:
        values["TOP_DOWN_PYRAMID_SIZE"] = int(p5[-1])
    return values


def load_config(config_path, weights_path, command: str):
    """Config from --config JSON, else inferred from the weights file (said on stderr)."""
    from mrcnn.config import Config, ConfigError

    if config_path:
        try:
            config = Config.from_json(os.fspath(config_path))
        except ConfigError as e:
            raise CliError(f"{config_path}: {e}") from None
    else:
        values = infer_config_values(read_weight_shapes(weights_path))
        # 81 classes: matterport's COCO model (mask_rcnn_coco.h5); its CocoConfig differs from
        # the defaults only in NAME and NUM_CLASSES, so the inferred config is that config.
        values.setdefault("NAME", "coco" if values.get("NUM_CLASSES") == 81 else "inferred")
        print(f"{PROG} {command}: no --config given; inferred from {weights_path}: "
              + ", ".join(f"{k}={v}" for k, v in sorted(values.items()) if k != "NAME")
              + " (other fields: defaults)", file=sys.stderr)
        config = Config.from_dict(values)
    # One image at a time from the command line.
    config.IMAGES_PER_GPU, config.GPU_COUNT, config.BATCH_SIZE = 1, 1, 1
    try:
        return config.validate()
    except ConfigError as e:
        raise CliError(f"{config_path or weights_path}: {e}") from None


def read_class_names(path, num_classes: int) -> list[str]:
    """Class names from a text file (one per line) or a JSON list; "BG" prepended when missing."""
    path = Path(path)
    if not path.is_file():
        raise CliError(f"class names file not found: {path}")
    text = path.read_text()
    try:
        names = json.loads(text) if text.lstrip().startswith("[") else \
            [line.strip() for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise CliError(f"{path}: not a valid JSON list of class names ({e})") from None
    if len(names) == num_classes - 1:
        names = ["BG"] + list(names)
    if len(names) != num_classes:
        raise CliError(f"{path}: {len(names)} class names for NUM_CLASSES={num_classes} "
                       f"(expected {num_classes - 1} without or {num_classes} with 'BG')")
    return [str(n) for n in names]


def default_class_names(num_classes: int) -> list[str]:
    """COCO's names for an 81-class model (matterport's mask_rcnn_coco.h5), else "class i"."""
    from mrcnn.data.coco_names import COCO_CLASS_NAMES

    if num_classes == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES)
    return ["BG"] + [f"class {i}" for i in range(1, num_classes)]


def _class_names(args, config) -> list[str]:
    if getattr(args, "class_names", None):
        return read_class_names(args.class_names, config.NUM_CLASSES)
    return default_class_names(config.NUM_CLASSES)


def read_image(path) -> np.ndarray:
    """[H, W, 3] uint8 RGB from an image file; CliError naming the file otherwise."""
    from mrcnn.data.dataset import DatasetError, read_image_rgb

    try:
        return read_image_rgb(os.fspath(path), what="image")
    except (FileNotFoundError, DatasetError) as e:
        raise CliError(str(e).splitlines()[0]) from None


def build_model(args, command: str):
    """(inference MaskRCNN with weights loaded, config) from --weights / --config."""
    read_weight_shapes(args.weights)  # fail fast, before TensorFlow starts
    config = load_config(args.config, args.weights, command)
    from mrcnn.model import MaskRCNN
    from mrcnn.weights import WeightsError

    model = MaskRCNN("inference", config)
    try:
        model.load_weights(args.weights)
    except WeightsError as e:
        raise CliError(str(e)) from None
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
        figure.savefig(overlay, dpi=args.dpi, bbox_inches="tight")
        records.append({"image": os.fspath(path), "height": int(image.shape[0]),
                        "width": int(image.shape[1]), "overlay": os.fspath(overlay),
                        "detections": detection_records(result, class_names)})
        print(f"{path}: {len(result['class_ids'])} detections -> {overlay}")
    document = {"weights": os.fspath(args.weights), "class_names": class_names, "images": records}
    (out_dir / "detections.json").write_text(json.dumps(document, indent=1))
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


# ---- trace -----------------------------------------------------------------------------------

def stage_file_name(index: int, stage_key: str) -> str:
    """'03_rpn_deltas.png' for stage 3 'rpn/deltas'."""
    return f"{index:02d}_{stage_key.replace('/', '_')}.png"


def run_trace(args) -> int:
    image = read_image(args.image)
    model, config = build_model(args, "trace")
    class_names = _class_names(args, config)
    from mrcnn.trace import trace
    from mrcnn.visualize import stage_figure

    try:
        result = trace(model, image, activations=args.activations, class_names=class_names)
    except ValueError as e:
        raise CliError(str(e)) from None
    result.meta["image_path"] = os.fspath(args.image)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = result.save(out_dir / "trace.npz")
    for index, key in enumerate(result.stages):
        figure = stage_figure(result, key)
        figure.savefig(out_dir / stage_file_name(index, key), dpi=args.dpi)
    timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items())
    print(f"{args.image}: {len(result.stages)} stages -> {saved} ({timings})")
    return 0


def add_trace_parser(subparsers):
    parser = subparsers.add_parser("trace", help="trace every stage of one image: trace.npz + PNGs")
    parser.add_argument("image", metavar="IMAGE")
    _model_arguments(parser)
    parser.add_argument("--activations", nargs="*", metavar="LAYER", default=None,
                        help="layers whose activations to record (default: C2-C5, fpn_p2..p6)")
    parser.add_argument("--class-names", metavar="FILE")
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

add_explain_parser = delegating_parser("explain", "mrcnn.explain_cli",
                                       "saliency map of one detection (see mrcnn explain --help)")

COMMANDS = [add_detect_parser, add_trace_parser, add_inspect_weights_parser, add_train_parser,
            add_evaluate_parser, add_explain_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Mask R-CNN on Keras 3")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mrcnn`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        # The module's own parser sees the arguments untouched, in order.
        try:
            return DELEGATED[argv[0]](argv[1:])
        except CliError as e:
            print(f"{PROG} {argv[0]}: error: {e}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
