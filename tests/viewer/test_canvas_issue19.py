"""Issue 19 on the canvas widget (pytest-qt, offscreen): RPN colour bar and default level, the
dense stages' Top / level filters, the selection line and level, labels that do not pile up,
selection cleared when the image changes."""

import numpy as np
import pytest

from mrcnn.synthetic_trace import make_fake_trace
from viewer.panels.canvas import CanvasPanel
from viewer.panels.canvas_filters import default_level
from viewer.session import Session


@pytest.fixture
def canvas(qtbot, fake_trace):
    session = Session()
    panel = CanvasPanel(session)
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    qtbot.waitExposed(panel)
    session.set_trace(fake_trace)
    return panel


def _count(curve):
    return len(curve.xData) // 6 if curve.isVisible() and curve.xData is not None else 0


def test_rpn_scores_opens_on_the_level_with_positives_with_a_colour_bar(canvas, fake_trace):
    session = canvas.session
    assert canvas.level == default_level(fake_trace) == 4   # the fake trace's positives: P4
    session.set_stage("rpn_scores")
    assert canvas.colour_bar.isVisible()
    assert canvas.colour_bar.levels() == (0.0, 1.0)
    assert canvas.heat_item.image.shape[:2] == (10, 10)
    assert _count(canvas.curves["grid"]) == 22
    assert "matterport" in canvas.info.text() and "feature cells" in canvas.legend.text()
    session.set_stage("detections")
    assert not canvas.colour_bar.isVisible()


def test_dense_stages_show_top_fifty_and_follow_the_filters(canvas, fake_trace):
    session = canvas.session
    session.set_stage("proposals")
    controls = canvas.controls
    assert controls.top_box.isVisibleTo(canvas) and controls.box_level_box.isVisibleTo(canvas)
    assert not controls.level_box.isVisibleTo(canvas)
    assert _count(canvas.curves["solid"]) == 50
    controls.top_box.setValue(7)
    assert _count(canvas.curves["solid"]) == 7
    controls.set_box_level(4)
    post = fake_trace["proposals/post_nms"]
    levels = fake_trace["anchors"]["levels"][
        fake_trace["proposals/pre_nms"]["anchor_indices"][post["indices"]]]
    assert _count(canvas.curves["solid"]) == min(7, int(np.sum(levels == 4)))
    controls.set_box_level(0)
    controls.top_box.setValue(0)                     # "all"
    assert _count(canvas.curves["solid"]) == len(post["scores"])
    session.set_score_threshold(0.5)
    assert _count(canvas.curves["solid"]) == int(np.sum(post["scores"] >= 0.5))
    session.set_stage("refined_anchors")
    controls.top_box.setValue(50)
    assert _count(canvas.curves["dotted"]) == min(50, int(np.sum(
        fake_trace["proposals/pre_nms"]["scores"] >= 0.5)))


def test_selection_line_names_the_boxes_and_the_level_follows_the_anchor(canvas, fake_trace):
    session = canvas.session
    session.set_stage("rpn_scores")
    canvas.set_level(2)
    detection = 0
    anchor = fake_trace.lineage(detection)["anchors"]
    level = int(fake_trace["anchors"]["levels"][anchor])
    session.select("detection", detection)
    assert canvas.level == level != 2
    from PySide6.QtGui import QTextDocumentFragment

    text = QTextDocumentFragment.fromHtml(canvas.selection_line.text()).toPlainText()
    text = text.replace("\xa0", " ")
    assert text.startswith("Selected: ") and f"detection #{detection}" in text
    assert f"anchor #{anchor} · P{level}" in text and "proposal / ROI #" in text
    session.select(None)
    assert canvas.selection_line.text() == ""


def test_twenty_detection_labels_do_not_overlap(qtbot):
    session = Session()
    canvas = CanvasPanel(session)
    qtbot.addWidget(canvas)
    canvas.resize(900, 700)
    canvas.show()
    qtbot.waitExposed(canvas)
    trace = make_fake_trace(num_detections=20)
    session.set_trace(trace)
    session.set_stage("composite")
    qtbot.wait(20)
    canvas.label_layer.place()
    shown = canvas.label_layer.visible_items()
    assert len(shown) >= 10
    rects = [item.sceneBoundingRect() for item in shown]
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            overlap = a.intersected(b)
            assert overlap.width() * overlap.height() < 1.0
    hidden = len(canvas.label_layer.labels) - len(shown)
    assert hidden == canvas.label_layer.hidden
    assert "Legend:" in canvas.legend.text()
    for name in set(trace.class_names[int(c)] for c in trace["detections"]["class_ids"]):
        assert name in canvas.legend.text()


def test_opening_another_image_clears_the_selection(qtbot, settings, fake_trace, tmp_path):
    from PIL import Image

    from viewer.document import Document
    from viewer.recent import RecentFiles
    from viewer.workers import TraceWorker

    session = Session()
    factory = (lambda path, spec, model, names, source=None: TraceWorker(
        path, spec, model, names, source=source,
        read_image_fn=lambda p: np.zeros((24, 40, 3), np.uint8)))
    document = Document(session, RecentFiles(settings), worker_factory=factory)
    session.set_trace(fake_trace)
    session.select("detection", 1)
    path = tmp_path / "other.png"
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(path)
    try:
        document.open_image(path)
        assert session.selection is None          # at once, not when the new trace arrives
        qtbot.waitUntil(lambda: not document.runner.is_busy(), timeout=10000)
    finally:
        document.close(5000)
