"""Write the demo's sample images: held-out Shapes images + their COCO JSON, in resources/.

    python bench/make_demo_samples.py [--count 8] [--out resources/samples/shapes]

The seed is neither the training seed (0) nor the validation or evaluation seeds of
``mrcnn train`` / ``mrcnn evaluate``, so the demo model has never seen these images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SAMPLES_SEED = 424_252  # the first image has 3 shapes: a livelier first view than 1
SIZE = 128  # the demo model's input side


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "resources"
                                             / "samples" / "shapes"))
    args = parser.parse_args(argv)

    from mrcnn.data.shapes import ShapesDataset, export_coco

    dataset = ShapesDataset()
    dataset.load_shapes(args.count, SIZE, SIZE, seed=SAMPLES_SEED)
    dataset.prepare()
    out = Path(args.out)
    written = export_coco(dataset, dataset.image_ids, out / "annotations.json", out)
    print(f"{len(written['images'])} images, {len(written['annotations'])} instances -> {out}")


if __name__ == "__main__":
    main()
