"""bfloat16 (or float16) vs float32 detections of the demo model on the held-out Shapes images.

    python bench/precision_accuracy.py [--precision bf16] [--count 50] [--out results.json]

The demo model (resources/demo) is built twice, in float32 and in the other precision, with the
same weights, and both detect the same ``--count`` Shapes images (the held-out set of
``mrcnn evaluate --dataset shapes``: seed SHAPES_EVAL_SEED, 128 px). Checks issue 14's criteria:
mAP@0.5 within 0.01 of float32's, and >= 95% of the float32 detections with score >= 0.5 have a
twin (same class, box IoU >= 0.9) among the other model's detections. Exits 1 if either fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resources" / "demo"
MAP_TOLERANCE = 0.01
MIN_TWIN_FRACTION = 0.95


def build_models(precision: str):
    """(float32 model, model in ``precision``) of the demo, both with its weights."""
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN
    from mrcnn.precision import apply_precision

    values = json.loads((DEMO / "config.json").read_text())
    values.update(IMAGES_PER_GPU=1, GPU_COUNT=1)
    config = Config.from_dict(values).validate()
    weights = next(DEMO.glob("*.h5"))
    models = []
    for choice in ("fp32", precision):
        model = MaskRCNN("inference", apply_precision(config, choice))
        model.load_weights(weights)
        models.append(model)
    return models


def evaluate_pair(models, count: int, size: int) -> dict:
    """Per-image AP@0.5 of both models, twins of the float32 detections, seconds per image."""
    from mrcnn.boxes import extract_bboxes
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.evaluate import compute_ap
    from mrcnn.evaluate_cli import SHAPES_EVAL_SEED
    from mrcnn.precision_compare import twin_counts

    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    aps = [[], []]
    seconds = [0.0, 0.0]
    detections = [0, 0]
    confident, twinned = 0, 0
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        results = []
        for index, model in enumerate(models):
            start = time.perf_counter()
            r = model.detect([image])[0]
            seconds[index] += time.perf_counter() - start
            detections[index] += len(r["class_ids"])
            aps[index].append(float(compute_ap(extract_bboxes(gt_masks), gt_class_ids, gt_masks,
                                               r["rois"], r["class_ids"], r["scores"],
                                               r["masks"])[0]))
            results.append(r)
        wanted, found = twin_counts(results[0], results[1])
        confident, twinned = confident + wanted, twinned + found
    n = len(dataset.image_ids)
    return {"images": n, "mAP50": [float(np.mean(a)) for a in aps],
            "detections": detections, "confident_fp32_detections": confident,
            "with_twin": twinned, "twin_fraction": twinned / max(confident, 1),
            "seconds_per_image": [s / n for s in seconds]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--count", type=int, default=50, help="held-out Shapes images")
    parser.add_argument("--size", type=int, default=128, help="Shapes image side, pixels")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    models = build_models(args.precision)
    result = evaluate_pair(models, args.count, args.size)
    result["precision"] = args.precision
    map32, map_low = result["mAP50"]
    map_ok = abs(map_low - map32) <= MAP_TOLERANCE
    twins_ok = result["twin_fraction"] >= MIN_TWIN_FRACTION
    print(f"demo model, {result['images']} held-out Shapes images ({args.size} px)")
    print(f"mAP@0.5  fp32 {map32:.4f}  {args.precision} {map_low:.4f}  "
          f"difference {map_low - map32:+.4f}  (within {MAP_TOLERANCE}: {map_ok})")
    print(f"fp32 detections with score >= 0.5: {result['confident_fp32_detections']}, with a "
          f"{args.precision} twin (same class, IoU >= 0.9): {result['with_twin']} "
          f"= {100 * result['twin_fraction']:.1f}%  (>= {100 * MIN_TWIN_FRACTION:.0f}%: {twins_ok})")
    print(f"all detections  fp32 {result['detections'][0]}  {args.precision} "
          f"{result['detections'][1]}; detect() s/image fp32 {result['seconds_per_image'][0]:.3f}"
          f"  {args.precision} {result['seconds_per_image'][1]:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if map_ok and twins_ok else 1


if __name__ == "__main__":
    sys.exit(main())
