"""Saliency sanity checks on the demo model and held-out Shapes images (issue 17's numbers).

    PYTHONPATH=. python bench/explain_sanity.py [--count 50] [--methods gradcam gradcam++ ...]

For every confident detection (score >= --min-score) of --count held-out Shapes images (the
seed ``mrcnn evaluate --dataset shapes`` uses, which no training image used), per method and
target: the pointing game (map peak inside the box), the share of the map's positive mass
inside the box, the deletion check (class probability of the detection's ROI after deleting
the top 20% salient pixels vs 20% random pixels, deleted = mean pixel), and the model
randomisation check (Spearman rank correlation of the map before / after the classifier and
mask heads' weights are re-drawn at random with each tensor's own std). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrcnn.evaluate_cli import SHAPES_EVAL_SEED  # noqa: E402

DEMO = ROOT / "resources" / "demo"
HEAD_LAYER_PREFIXES = ("mrcnn_class_conv", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")
DELETE_FRACTION = 0.2
POINTING_TOLERANCE = 4  # pixels: one cell of P2 (stride 4), the finest map Grad-CAM gives here


def load_demo_model():
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    config = Config.from_json(str(DEMO / "config.json"))
    model = MaskRCNN("inference", config)
    model.load_weights(str(DEMO / "mask_rcnn_shapes_demo.h5"))
    return model


def randomise_heads(model, seed=0) -> list[str]:
    """Re-draw every kernel / bias of the ROI heads (normal, each tensor's own std); names."""
    rng = np.random.default_rng(seed)
    names = []
    for layer in model.keras_model.layers:
        if layer.name.startswith(HEAD_LAYER_PREFIXES) and "_bn" not in layer.name:
            for weight in layer.weights:
                value = weight.numpy()
                std = float(value.std()) or 0.05
                weight.assign(rng.normal(0.0, std, value.shape).astype(value.dtype))
            names.append(layer.name)
    return names


def held_out_images(count, seed=SHAPES_EVAL_SEED, size=128):
    from mrcnn.data.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=seed)
    dataset.prepare()
    return [dataset.load_image(i) for i in dataset.image_ids]


def deletion_drops(model, image, trace, k, saliency, rng):
    """(score, drop after deleting the top 20% salient pixels, drop after 20% random pixels)."""
    from mrcnn.explain_metrics import (delete_pixels, detection_scores, random_fraction_mask,
                                       top_fraction_mask)

    fill = model.config.MEAN_PIXEL
    images = [image,
              delete_pixels(image, top_fraction_mask(saliency, DELETE_FRACTION), fill),
              delete_pixels(image, random_fraction_mask(saliency.shape, DELETE_FRACTION, rng),
                            fill)]
    base, top, random = detection_scores(model, images, trace, k)
    return base, base - top, base - random


def measure(model, random_model, images, methods, targets, layers, min_score):
    from mrcnn.explain import explain
    from mrcnn.explain_metrics import box_slices, mass_in_box, pointing_hit, spearman
    from mrcnn.trace import trace

    rows = {(m, t, layer): [] for m in methods for t in targets for layer in layers}
    rng = np.random.default_rng(0)
    seconds = {key: 0.0 for key in rows}
    for image in images:
        image_trace = trace(model, image, activations=[])
        det = image_trace["detections"]
        for k in np.flatnonzero(det["scores"] >= min_score):
            box = det["boxes"][k]
            for key in rows:
                method, target, layer = key
                start = time.perf_counter()
                options = {} if method == "drise" else dict(target=target, layer=layer)
                saliency = explain(model, image, int(k), method=method, trace=image_trace,
                                   **options)
                seconds[key] += time.perf_counter() - start
                rows_, cols_ = box_slices(box, saliency.shape)
                if method != "drise":  # D-RISE: 500 more runs per map; not measured
                    randomised = explain(random_model, image, int(k), method=method,
                                         target=target, layer=layer, trace=image_trace)
                _, top, random = deletion_drops(model, image, image_trace, int(k), saliency, rng)
                rho = (np.nan, np.nan) if method == "drise" else (
                    spearman(saliency, randomised),
                    spearman(saliency[rows_, cols_], randomised[rows_, cols_]))
                rows[key].append((pointing_hit(saliency, box),
                                  pointing_hit(saliency, box, POINTING_TOLERANCE),
                                  mass_in_box(saliency, box), top, random, *rho))
    return rows, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="held-out Shapes images")
    parser.add_argument("--min-score", type=float, default=0.9, help="'confident' detections")
    parser.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++"])
    parser.add_argument("--targets", nargs="+", default=["class", "mask"])
    parser.add_argument("--layers", nargs="+", default=[None],
                        help="Grad-CAM layers (default: the detection's own FPN level)")
    args = parser.parse_args(argv)
    model, random_model = load_demo_model(), load_demo_model()
    randomised = randomise_heads(random_model)
    print(f"randomised head layers: {', '.join(randomised)}")
    images = held_out_images(args.count)
    rows, seconds = measure(model, random_model, images, args.methods, args.targets,
                            args.layers, args.min_score)
    print(f"{args.count} held-out Shapes images (seed {SHAPES_EVAL_SEED}), detections with score "
          f">= {args.min_score}")
    print(f"{'method':17} {'target':6} {'layer':10} {'n':>4} {'pointing':>9} {'point±4':>8} {'both':>6} {'mass>=.6':>9} {'mass med':>9} "
          f"{'del top':>8} {'del rand':>8} {'top>rand':>9} {'rho med':>8} {'rho max':>8} "
          f"{'rho box':>8} {'ms/map':>7}")
    for (method, target, layer), values in rows.items():
        if not values:
            continue
        hits, near, mass, top, random, rho, rho_box = (np.asarray(v, np.float64)
                                                       for v in zip(*values))
        print(f"{method:17} {target:6} {layer or 'own level':10} {len(hits):4d} {hits.mean():9.1%} {near.mean():8.1%} {np.mean(hits * (mass >= 0.6)):6.1%} {np.mean(mass >= 0.6):9.1%}"
              f" {np.median(mass):9.2f} {top.mean():8.3f} {random.mean():8.3f}"
              f" {np.mean(top > random):9.1%} {np.median(rho):8.2f} {rho.max():8.2f}"
              f" {np.median(rho_box):8.2f}"
              f" {1000 * seconds[(method, target, layer)] / len(hits):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
