"""Cost of the diagnosis: its share of a trace's time, and ``mrcnn analyze`` on Shapes.

    python bench/diagnose_cost.py [--images 20] [--analyze-count 200] [--skip-analyze]

1. The demo model (resources/demo) traces ``--images`` held-out Shapes images with their ground
   truth (default activations, as the viewer does), after one warm-up; each trace is then
   diagnosed. Prints the median trace and diagnosis seconds and the share
   diagnosis / trace (target <= 10%).
2. ``mrcnn analyze --dataset shapes --shapes-count N`` in a subprocess, wall clock from start to
   exit including model build and report (target <= 120 s for 200 images on 2 cores).

The last stdout line is one JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resources" / "demo"
WEIGHTS = DEMO / "mask_rcnn_shapes_demo.h5"
SHARE_TARGET = 0.10
ANALYZE_TARGET_S = 120.0


def diagnosis_share(count: int) -> dict:
    from mrcnn.analyze import load_gt
    from mrcnn.config import Config
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.diagnose import diagnose
    from mrcnn.evaluate_cli import SHAPES_EVAL_SEED
    from mrcnn.model import MaskRCNN
    from mrcnn.trace import trace

    model = MaskRCNN("inference", Config.from_json(str(DEMO / "config.json")))
    model.load_weights(str(WEIGHTS))
    dataset = ShapesDataset()
    dataset.load_shapes(count + 1, 128, 128, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    trace_s, diagnose_s = [], []
    for image_id in dataset.image_ids:
        image, gt = dataset.load_image(image_id), load_gt(dataset, image_id)
        start = time.perf_counter()
        traced = trace(model, image, gt=gt)
        middle = time.perf_counter()
        diagnose(traced)
        end = time.perf_counter()
        if image_id > 0:  # the first one compiles the stage graphs
            trace_s.append(middle - start)
            diagnose_s.append(end - middle)
    trace_median, diagnose_median = statistics.median(trace_s), statistics.median(diagnose_s)
    share = diagnose_median / trace_median
    print(f"trace {trace_median * 1000:.1f} ms, diagnose {diagnose_median * 1000:.2f} ms "
          f"(median of {len(trace_s)}): diagnosis adds {100 * share:.2f}% "
          f"(target <= {100 * SHARE_TARGET:.0f}%)", file=sys.stderr)
    return {"trace_ms": trace_median * 1000, "diagnose_ms": diagnose_median * 1000,
            "diagnose_max_ms": max(diagnose_s) * 1000, "share": share,
            "share_ok": share <= SHARE_TARGET}


def analyze_time(count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_analyze_") as out:
        command = [sys.executable, "-m", "mrcnn.analyze_cli", "--weights", str(WEIGHTS),
                   "--config", str(DEMO / "config.json"), "--dataset", "shapes",
                   "--shapes-count", str(count), "--out", out]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"mrcnn analyze failed with exit code {done.returncode}")
        report = json.loads((Path(out) / "report.json").read_text())
    print(f"mrcnn analyze on {count} Shapes images: {seconds:.1f} s wall "
          f"({report['seconds_per_image'] * 1000:.0f} ms per image in the loop; target <= "
          f"{ANALYZE_TARGET_S:.0f} s)", file=sys.stderr)
    return {"analyze_images": count, "analyze_s": seconds,
            "analyze_loop_ms_per_image": report["seconds_per_image"] * 1000,
            "analyze_ok": seconds <= ANALYZE_TARGET_S, "mAP50": report["mAP50"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--analyze-count", type=int, default=200)
    parser.add_argument("--skip-analyze", action="store_true")
    args = parser.parse_args(argv)
    result = {"load_average": os.getloadavg()[0], "cpus": os.cpu_count()}
    result.update(diagnosis_share(args.images))
    if not args.skip_analyze:
        result.update(analyze_time(args.analyze_count))
        # analyze traces without activations or targets: the leanest trace there is.
        result["share_of_analyze_image"] = (result["diagnose_ms"]
                                            / result["analyze_loop_ms_per_image"])
    result["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
