"""Canvas redraw time per viewer stage on a 1024x1024 fake trace with 1000 proposals (offscreen).

    python bench/viewer_redraw.py [--repeats 20]

For every stage: switch to it, then change the selection ``repeats`` times; each change is
timed as the canvas update (``CanvasPanel.redraw``: plan + setData / setImage) plus a forced
synchronous repaint of the view (Qt drawing the batched items). Prints the median ms per stage;
the target is <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 50.0


def build_trace():
    from mrcnn.synthetic_trace import make_fake_trace

    return make_fake_trace(1024, 1024, num_pre_nms=6000, num_proposals=1000, num_detections=30,
                           strides=(4, 8, 16, 32, 64), scales=(32, 64, 128, 256, 512))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="selection changes per stage")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from viewer.panels.canvas import CanvasPanel
    from viewer.session import Session

    app = QApplication.instance() or QApplication([])
    trace = build_trace()
    session = Session()
    canvas = CanvasPanel(session)
    canvas.resize(1200, 1000)
    canvas.show()
    app.processEvents()
    session.set_trace(trace)
    app.processEvents()
    detections = len(trace["detections"]["scores"])
    print(f"trace: 1024x1024, {len(trace['anchors']['boxes'])} anchors, "
          f"{len(trace['proposals/pre_nms']['boxes'])} pre-NMS, "
          f"{len(trace['proposals/post_nms']['boxes'])} proposals, {detections} detections")
    print(f"{'stage':<16} {'switch ms':>10} | per selection change: "
          f"{'update ms':>10} {'+paint ms':>10} {'total ms':>10}")
    worst = 0.0
    session.set_stage(session.stage_keys()[-1])
    app.processEvents()
    for key in session.stage_keys():
        start = time.perf_counter()
        session.set_stage(key)  # plans the stage: filters, samples, heat map (cached after)
        canvas.view.viewport().repaint()
        switch = (time.perf_counter() - start) * 1000.0
        updates, totals = [], []
        for i in range(args.repeats):
            start = time.perf_counter()
            session.select("detection", i % detections)
            update_ms = canvas.last_redraw_ms
            canvas.view.viewport().repaint()
            totals.append((time.perf_counter() - start) * 1000.0)
            updates.append(update_ms)
        update, total = statistics.median(updates), statistics.median(totals)
        worst = max(worst, total)
        print(f"{key:<16} {switch:>10.1f} | {'':>21}{update:>10.1f} {total - update:>10.1f} "
              f"{total:>10.1f}")
    verdict = "OK" if worst <= TARGET_MS else "OVER TARGET"
    print(f"worst stage median: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms): {verdict}")
    from viewer.app import _dispose

    _dispose(app, canvas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
