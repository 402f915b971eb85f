"""Time per image of the exported SavedModel against MaskRCNN.detect() on the same images.

    python bench/export_speed.py [--weights W --config C] [--images N] [--sizes 128x128,...]

Defaults: the demo model (resources/demo) and shapes images of three sizes. Both paths run the
whole job for one image (mold, model, unmold, full-size masks); each is warmed up on every size
first (tracing), then timed over N images per size. Prints seconds per image and the ratio.
Run on a quiet machine: numbers taken on a shared one say little.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shapes_images(sizes, count):
    from mrcnn.data.shapes import ShapesDataset

    images = []
    for index, (height, width) in enumerate(sizes):
        dataset = ShapesDataset()
        dataset.load_shapes(count, height, width, seed=100 + index)
        dataset.prepare()
        images.append([dataset.load_image(i) for i in dataset.image_ids])
    return images


def seconds_per_image(run, groups) -> float:
    for group in groups:  # warm-up: one trace per input shape
        run(group[0])
    start = time.perf_counter()
    count = 0
    for group in groups:
        for image in group:
            run(image)
            count += 1
    return (time.perf_counter() - start) / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "resources/demo/mask_rcnn_shapes_demo.h5"))
    parser.add_argument("--config", default=str(ROOT / "resources/demo/config.json"))
    parser.add_argument("--images", type=int, default=5, help="timed images per size")
    parser.add_argument("--sizes", default="128x128,240x320,600x400")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    import tensorflow as tf

    from mrcnn.config import Config
    from mrcnn.export import export_savedmodel
    from mrcnn.model import MaskRCNN

    config = Config.from_json(args.config)
    config.IMAGES_PER_GPU, config.GPU_COUNT, config.BATCH_SIZE = 1, 1, 1
    model = MaskRCNN("inference", config)
    model.load_weights(args.weights)
    groups = shapes_images(sizes, args.images)
    with tempfile.TemporaryDirectory() as folder:
        serve = tf.saved_model.load(str(export_savedmodel(model, folder))) \
            .signatures["serving_default"]
        exported = seconds_per_image(
            lambda image: {k: v.numpy() for k, v in serve(image=tf.constant(image)).items()},
            groups)
    detect = seconds_per_image(lambda image: model.detect([image]), groups)
    print(f"images: {args.images} per size, sizes {args.sizes}, weights {Path(args.weights).name}")
    print(f"detect():          {detect * 1000:8.1f} ms/image")
    print(f"SavedModel export: {exported * 1000:8.1f} ms/image")
    print(f"ratio exported/detect: {exported / detect:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
