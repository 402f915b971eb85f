"""Cost of explaining one detection on the demo model (issue 17's targets).

    PYTHONPATH=. python bench/explain_cost.py [--repeats 20] [--masks 500]

1. Grad-CAM (fpn level of the detection, class target) for one detection, given the image's
   trace (what the viewer and ``mrcnn explain`` hold), vs a warm ``detect()`` of the same image:
   medians of --repeats runs each after one warm-up call; target <= 1.5x.
2. D-RISE with --masks masks (cell 16 px, batches of 25) on the same image; target <= 30 s on 2
   CPU cores. Prints both, with the thread counts TensorFlow was allowed.
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
sys.path.insert(0, str(ROOT / "bench"))

from explain_sanity import held_out_images, load_demo_model  # noqa: E402

GRADCAM_TARGET = 1.5   # x a warm detect()
DRISE_TARGET_S = 30.0


def median_seconds(fn, repeats) -> float:
    fn()  # warm-up: tracing / compiling is not the steady cost
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--masks", type=int, default=500)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from mrcnn.explain import explain
    from mrcnn.trace import trace

    model = load_demo_model()
    image = held_out_images(1)[0]
    image_trace = trace(model, image, activations=[])
    detect_s = median_seconds(lambda: model.detect([image]), args.repeats)
    gradcam_s = median_seconds(lambda: explain(model, image, 0, trace=image_trace), args.repeats)
    gradcam_pp_s = median_seconds(
        lambda: explain(model, image, 0, method="gradcam++", target="mask", trace=image_trace),
        args.repeats)
    print(f"cpu count {os.cpu_count()}, TF intra/inter threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}/"
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = all)")
    print(f"detect() warm, median of {args.repeats}: {1000 * detect_s:.1f} ms")
    print(f"Grad-CAM class, one detection: {1000 * gradcam_s:.1f} ms = {gradcam_s / detect_s:.2f}x "
          f"detect (target <= {GRADCAM_TARGET}x)")
    print(f"Grad-CAM++ mask, one detection: {1000 * gradcam_pp_s:.1f} ms = "
          f"{gradcam_pp_s / detect_s:.2f}x detect")
    explain(model, image, 0, method="drise", trace=image_trace, num_masks=25)  # warm-up
    start = time.perf_counter()
    explain(model, image, 0, method="drise", trace=image_trace, num_masks=args.masks)
    drise_s = time.perf_counter() - start
    print(f"D-RISE, {args.masks} masks: {drise_s:.1f} s (target <= {DRISE_TARGET_S:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
