"""``mrcnn analyze``: why objects are missed and what the false positives are, over a dataset.

    mrcnn analyze --weights W [--config C] (--dataset shapes [--shapes-count N] | --json J
                  --images DIR) [--limit N] [--save-traces] --out DIR

Every image is traced and diagnosed (``mrcnn.diagnose``); DIR receives report.json, PNGs and
report.html (``mrcnn.analyze_report``), and with --save-traces each trace with its diagnosis in
DIR/traces/. Progress goes to stderr. Ctrl-C stops after the current image and still writes a
valid (partial) report; an image that fails is listed in the report and the rest go on. Without
--config, the ``config.json`` of the run directory the weights belong to is used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mrcnn.errors import InputError
from mrcnn.evaluate_cli import add_model_and_data_arguments, uses_shapes
from mrcnn.precision import add_precision_argument, apply_precision

EXIT_INTERRUPTED = 130


def add_arguments(parser):
    add_model_and_data_arguments(
        parser, "analyse", set_name="the set to analyse",
        seed_help="shapes seed (default: the held-out seed of mrcnn evaluate)")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="override DETECTION_MIN_CONFIDENCE")
    parser.add_argument("--cover-iou", type=float, default=0.5,
                        help="IoU at which a box covers / matches a GT object (default 0.5)")
    parser.add_argument("--save-traces", action="store_true",
                        help="also write each image's trace + diagnosis to DIR/traces/")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--progress-every", type=int, default=None, metavar="N",
                        help="without a terminal, a progress line every N images (default: "
                             "every tenth of them)")
    add_precision_argument(parser)
    return parser


def load_dataset(args):
    """The dataset to analyse; AnalyzeError / FileNotFoundError with the reason otherwise."""
    from mrcnn.analyze import AnalyzeError

    if uses_shapes(args):
        from mrcnn.data.shapes import ShapesDataset

        if args.shapes_count <= 0:
            raise AnalyzeError(f"--shapes-count must be positive, got {args.shapes_count}")
        dataset = ShapesDataset()
        dataset.load_shapes(args.shapes_count, args.shapes_size, args.shapes_size, seed=args.seed)
        dataset.prepare()
        return dataset
    if not args.json or not args.images:
        raise AnalyzeError("analyze needs --dataset shapes or both --json and --images")
    if not os.path.isdir(args.images):
        raise FileNotFoundError(f"--images: image directory {args.images!r} does not exist")
    from mrcnn.data.coco import CocoDataset

    dataset = CocoDataset()
    dataset.load_coco(args.json, args.images)
    dataset.prepare()
    check_coco_files(dataset, args.json, args.images)
    return dataset


def check_coco_files(dataset, json_path, image_dir):
    """AnalyzeError when images are missing on disk or the JSON has no object at all."""
    from mrcnn.analyze import AnalyzeError

    missing = [info["path"] for info in dataset.image_info if not os.path.isfile(info["path"])]
    if missing:
        raise AnalyzeError(f"{len(missing)} of {len(dataset.image_info)} images of {json_path} "
                           f"are missing from {image_dir}, e.g. {missing[0]}")
    if not any(a.get("iscrowd", 0) == 0 for info in dataset.image_info
               for a in info.get("annotations", [])):
        raise AnalyzeError(f"{json_path}: no ground-truth objects (every image has empty GT), "
                           "so there is nothing to diagnose")


def dataset_record(args) -> dict:
    """The dataset analysed, as report.json's ``dataset`` (the viewer's Errors browser reopens
    it: the fields of ``viewer.datasets.DatasetSpec``)."""
    if uses_shapes(args):
        return {"kind": "shapes", "count": args.shapes_count, "height": args.shapes_size,
                "width": args.shapes_size, "seed": args.seed}
    return {"kind": "coco", "annotations": _absolute(args.json), "image_dir": _absolute(args.images)}


def _absolute(path):
    return None if not path else os.path.abspath(path)


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, else a line per tenth of the images
    (done/total, images per second, ETA, failures)."""

    def __init__(self, stream=None, width=30, every=None):
        self.stream, self.width, self.every = stream or sys.stderr, width, every
        self.start = time.perf_counter()
        self.failed = 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done, total, outcome):
        self.failed += isinstance(outcome, dict)
        step = self.every if self.every and self.every > 0 else max(total // 10, 1)
        if not self.tty and done % step and done != total:
            return
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        filled = int(self.width * done / max(total, 1))
        eta = (total - done) / rate if rate else 0.0
        failed = f"  {self.failed} failed" if self.failed else ""
        line = (f"analyze [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
                f"  {rate:.2f} img/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}{failed}")
        self.stream.write(("\r" + line + ("\n" if done == total else "")) if self.tty
                          else line + "\n")
        self.stream.flush()


def load_config(args):
    """The inference config: --config (or the weights' run config; never one inferred from the
    weights: the dataset's image size and anchors matter), one image per batch, --precision."""
    from mrcnn.config import Config
    from mrcnn.evaluate_cli import _fields
    from mrcnn.model_files import load_config as load_model_config

    config = load_model_config(args.config, args.weights, infer=False)
    fields = {**_fields(config), "IMAGES_PER_GPU": 1, "GPU_COUNT": 1}
    if args.min_confidence is not None:
        fields["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
    return apply_precision(Config.from_dict(fields), args.precision)


def load_weights(model, weights, dataset):
    """model.load_weights; a class-count mismatch names the counts of weights and dataset."""
    from mrcnn.analyze import AnalyzeError
    from mrcnn.weights import WeightsError, WeightsMismatchError

    try:
        return model.load_weights(weights)
    except WeightsMismatchError as error:
        shapes = [file_shape for layer, _, _, file_shape in error.report.mismatched
                  if layer == "mrcnn_class_logits"]
        if not shapes:
            raise AnalyzeError(str(error)) from None
        raise AnalyzeError(
            f"--weights {weights} were trained for {shapes[0][-1]} classes (mrcnn_class_logits) "
            f"but the config and the dataset have {dataset.num_classes} "
            f"({', '.join(dataset.class_names[:6])}); analyse with the weights of this "
            "dataset") from None
    except WeightsError as error:  # not an OSError / ValueError: say it the same way
        raise AnalyzeError(str(error)) from None


def run(args) -> int:
    """Analyse per parsed ``args``; writes the report; returns the exit code."""
    from mrcnn.analyze import analyze_dataset, check_compatible
    from mrcnn.analyze_report import write_report
    from mrcnn.diagnose import Thresholds
    from mrcnn.diagnose.aggregate import summarize

    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"--weights: {args.weights} does not exist")
    config = load_config(args)
    dataset = load_dataset(args)
    check_compatible(config, dataset)  # before importing TensorFlow and building the model
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", config)
    print(load_weights(model, args.weights, dataset), file=sys.stderr)
    out = Path(args.out)
    traces = out / "traces" if args.save_traces else None
    done = analyze_dataset(model, dataset, args.limit, Thresholds(cover_iou=args.cover_iou),
                           progress=Progress(every=args.progress_every), traces_dir=traces)
    if done.interrupted:
        print(f"\ninterrupted: writing a partial report of {len(done.results)} images",
              file=sys.stderr)
    report = summarize(done.results, dataset.class_names,
                       max_proposals=model.config.POST_NMS_ROIS_INFERENCE)
    report.update(weights=str(args.weights), config=model.config.NAME,
                  interrupted=done.interrupted, total_images=done.total,
                  failures=done.failures, seconds=done.seconds,
                  seconds_per_image=done.seconds / max(len(done.results) + len(done.failures), 1),
                  traces_dir=str(traces.resolve()) if traces else None,
                  dataset=dataset_record(args), config_file=_absolute(args.config),
                  weights_file=_absolute(args.weights))
    path = write_report(report, out)
    causes = report["causes"]["counts"]
    missed = {k: v for k, v in causes.items() if k != "detected" and v}
    print(f"{report['images']} images, {report['gt']} GT, {causes['detected']} detected; missed: "
          f"{missed or 'none'}; false positives: "
          f"{ {k: v for k, v in report['fp_types']['counts'].items() if k != 'true_positive' and v} }"
          f"; failed images: {len(done.failures)}; report: {path}")
    return EXIT_INTERRUPTED if done.interrupted else 0


def main(argv=None) -> int:
    """``python -m mrcnn.analyze_cli`` / ``mrcnn analyze``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = add_arguments(argparse.ArgumentParser(prog="mrcnn analyze",
                                                   description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError, InputError) as error:
        print(f"mrcnn analyze: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
