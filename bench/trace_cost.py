"""Cost of mrcnn.trace (all stages, default activations) relative to MaskRCNN.detect.

    python bench/trace_cost.py [--repeats 5] [--cases tiny:512 resnet50:512 resnet50:1024]
                               [--gt] [--activations LAYER ...] [--precision fp32 bf16]

Both run the same model (random weights) on the same random image in the same process, after one
warm-up each (which compiles their graphs). Prints median seconds per image of each and the ratio
trace / detect (target <= 1.3x), plus the median per-stage split of trace's time. With several
--precision values each case runs once per precision (COMPUTE_DTYPE float32 / bfloat16).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


DTYPE_OF = {"fp32": "float32", "bf16": "bfloat16"}


def bench_config(case: str, compute_dtype: str = "float32"):
    """Config of a case "backbone:size"; backbone "tiny" = the test suite's small resnet18 model."""
    from mrcnn.config import Config

    backbone, _, size = case.partition(":")
    size = int(size or 1024)
    overrides = {"NAME": f"bench_{backbone}_{size}", "IMAGES_PER_GPU": 1, "IMAGE_MIN_DIM": size,
                 "IMAGE_MAX_DIM": size, "NUM_CLASSES": 81, "DETECTION_MIN_CONFIDENCE": 0.0,
                 "COMPUTE_DTYPE": compute_dtype}
    if backbone == "tiny":
        overrides.update(BACKBONE="resnet18", NUM_CLASSES=4, FPN_CLASSIF_FC_LAYERS_SIZE=64,
                         TOP_DOWN_PYRAMID_SIZE=32, POST_NMS_ROIS_INFERENCE=100,
                         PRE_NMS_LIMIT=500, DETECTION_MAX_INSTANCES=20)
    else:
        overrides["BACKBONE"] = backbone
    return Config.from_dict(overrides)


def _median_seconds(fn, repeats: int) -> tuple[float, list]:
    fn()  # warm-up: traces and compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def run_case(case: str, repeats: int, with_gt: bool, activations,
             compute_dtype: str = "float32") -> dict:
    from mrcnn.model import MaskRCNN
    from mrcnn.trace import trace

    config = bench_config(case, compute_dtype)
    model = MaskRCNN("inference", config)
    size = config.IMAGE_MAX_DIM
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8)
    gt = None
    if with_gt:
        gt = {"boxes": np.array([[size // 8, size // 8, size // 2, size // 2]]),
              "class_ids": np.array([1])}
    traces = []

    def run_trace():
        traces.append(trace(model, image, gt=gt, activations=activations))

    detect_s, _ = _median_seconds(lambda: model.detect([image]), repeats)
    trace_s, _ = _median_seconds(run_trace, repeats)
    stages = {key: statistics.median(t.timings[key] for t in traces[1:])
              for key in traces[-1].timings}
    activation_mb = sum(traces[-1][f"activations/{name}"]["values"].nbytes
                        for name in traces[-1].activation_layers()) / 2**20
    return {"case": case, "detect_s": detect_s, "trace_s": trace_s,
            "ratio": trace_s / detect_s, "stages": stages, "activation_mb": activation_mb}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="+",
                        default=["tiny:512", "resnet50:512", "tiny:1024", "resnet50:1024"],
                        help="backbone:size pairs; backbone 'tiny' or a ResNet name")
    parser.add_argument("--gt", action="store_true", help="also compute training targets")
    parser.add_argument("--activations", nargs="*", default=None,
                        help="activation layers (default: C2-C5 and fpn_p2..fpn_p6)")
    parser.add_argument("--precision", nargs="+", choices=sorted(DTYPE_OF), default=["fp32"])
    args = parser.parse_args(argv)

    import tensorflow as tf

    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(f"machine: {os.cpu_count()} cores, devices {devices}; TF {tf.__version__}; "
          f"median of {args.repeats} after 1 warm-up")
    worst = 0.0
    runs = [(case, precision) for case in args.cases for precision in args.precision]
    for case, precision in runs:
        result = run_case(case, args.repeats, args.gt, args.activations, DTYPE_OF[precision])
        worst = max(worst, result["ratio"])
        case = f"{case} {precision}"
        print(f"{case:16s} detect {result['detect_s']:.3f} s  trace {result['trace_s']:.3f} s  "
              f"ratio trace/detect = {result['ratio']:.2f}x  "
              f"(activations {result['activation_mb']:.0f} MiB float16)")
        split = ", ".join(f"{k} {v * 1000:.0f}" for k, v in result["stages"].items())
        print(f"{'':16s} trace stages (ms): {split}")
    print(f"worst ratio {worst:.2f}x (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
