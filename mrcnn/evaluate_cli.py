"""``mrcnn evaluate``: detect on a dataset, report mAP@0.5 and COCO bbox/segm AP, write JSON.

    mrcnn evaluate --weights W [--config C] (--dataset shapes --shapes-count N | --json J
                   --images DIR) [--limit N] --out results.json

mAP@0.5 is the mean over images of matterport's per-image VOC AP (``compute_ap``, mask IoU);
the COCO numbers come from pycocotools. Shapes ground truth is exported to a COCO JSON first
(``export_coco``), so both kinds of data go through the same COCOeval code. Without --config,
``config.json`` beside the weights or of the run directory they belong to is used
(``mrcnn.model_files.find_config``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mrcnn.precision import add_precision_argument, apply_precision

# Seed of the default shapes evaluation images: far from training seeds (mrcnn.train uses 0..).
SHAPES_EVAL_SEED = 20_000_003


def add_model_and_data_arguments(parser, verb: str, seed_help: str = "shapes seed",
                                 set_name: str = "the evaluation set"):
    """--weights/--config and the data (held-out shapes, or COCO --json/--images, --limit):
    the same options for ``mrcnn evaluate`` and ``mrcnn analyze``; ``verb`` fills the help."""
    parser.add_argument("--weights", required=True, help="HDF5 weights file")
    parser.add_argument("--config", help="Config JSON (default: config.json of the weights' run)")
    parser.add_argument("--dataset", choices=["shapes", "coco"], default=None)
    parser.add_argument("--shapes-count", type=int, default=50, help=f"shapes images to {verb}")
    parser.add_argument("--shapes-size", type=int, default=128, help="shapes image side, pixels")
    parser.add_argument("--seed", type=int, default=SHAPES_EVAL_SEED, help=seed_help)
    parser.add_argument("--json", help=f"COCO instances JSON of {set_name}")
    parser.add_argument("--images", help=f"image directory of {set_name}")
    parser.add_argument("--limit", type=int, default=None, help=f"{verb} the first N images")


def uses_shapes(args) -> bool:
    """Whether the parsed data arguments ask for generated shapes (the default without --json)."""
    return args.dataset == "shapes" or (args.dataset is None and not args.json)


def add_arguments(parser):
    add_model_and_data_arguments(parser, "evaluate")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="override DETECTION_MIN_CONFIDENCE (COCO AP wants low, e.g. 0.05)")
    parser.add_argument("--out", required=True, help="results JSON to write")
    add_precision_argument(parser)
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="load weights holding NaN / Inf (with a warning) instead of refusing")
    return parser


def add_parser(subparsers):
    """Register ``evaluate`` on an argparse subparsers object; the handler is ``args.func``."""
    parser = subparsers.add_parser("evaluate", help="mAP@0.5 and COCO AP of weights on a dataset",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def load_eval_data(args, work_dir):
    """(dataset, pycocotools COCO ground truth, [COCO image id per dataset image id])."""
    from mrcnn.data.coco import CocoDataset, load_coco_api

    if uses_shapes(args):
        from mrcnn.data.dataset import export_coco
        from mrcnn.data.shapes import ShapesDataset

        dataset = ShapesDataset()
        dataset.load_shapes(args.shapes_count, args.shapes_size, args.shapes_size, seed=args.seed)
        dataset.prepare()
        json_path = os.path.join(work_dir, "shapes_gt.json")
        export_coco(dataset, dataset.image_ids, json_path, os.path.join(work_dir, "images"))
        # export_coco's convention: COCO image id = internal id + 1.
        return dataset, load_coco_api(json_path), [int(i) + 1 for i in dataset.image_ids]
    if not args.json or not args.images:
        raise ValueError("evaluate needs --dataset shapes or both --json and --images")
    if not os.path.isdir(args.images):
        raise FileNotFoundError(f"image directory {args.images!r} does not exist")
    dataset = CocoDataset()
    coco = dataset.load_coco(args.json, args.images, return_coco=True)
    dataset.prepare()
    return dataset, coco, [int(info["id"]) for info in dataset.image_info]


def evaluate_model(model, dataset, coco_gt=None, coco_image_ids=None, limit=None,
                   progress=None) -> dict:
    """Detect on every image of ``dataset``; dict with mAP50, per-image APs and COCO stats.

    ``coco_gt`` / ``coco_image_ids`` (COCO id per dataset image id) enable the COCO numbers.
    """
    from mrcnn.boxes import extract_bboxes
    from mrcnn.data.coco import build_coco_results
    from mrcnn.evaluate import compute_ap, coco_evaluate

    image_ids = list(dataset.image_ids)[:limit]
    aps, results, start = [], [], time.perf_counter()
    for count, image_id in enumerate(image_ids, 1):
        image = dataset.load_image(image_id)
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        keep = gt_class_ids > 0  # crowd regions are not instances to find
        gt_masks, gt_class_ids = gt_masks[:, :, keep], gt_class_ids[keep]
        r = model.detect([image])[0]
        ap = compute_ap(extract_bboxes(gt_masks), gt_class_ids, gt_masks, r["rois"],
                        r["class_ids"], r["scores"], r["masks"])[0]
        aps.append(float(ap))
        if coco_gt is not None:
            results += build_coco_results(dataset, coco_image_ids[image_id], r["rois"],
                                          r["class_ids"], r["scores"], r["masks"])
        if progress:
            progress(count, len(image_ids), ap)
    out = {"images": len(image_ids), "mAP50": float(np.mean(aps)) if aps else 0.0,
           "per_image_ap50": aps, "detections": len(results),
           "seconds_per_image": (time.perf_counter() - start) / max(len(image_ids), 1)}
    if coco_gt is not None:
        ids = [coco_image_ids[i] for i in image_ids]
        out["coco"] = {kind: coco_evaluate(coco_gt, results, kind, image_ids=ids)
                       for kind in ("bbox", "segm")}
    return out


def run(args) -> int:
    """Evaluate per parsed ``args``; prints the tables, writes ``args.out``; returns exit code."""
    from mrcnn.config import Config
    from mrcnn.evaluate import format_coco_table
    from mrcnn.checks import options
    from mrcnn.checks.weights import check_loaded_weights
    from mrcnn.model import MaskRCNN
    from mrcnn.model_files import load_config

    options.check_evaluate_options(args)
    options.check_output_file(args.out)
    options.check_input_file(args.weights, "--weights")
    # A dataset evaluation needs the config the model was trained with (image size, anchors):
    # a config file, never one inferred from the weights.
    config = load_config(args.config, args.weights, infer=False)
    if args.min_confidence is not None:
        config = Config.from_dict({**_fields(config), "DETECTION_MIN_CONFIDENCE":
                                   args.min_confidence})
    # Detection runs one image at a time.
    config = Config.from_dict({**_fields(config), "IMAGES_PER_GPU": 1, "GPU_COUNT": 1})
    config = apply_precision(config, args.precision)
    with tempfile.TemporaryDirectory(prefix="mrcnn_eval_") as work_dir:
        dataset, coco_gt, coco_ids = load_eval_data(args, work_dir)
        _check_eval_data(args, dataset)
        model = MaskRCNN("inference", config)
        report = model.load_weights(args.weights)
        print(report, file=sys.stderr)
        check_loaded_weights(model.keras_model, report, args.allow_nonfinite)
        summary = evaluate_model(
            model, dataset, coco_gt, coco_ids, args.limit,
            progress=lambda i, n, ap: print(f"image {i}/{n}: AP50 {ap:.3f}", file=sys.stderr))
    summary.update(weights=str(args.weights), config=config.NAME)
    for kind in ("bbox", "segm"):
        print(f"COCO {kind}:\n{format_coco_table(summary['coco'][kind])}")
    print(f"mAP@0.5 (per-image VOC AP, mask IoU) over {summary['images']} images: "
          f"{summary['mAP50']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from mrcnn.atomic import write_bytes_atomic

    write_bytes_atomic(args.out, (json.dumps(summary, indent=2) + "\n").encode())
    return 0


def _check_eval_data(args, dataset) -> None:
    """Every problem of a COCO set at once, and no evaluation of a set without instances."""
    from mrcnn.checks.dataset import checked_coco_dict, require_evaluation_data

    if args.json and args.dataset != "shapes":
        checked_coco_dict(args.json, args.images, purpose="evaluation")
    require_evaluation_data(dataset, args.json or "the shapes set")


def _fields(config) -> dict:
    from mrcnn.config import DERIVED_FIELDS

    return {k: v for k, v in config.to_dict().items() if k not in DERIVED_FIELDS}


def main(argv=None) -> int:
    """``python -m mrcnn.evaluate_cli`` / ``mrcnn evaluate``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = add_arguments(argparse.ArgumentParser(prog="mrcnn evaluate",
                                                   description=__doc__.split("\n\n")[0]))
    from mrcnn.checks import debug

    argv, debugging = debug.pop_debug_flag(sys.argv[1:] if argv is None else argv)
    debug.enable(debugging)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Exception as error:  # noqa: BLE001 - one line each; the traceback with --debug
        debug.print_traceback()
        print(f"mrcnn evaluate: error: {type(error).__name__}: {str(error).strip()}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
