"""Open the viewer on a held-out Shapes image with the demo model, select a detection and show
the Explain tab (for docs/explain.png):

    /work/shared/tools/xvfb-shot docs/explain.png 60 python docs/explain_screenshot.py
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from mrcnn.data.shapes import ShapesDataset  # noqa: E402
from mrcnn.evaluate_cli import SHAPES_EVAL_SEED  # noqa: E402
from mrcnn.explain_render import save_png  # noqa: E402
from viewer.main_window import MainWindow  # noqa: E402
from viewer.workers import demo_model_spec  # noqa: E402

DETECTION = 0
IMAGE_INDEX = 2


def main():
    app = QApplication(sys.argv)
    dataset = ShapesDataset()
    dataset.load_shapes(IMAGE_INDEX + 1, 128, 128, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    image = Path(tempfile.mkdtemp()) / "held_out_shapes.png"
    save_png(image, dataset.load_image(IMAGE_INDEX))
    window = MainWindow()
    window.resize(1560, 960)
    window.show()

    def on_trace(trace):
        if trace is None or "detections" not in trace:
            return
        dock = window.docks["Explain"]
        dock.raise_()
        window.resizeDocks([dock], [620], Qt.Orientation.Horizontal)
        window.session.select("detection", DETECTION)

    window.session.traceChanged.connect(lambda trace: QTimer.singleShot(200, lambda: on_trace(
        trace)))
    window.set_model(demo_model_spec())
    window.open_image(str(image), demo_model_spec())
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
