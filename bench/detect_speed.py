"""Seconds per image of MaskRCNN.detect at 1024x1024 vs torchvision's maskrcnn_resnet50_fpn.

    python bench/detect_speed.py [--repeats 5] [--backbones resnet50 resnet101]
                                 [--torch-python PATH]   # a Python with torch + torchvision

Both models have random weights, 81 classes, 1000 proposals and 100 detections per image (score
threshold 0 for both), so they do the same work. torchvision runs in a child process (its own
OpenMP runtime stays out of TensorFlow's); it is measured in the same run, on the same machine,
with the same thread count. Prints medians after one warm-up and the ratio ours / torchvision.
With --stages, also prints where our time goes (backbone+FPN, RPN, proposals, heads, masks), from
prefix sub-models of the same graph.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TORCH_SCRIPT = textwrap.dedent("""
    import json, statistics, sys, time
    import torch, torchvision
    repeats, size = int(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=81, min_size=size, max_size=size,
        box_score_thresh=0.0, box_detections_per_img=100, rpn_post_nms_top_n_test=1000)
    model.eval()
    image = torch.rand(3, size, size)
    times = []
    with torch.no_grad():
        model([image])
        for _ in range(repeats):
            start = time.perf_counter(); out = model([image]); times.append(time.perf_counter() - start)
    print(json.dumps({"median_s": statistics.median(times), "times": times,
                      "detections": int(out[0]["boxes"].shape[0]), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "torchvision": torchvision.__version__}))
""")


def bench_config(backbone: str, size: int):
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = backbone
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = 0.0

    return BenchConfig()


def time_ours(backbone: str, size: int, repeats: int, stages: bool) -> dict:
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", bench_config(backbone, size))
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8)
    model.detect([image])  # warm-up: traces and compiles the graph once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = model.detect([image])[0]
        times.append(time.perf_counter() - start)
    out = {"median_s": statistics.median(times), "times": times,
           "detections": int(len(result["class_ids"]))}
    if stages:
        out["stages"] = stage_breakdown(model, image, repeats)
    return out


def stage_breakdown(model, image, repeats: int) -> dict:
    """Median seconds of each stage, from prefix sub-models (each includes the stages before it)."""
    import keras
    import tensorflow as tf

    graph = model.keras_model
    prefixes = {
        "backbone+fpn": [graph.get_layer("fpn_p6").output],
        "+rpn": [graph.get_layer("rpn_class").output, graph.get_layer("rpn_bbox").output],
        "+proposals": [graph.get_layer("ROI").output[0]],
        "+classifier": [graph.get_layer("mrcnn_class").output, graph.get_layer("mrcnn_bbox").output],
        "+detections": [graph.get_layer("mrcnn_detection").output[0]],
        "+masks (full graph)": list(graph.outputs),
    }
    molded, metas, _, anchors = model.mold([image])
    args = [tf.constant(molded, tf.float32), tf.constant(metas, tf.float32), tf.constant(anchors, tf.float32)]
    cumulative = {}
    for name, outputs in prefixes.items():
        sub = keras.Model(graph.inputs, outputs)
        fn = tf.function(lambda a, b, c, sub=sub: sub([a, b, c], training=False))
        fn(*args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            [t.numpy() for t in tf.nest.flatten(fn(*args))]
            times.append(time.perf_counter() - start)
        cumulative[name] = statistics.median(times)
    per_stage, previous = {}, 0.0
    for name, value in cumulative.items():
        per_stage[name.lstrip("+")] = max(value - previous, 0.0)
        previous = value
    return per_stage


def time_torchvision(python: str, size: int, repeats: int) -> dict | None:
    try:
        proc = subprocess.run([python, "-c", TORCH_SCRIPT, str(repeats), str(size)],
                              capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"torchvision peer not run: {e}", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"torchvision peer failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    parser.add_argument("--torch-python", default=os.environ.get("MRCNN_BENCH_TORCH_PYTHON", sys.executable))
    parser.add_argument("--stages", action="store_true", help="also print per-stage time of our graph")
    args = parser.parse_args(argv)

    import tensorflow as tf

    print(f"machine: {os.cpu_count()} cores; TF {tf.__version__}; image {args.size}x{args.size}; "
          f"median of {args.repeats} after 1 warm-up")
    peer = time_torchvision(args.torch_python, args.size, args.repeats)
    if peer:
        print(f"torchvision maskrcnn_resnet50_fpn {peer['torchvision']}: {peer['median_s']:.3f} s/image "
              f"({peer['detections']} detections, {peer['threads']} threads)")
    for backbone in args.backbones:
        ours = time_ours(backbone, args.size, args.repeats, args.stages)
        line = f"mrcnn {backbone}: {ours['median_s']:.3f} s/image ({ours['detections']} detections)"
        if peer:
            line += f"  ratio vs torchvision R50 = {ours['median_s'] / peer['median_s']:.2f}x"
        print(line)
        for stage, seconds in ours.get("stages", {}).items():
            print(f"    {stage:22s} {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
