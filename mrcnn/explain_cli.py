"""``mrcnn explain``: a saliency map for one detection of an image, as a PNG overlay (+ .npy).

    mrcnn explain --weights W [--config C] IMAGE --detection K
                  [--method gradcam|gradcam++|drise|...] [--layer fpn_p2] [--target class|mask]
                  --out map.png [--npy map.npy] [--masks 500 --cell-size 16 --seed 0]

Detection K is row K of the detections ``mrcnn detect`` / ``mrcnn trace`` report for the image
(sorted by score). Exit code 2 with one line on stderr for bad input (missing files, a detection
index out of range, a layer that does not feed the detection, an image without detections).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mrcnn.explain_drise import DEFAULT_CELL_SIZE, DEFAULT_KEEP_PROB, DEFAULT_NUM_MASKS
from mrcnn.explain_render import DEFAULT_OPACITY
from mrcnn.precision import add_precision_argument

METHOD_CHOICES = ("gradcam", "gradcam++", "drise", "gradcam-pooled", "gradcam++-pooled")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrcnn explain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--weights", required=True, metavar="W", help="HDF5 weights file")
    parser.add_argument("--config", metavar="C.json",
                        help="config JSON (default: inferred from the weights file)")
    parser.add_argument("--class-names", metavar="FILE", help="class names file (for messages)")
    parser.add_argument("--detection", required=True, type=int, metavar="K",
                        help="detection index (0 = highest score)")
    parser.add_argument("--method", default="gradcam", choices=METHOD_CHOICES)
    parser.add_argument("--layer", default=None,
                        help="Grad-CAM layer: backbone (res*_out ...) or FPN (fpn_p2..fpn_p5); "
                             "default: the FPN level the detection is pooled from")
    parser.add_argument("--target", default="class", choices=("class", "mask"),
                        help="explain the class score or the mask logits")
    parser.add_argument("--out", required=True, metavar="MAP.png", help="overlay PNG to write")
    parser.add_argument("--npy", metavar="MAP.npy", help="also write the raw [H, W] map")
    add_precision_argument(parser)
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="load weights holding NaN / Inf (with a warning) instead of refusing")
    parser.add_argument("--opacity", type=float, default=DEFAULT_OPACITY,
                        help="overlay opacity 0..1")
    drise = parser.add_argument_group("D-RISE")
    drise.add_argument("--masks", type=int, default=DEFAULT_NUM_MASKS, help="random masks")
    drise.add_argument("--cell-size", type=float, default=DEFAULT_CELL_SIZE,
                       help="mask grid cell, original-image pixels")
    drise.add_argument("--keep-prob", type=float, default=DEFAULT_KEEP_PROB,
                       help="fraction of cells kept per mask")
    drise.add_argument("--seed", type=int, default=0)
    return parser


def run(args) -> int:
    """Explain per parsed ``args``; writes the PNG (and .npy); returns the exit code."""
    from mrcnn.cli import CliError, _class_names, build_model, read_image
    from mrcnn.explain import ExplainError, explain
    from mrcnn.explain_render import overlay, save_png

    if not 0.0 <= args.opacity <= 1.0:
        raise CliError(f"--opacity must be in [0, 1], got {args.opacity}")
    image = read_image(args.image)
    model, config = build_model(args, "explain")
    names = _class_names(args, config)
    from mrcnn.trace import trace

    image_trace = trace(model, image, activations=[], class_names=names)
    options = {}
    if args.method == "drise":
        options = dict(num_masks=args.masks, cell_size=args.cell_size,
                       keep_prob=args.keep_prob, seed=args.seed,
                       progress=lambda done, total: print(f"D-RISE {done}/{total} masks",
                                                          file=sys.stderr))
    start = time.perf_counter()
    try:
        saliency = explain(model, image, args.detection, method=args.method, layer=args.layer,
                           target=args.target, trace=image_trace, **options)
    except ExplainError as e:
        raise CliError(f"{args.image}: {e}") from None
    seconds = time.perf_counter() - start
    det = image_trace["detections"]
    box = det["boxes"][args.detection]
    save_png(args.out, overlay(image, saliency, args.opacity, box=box))
    if args.npy:
        np.save(args.npy, saliency)
    class_id = int(det["class_ids"][args.detection])
    print(f"{args.image}: detection {args.detection} ({names[class_id]}, score "
          f"{float(det['scores'][args.detection]):.3f}, box {[int(v) for v in box]}): "
          f"{args.method} {args.target} map in {seconds:.2f} s -> {args.out}"
          + (f" + {args.npy}" if args.npy else ""))
    return 0


def main(argv=None) -> int:
    """``mrcnn explain`` entry point (delegated from ``mrcnn.cli``)."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    from mrcnn.cli import CliError

    try:
        sys.exit(main())
    except CliError as error:
        print(f"mrcnn explain: error: {error}", file=sys.stderr)
        sys.exit(2)
