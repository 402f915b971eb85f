"""Seconds per image of MaskRCNN.detect at 1024x1024 vs torchvision's maskrcnn_resnet50_fpn.

    python bench/detect_speed.py [--repeats 5] [--backbones resnet50 resnet101] [--stages]
                                 [--detections 100] [--torch-python PATH]  # torch + torchvision
                                 [--precision fp32 bf16]

Both models have random weights, 81 classes, 1000 proposals and 100 detections per image (score
threshold 0 for both), so they do the same work. With --detections K both return K detections
(torchvision: box_detections_per_img=K; ours: DETECTION_MAX_INSTANCES stays 100 and the
confidence threshold is set so that K are real), as a trained model does on a real image.
torchvision runs in a child process (its own OpenMP runtime stays out of TensorFlow's) with the
same thread count. Each repeat times one image of each model in turn, so both see the same
machine (a shared VM's speed drifts by 20% over minutes). Prints medians after one warm-up, the
ratio ours / torchvision and the median of the per-repeat ratios.
With --stages, also prints where our time goes (mold, backbone, FPN, RPN head, proposals, heads,
mask head, unmold), from prefix sub-models of the same graph.
With --precision bf16 (or several: fp32 bf16) each precision gets its own pair: ours built with
COMPUTE_DTYPE bfloat16, torchvision at its own best in bfloat16 (torch.autocast("cpu",
dtype=torch.bfloat16) and a channels_last model); fp32 pairs run plain float32 on both sides.
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

# The peer stays up between timings and runs one image per line it reads, so that its timings
# and ours alternate: a machine whose speed drifts (a shared VM) then slows both alike.
TORCH_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch, torchvision
    import contextlib
    size, detections, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=81, min_size=size, max_size=size,
        box_score_thresh=0.0, box_detections_per_img=detections, rpn_post_nms_top_n_test=1000)
    model.eval()
    image = torch.rand(3, size, size)
    autocast = contextlib.nullcontext()
    if precision == "bf16":  # torch's own best on a CPU: oneDNN bfloat16 in channels_last
        model = model.to(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with torch.no_grad(), autocast:
        out = model([image])
        print(json.dumps({"detections": int(out[0]["boxes"].shape[0]), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "torchvision": torchvision.__version__,
                          "precision": precision}), flush=True)
        for _ in sys.stdin:
            start = time.perf_counter(); model([image])
            print(time.perf_counter() - start, flush=True)
""")


class TorchPeer:
    """torchvision's maskrcnn_resnet50_fpn in a child process (its OpenMP runtime stays out of
    TensorFlow's), timed one image at a time on request."""

    def __init__(self, python: str, size: int, detections: int, precision: str = "fp32"):
        self.proc = subprocess.Popen([python, "-c", TORCH_SCRIPT, str(size), str(detections),
                                      precision],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(self.proc.stderr.read()[-2000:])
        self.info = json.loads(line)

    def time_one(self) -> float:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def start_peer(python: str, size: int, detections: int, precision: str = "fp32"):
    try:
        return TorchPeer(python, size, detections, precision)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"torchvision peer not run: {e}", file=sys.stderr)
        return None


def bench_config(backbone: str, size: int, min_confidence: float = 0.0,
                 compute_dtype: str = "float32"):
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = backbone
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = min_confidence
        COMPUTE_DTYPE = compute_dtype

    return BenchConfig()


def prepare_ours(backbone: str, size: int, detections: int = 100, compute_dtype="float32"):
    """A random-weight model of ``backbone`` and its test image, warmed up (graph compiled)."""
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", bench_config(backbone, size, compute_dtype=compute_dtype))
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8)
    if detections < model.config.DETECTION_MAX_INSTANCES:
        model = _model_finding(model, image, detections)
    model.detect([image])  # warm-up: traces and compiles the graph once
    return model, image


def time_detect(model, image):
    """(seconds, detection count) of one detect() call."""
    start = time.perf_counter()
    result = model.detect([image])[0]
    return time.perf_counter() - start, int(len(result["class_ids"]))


def _model_finding(model, image, count: int):
    """The same weights with DETECTION_MIN_CONFIDENCE at the count-th best final score, so that
    exactly ``count`` of the DETECTION_MAX_INSTANCES rows are real detections: what a trained
    model with a confidence threshold returns (torchvision gets box_detections_per_img=count).
    Greedy NMS keeps the same top boxes when only lower-scored candidates are removed."""
    from mrcnn.model import MaskRCNN

    scores = model.detect([image])[0]["scores"]
    threshold = float(np.sort(scores)[::-1][count - 1])
    fewer = MaskRCNN("inference", bench_config(model.config.BACKBONE, model.config.IMAGE_MAX_DIM,
                                               min_confidence=threshold,
                                               compute_dtype=model.config.COMPUTE_DTYPE))
    fewer.keras_model.set_weights(model.keras_model.get_weights())
    return fewer


def stage_breakdown(model, image, repeats: int) -> dict:
    """Median seconds of each stage of detect(), from prefix sub-models of the same graph.

    Each prefix's outputs include every earlier prefix's, so grappler cannot prune a stage that
    a later one needs (an fpn_p6-only prefix would skip the P2-P4 convolutions); the difference
    of consecutive medians is the stage's own time. "mold" and "unmold" are detect()'s host-side
    work before and after the graph.
    """
    import keras
    import tensorflow as tf

    from mrcnn import imaging
    from mrcnn.backbone import backbone_layer_names

    graph = model.keras_model
    layer_outputs = lambda *names: [graph.get_layer(n).output for n in names]  # noqa: E731
    stage_outputs = {
        "backbone (C2-C5)": layer_outputs(*backbone_layer_names(model.config).values()),
        "fpn (P2-P6)": layer_outputs("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"),
        "rpn head": layer_outputs("rpn_class", "rpn_bbox"),
        "proposals (NMS)": [graph.get_layer("ROI").output[0]],
        "classifier head": layer_outputs("mrcnn_class", "mrcnn_bbox"),
        "detections (NMS)": [graph.get_layer("mrcnn_detection").output[0]],
        "mask head": list(graph.outputs),
    }
    images = [imaging.to_model_channels(image, model.config.IMAGE_CHANNEL_COUNT, "image")]
    per_stage = {"mold": _median_time(lambda: model.mold(images), repeats)}
    molded, metas, windows, anchors = model.mold(images)
    args = [tf.constant(molded, tf.float32), tf.constant(metas, tf.float32), tf.constant(anchors, tf.float32)]
    outputs, previous = [], 0.0
    for name, stage in stage_outputs.items():
        outputs = outputs + stage
        sub = keras.Model(graph.inputs, outputs)
        fn = tf.function(lambda a, b, c, sub=sub: sub([a, b, c], training=False))
        run = lambda fn=fn: [t.numpy() for t in tf.nest.flatten(fn(*args))]  # noqa: E731
        run()
        cumulative = _median_time(run, repeats)
        per_stage[name] = max(cumulative - previous, 0.0)
        previous = cumulative
    out = model.predict_molded(molded, metas, anchors)
    per_stage["unmold (paste masks)"] = _median_time(lambda: imaging.unmold_detections(
        out["detections"][0], out["mrcnn_mask"][0], image.shape, molded[0].shape, windows[0]),
        repeats)
    return per_stage


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


DTYPE_OF = {"fp32": "float32", "bf16": "bfloat16"}


def machine_line(args) -> str:
    """Cores, TF threads, CPU bf16 flags: what the numbers depend on."""
    import tensorflow as tf

    from mrcnn.precision import cpu_bf16_flags, read_cpuinfo

    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    flags = ", ".join(cpu_bf16_flags(read_cpuinfo())) or "no amx_bf16 / avx512_bf16"
    return (f"machine: {os.cpu_count()} cores, TF intra-op threads {threads}, CPU flags: {flags}; "
            f"TF {tf.__version__}; image {args.size}x{args.size}; median of {args.repeats} after "
            f"1 warm-up, ours and the peer's runs interleaved")


def run_interleaved(pairs: dict, repeats: int):
    """{precision: (peer times, {backbone: our times}, {backbone: detection count})}."""
    times = {p: ([], {b: [] for b in ours}, {}) for p, (_, ours) in pairs.items()}
    for _ in range(repeats):
        for precision, (peer, ours) in pairs.items():
            peer_times, our_times, counts = times[precision]
            if peer:
                time.sleep(0.5)  # neither side starts while the other's threads still spin
                peer_times.append(peer.time_one())
            for backbone, (model, image) in ours.items():
                time.sleep(0.5)
                seconds, counts[backbone] = time_detect(model, image)
                our_times[backbone].append(seconds)
    return times


def report(precision, peer, peer_times, our_times, counts):
    peer_median = None
    if peer:
        peer.close()
        peer_median = statistics.median(peer_times)
        print(f"[{precision}] torchvision maskrcnn_resnet50_fpn {peer.info['torchvision']}"
              f"{' (autocast bf16, channels_last)' if precision == 'bf16' else ''}: "
              f"{peer_median:.3f} s/image ({peer.info['detections']} detections, "
              f"{peer.info['threads']} threads)")
    for backbone, times in our_times.items():
        median = statistics.median(times)
        line = f"[{precision}] mrcnn {backbone}: {median:.3f} s/image ({counts[backbone]} detections)"
        if peer:
            paired = statistics.median(t / p for t, p in zip(times, peer_times))
            line += (f"  ratio vs torchvision R50 = {median / peer_median:.2f}x "
                     f"(median of paired runs {paired:.2f}x)")
        print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    parser.add_argument("--torch-python", default=os.environ.get("MRCNN_BENCH_TORCH_PYTHON", sys.executable))
    parser.add_argument("--stages", action="store_true", help="also print per-stage time of our graph")
    parser.add_argument("--detections", type=int, default=100,
                        help="real detections per image (default 100 = DETECTION_MAX_INSTANCES); "
                             "fewer is what a trained model with a confidence threshold returns")
    parser.add_argument("--precision", nargs="+", choices=sorted(DTYPE_OF), default=["fp32"],
                        help="one pair (ours, torchvision) per precision, interleaved")
    args = parser.parse_args(argv)

    print(machine_line(args))
    pairs = {}
    for precision in dict.fromkeys(args.precision):
        peer = start_peer(args.torch_python, args.size, args.detections, precision)
        ours = {backbone: prepare_ours(backbone, args.size, args.detections, DTYPE_OF[precision])
                for backbone in args.backbones}
        pairs[precision] = (peer, ours)
    times = run_interleaved(pairs, args.repeats)
    for precision, (peer, _) in pairs.items():
        report(precision, peer, *times[precision])
    if args.stages:
        for precision, (_, ours) in pairs.items():
            model, image = ours[args.backbones[0]]
            print(f"[{precision}] where the time goes ({args.backbones[0]}, median of {args.repeats}):")
            for stage, seconds in stage_breakdown(model, image, args.repeats).items():
                print(f"    {stage:22s} {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
