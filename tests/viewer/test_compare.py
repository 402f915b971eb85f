"""CompareWindow: two checkpoints on one image (fake loaders and traces; one slow real-model test).

Model A traces to the fake trace; model B to a copy whose detections moved a few pixels, scored
lower, lost one detection and changed the class of another, so the pairing has paired, "only A"
and "only B" rows with IoUs the test computes itself.
"""

import copy
import threading

import numpy as np
import pytest
import shiboken6
from mrcnn.synthetic_trace import make_fake_trace

from mrcnn.errors import WeightsMismatchError
from viewer.compare import CompareWindow
from viewer.compare_data import (ONLY_A, ONLY_B, TIME_PREFIX, count_rows, detections_above,
                                 pair_detections)
from viewer.session import Selection
from viewer.workers import LOADING_TF, ModelSpec, TraceWorker

SPECS = (ModelSpec(weights="a.h5"), ModelSpec(weights="b.h5"))
LABELS = ("epoch 3", "epoch 10")
TIMEOUT_MS = 10000
DROPPED, RECLASSED = 2, 0          # B lacks A's detection 2; B's copy of A's 0 has another class
SHIFT = np.array([2, -1, 3, 1], np.int32)


def _iou(box, other):
    """IoU of two pixel boxes [4] ``[y1, x1, y2, x2]``."""
    y1, x1 = max(box[0], other[0]), max(box[1], other[1])
    y2, x2 = min(box[2], other[2]), min(box[3], other[3])
    inter = max(y2 - y1, 0) * max(x2 - x1, 0)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    return inter / (area(box) + area(other) - inter)


def _trace_b(trace_a):
    trace = copy.deepcopy(trace_a)
    det = trace["detections"]
    keep = np.array([i for i in range(len(det["scores"])) if i != DROPPED])
    for name in list(det):
        det[name] = det[name][keep]
    det["boxes"] = det["boxes"] + SHIFT
    det["scores"] = (det["scores"] * 0.93).astype(np.float32)
    det["class_ids"][RECLASSED] = 1 + det["class_ids"][RECLASSED] % 3
    trace["masks/raw"]["masks"] = trace["masks/raw"]["masks"][keep]
    trace["masks"]["masks"] = trace["masks"]["masks"][..., keep]
    trace.meta["timings"] = {k: 1.5 * v for k, v in trace.meta["timings"].items()}
    trace.meta["counts"] = trace.counts()
    return trace, keep


@pytest.fixture(scope="module")
def traces():
    trace_a = make_fake_trace()
    trace_b, keep = _trace_b(trace_a)
    return trace_a, trace_b, keep


def _factory(traces_by_weights, fail=(), gate=None, entered=None):
    """worker_factory for CompareWindow: fake image, loader and trace (no TensorFlow)."""
    def loader(spec, step):
        step(LOADING_TF)
        if spec.weights in fail:
            raise WeightsMismatchError(
                "mrcnn_class_logits: kernel shape in model (64, 5) vs in file (64, 4)")
        return spec.weights, None

    def trace_fn(model, image, names):
        if entered is not None:
            entered.set()
        if gate is not None:
            gate.wait(10)
        return traces_by_weights[model]

    def make(image_path, spec, model, names):
        return TraceWorker(image_path, spec, model, names, load_model_fn=loader,
                           read_image_fn=lambda path: np.zeros((8, 8, 3), np.uint8),
                           trace_fn=trace_fn, stats_fn=False)
    return make


def _dispose(qtbot, win):
    if shiboken6.isValid(win):
        win.close()
    qtbot.wait(10)  # deleteLater (WA_DeleteOnClose) runs; pyqtgraph items go before gc meets them


def _open(qtbot, traces, **kwargs):
    trace_a, trace_b, _ = traces
    factory = _factory({"a.h5": trace_a, "b.h5": trace_b}, **kwargs)
    win = CompareWindow("image.png", SPECS, LABELS, worker_factory=factory)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def compare(qtbot, traces):
    win = _open(qtbot, traces)
    qtbot.waitUntil(lambda: not win.is_busy(), timeout=TIMEOUT_MS)
    yield win
    _dispose(qtbot, win)


def _cell(table, row, column):
    return table.item(row, column).text()


def _counts(trace):
    """Items per stage, straight from the arrays (not Trace.counts)."""
    out = {key: len(trace[key]["boxes"]) for key in
           ("anchors", "proposals/pre_nms", "proposals/post_nms", "targets/rois", "heads/refined",
            "detections/pre_nms", "detections", "gt")}
    out.update({"rpn/scores": len(trace["rpn/scores"]["scores"]),
                "targets/rpn": len(trace["targets/rpn"]["match"]),
                "heads/class_probs": len(trace["heads/class_probs"]["probs"]),
                "masks/raw": len(trace["masks/raw"]["masks"]),
                "masks": trace["masks"]["masks"].shape[-1]})
    return out


# ---- pairing (no window) -------------------------------------------------------------------

def test_pair_detections_hand_built():
    boxes_a = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [0, 0, 10, 12]])
    boxes_b = np.array([[1, 1, 11, 11], [20, 20, 40, 40], [52, 52, 62, 62], [0, 0, 10, 11]])
    names_a = ["cat", "dog", "cat", "cat"]
    names_b = ["cat", "cat", "cat", "cat"]  # B1 covers A1 exactly but is another class
    scores_a, scores_b = [0.9, 0.8, 0.7, 0.6], [0.95, 0.85, 0.75, 0.65]
    pairs = pair_detections(boxes_a, names_a, scores_a, boxes_b, names_b, scores_b)
    iou = lambda i, j: _iou(boxes_a[i].astype(float), boxes_b[j].astype(float))  # noqa: E731
    # A0 overlaps B0 (0.68) and B3 (0.83); A3 overlaps B3 (0.92) and B0: highest IoU first.
    assert iou(3, 3) > iou(0, 3) > iou(0, 0) >= 0.5 > iou(2, 2)
    got = [(p.class_name, p.a, p.b, p.status) for p in pairs]
    assert got == [("cat", 0, 0, "paired"), ("dog", 1, None, ONLY_A), ("cat", 2, None, ONLY_A),
                   ("cat", 3, 3, "paired"), ("cat", None, 1, ONLY_B), ("cat", None, 2, ONLY_B)]
    assert pairs[0].iou == pytest.approx(iou(0, 0)) and pairs[3].iou == pytest.approx(iou(3, 3))
    assert (pairs[0].score_a, pairs[0].score_b) == (0.9, 0.95)
    assert pairs[1].iou is None and pairs[1].score_b is None and pairs[4].score_a is None
    # Rows map back to the traces' rows (a score threshold dropped some).
    mapped = pair_detections(boxes_a[:1], names_a[:1], scores_a[:1], boxes_b[:1], names_b[:1],
                             scores_b[:1], rows_a=[7], rows_b=[4])
    assert (mapped[0].a, mapped[0].b) == (7, 4)


def test_pair_detections_empty_sides():
    none = np.zeros((0, 4))
    assert pair_detections(none, [], [], none, [], []) == []
    only_a = pair_detections([[0, 0, 5, 5]], ["x"], [0.5], none, [], [])
    assert [(p.a, p.b, p.status) for p in only_a] == [(0, None, ONLY_A)]
    only_b = pair_detections(none, [], [], [[0, 0, 5, 5]], ["x"], [0.5])
    assert [(p.a, p.b, p.status) for p in only_b] == [(None, 0, ONLY_B)]


def test_detections_above_threshold_and_unknown_class(traces):
    trace = copy.deepcopy(traces[0])
    det = trace["detections"]
    det["class_ids"][1] = 99  # no such class: named by its id
    threshold = float(np.sort(det["scores"])[2])
    rows, boxes, names, scores = detections_above(trace, threshold)
    want = np.flatnonzero(det["scores"] >= threshold)
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(boxes, det["boxes"][want].astype(np.float64))
    np.testing.assert_array_equal(scores, det["scores"][want])
    assert names == [trace.class_names[c] if c != 99 else "class 99"
                     for c in det["class_ids"][want]]
    assert len(detections_above(trace, 2.0)[0]) == 0 and detections_above(trace, 2.0)[1].shape \
        == (0, 4)


def test_count_rows_with_a_missing_trace(traces):
    trace_a = traces[0]
    rows = count_rows(trace_a, None)
    counts = {name: (a, b) for name, a, b in rows if not name.startswith(TIME_PREFIX)}
    assert counts["detections"] == (len(trace_a["detections"]["scores"]), None)
    assert "input" not in counts and all(b is None for _, b in counts.values())
    times = [(name, a) for name, a, _ in rows if name.startswith(TIME_PREFIX)]
    assert times[-1] == (TIME_PREFIX + "total", 1000.0 * trace_a.meta["timings"]["total"])
    assert count_rows(None, None) == []


def test_compare_data_is_reexported():
    # That compare_data is Qt- and TF-free: the "viewer-qt-free" import contract.
    from viewer import compare, compare_data

    for name in ("pair_detections", "DetectionPair", "count_rows", "stage_counts", "ONLY_A"):
        assert getattr(compare, name) is getattr(compare_data, name)


# ---- the window ----------------------------------------------------------------------------

def test_counts_and_times_table(compare, traces):
    trace_a, trace_b, _ = traces
    counts_a, counts_b = _counts(trace_a), _counts(trace_b)
    table = compare.counts_table
    shown = {_cell(table, r, 0): [_cell(table, r, c) for c in (1, 2, 3)]
             for r in range(table.rowCount())}
    for key in counts_a:
        diff = counts_b[key] - counts_a[key]
        assert shown[key] == [f"{counts_a[key]:,}", f"{counts_b[key]:,}",
                              f"{diff:+,}" if diff else "0"], key
    assert shown["detections"][2] == "-1" and shown["anchors"][2] == "0"
    assert "input" not in shown  # its count would be the image height
    features_a = trace_a.meta["timings"]["features"] * 1000
    assert shown["time: features"] == [f"{features_a:.1f} ms", f"{1.5 * features_a:.1f} ms",
                                       f"+{0.5 * features_a:.1f} ms"]
    assert list(shown)[-1] == "time: total"
    assert "5 detections" in compare.sides[0].title.text()


def test_pairs_table_rows(compare, traces):
    trace_a, trace_b, keep = traces
    boxes_a, boxes_b = trace_a["detections"]["boxes"], trace_b["detections"]["boxes"]
    names = trace_a.class_names
    expected = []
    for i in range(len(boxes_a)):
        j = [j for j, k in enumerate(keep) if k == i and j != RECLASSED]
        if j:
            expected.append((names[trace_a["detections"]["class_ids"][i]], i, j[0],
                             _iou(boxes_a[i].astype(float), boxes_b[j[0]].astype(float))))
        else:
            expected.append((names[trace_a["detections"]["class_ids"][i]], i, None, None))
    expected.append((names[trace_b["detections"]["class_ids"][RECLASSED]], None, RECLASSED, None))
    got = [(p.class_name, p.a, p.b, p.iou) for p in compare.pairs]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for (*_, iou), (*_, want) in zip(got, expected):
        assert (iou is None and want is None) or iou == pytest.approx(want)
    table = compare.pairs_table
    assert table.rowCount() == len(expected)
    statuses = [_cell(table, r, 4) for r in range(table.rowCount())]
    assert statuses[RECLASSED] == statuses[DROPPED] == ONLY_A and statuses[-1] == ONLY_B
    assert statuses[1] == "A1 ↔ B1" and _cell(table, 1, 3) == f"{expected[1][3]:.2f}"
    assert _cell(table, DROPPED, 2) == "—" and _cell(table, len(expected) - 1, 1) == "—"
    assert "only A" in compare.pairs_hint.text() and "Note" not in compare.pairs_hint.text()
    # The threshold (shared by both sides) filters what is paired.
    scores_b = trace_b["detections"]["scores"]
    threshold = float(np.sort(scores_b)[1]) + 1e-4
    compare.sides[1].session.set_score_threshold(threshold)
    assert compare.sides[0].session.score_threshold == compare.sides[1].session.score_threshold
    assert all(p.score_b is None or p.score_b >= threshold for p in compare.pairs)
    assert sum(p.b is not None for p in compare.pairs) == int(np.sum(scores_b >= threshold))


def test_class_count_mismatch_is_noted(qtbot, traces):
    trace_a, trace_b, keep = traces
    other = copy.deepcopy(trace_b)
    other.meta["class_names"] = list(trace_b.class_names) + ["hexagon"]
    win = CompareWindow("image.png", SPECS, LABELS,
                        worker_factory=_factory({"a.h5": trace_a, "b.h5": other}))
    qtbot.waitUntil(lambda: not win.is_busy(), timeout=TIMEOUT_MS)
    assert "A has 4 classes, B 5" in win.pairs_hint.text()
    assert len(win.pairs) == len(trace_a["detections"]["scores"]) + 1  # still paired by name
    _dispose(qtbot, win)


def test_row_selection_highlights_both_sides(compare, traces, qtbot):
    trace_a, trace_b, _ = traces
    side_a, side_b = compare.sides
    compare.select_pair(1)
    pair = compare.pairs[1]
    assert side_a.session.selection == Selection("detection", pair.a)
    assert side_b.session.selection == Selection("detection", pair.b)
    np.testing.assert_array_equal(side_a.canvas.highlighted["detections"],
                                  trace_a["detections"]["boxes"][pair.a])
    np.testing.assert_array_equal(side_b.canvas.highlighted["detections"],
                                  trace_b["detections"]["boxes"][pair.b])
    assert all(side.canvas.curves["selected"].isVisible() for side in (side_a, side_b))
    # An "only A" row: A highlights, B has nothing selected.
    compare.select_pair(DROPPED)
    assert side_a.session.selection == Selection("detection", DROPPED)
    assert side_b.session.selection is None and not side_b.canvas.curves["selected"].isVisible()
    # A click on B's canvas selects the row and, through it, A's partner.
    y1, x1, y2, x2 = trace_b["detections"]["boxes"][3]
    side_b.canvas.click_at((x1 + x2) / 2, (y1 + y2) / 2)
    row = compare.pairs_table.selectionModel().selectedRows()[0].row()
    assert compare.pairs[row].b == 3
    assert side_a.session.selection == Selection("detection", compare.pairs[row].a)
    compare.clear_selection()
    assert side_a.session.selection is None and side_b.session.selection is None


def test_views_and_stage_are_linked(compare, qtbot):
    vb_a, vb_b = (side.canvas.vb for side in compare.sides)
    vb_a.setRange(xRange=(40, 140), yRange=(30, 110), padding=0)
    qtbot.wait(20)
    np.testing.assert_allclose(vb_b.viewRange(), vb_a.viewRange(), atol=0.5)
    assert vb_a.viewRange()[0][1] - vb_a.viewRange()[0][0] < 200  # zoomed in
    vb_b.setRange(xRange=(100, 180), yRange=(60, 140), padding=0)
    qtbot.wait(20)
    np.testing.assert_allclose(vb_a.viewRange(), vb_b.viewRange(), atol=0.5)
    compare.stage_box.setCurrentIndex(compare.stage_box.findData("proposals"))
    assert [s.session.stage for s in compare.sides] == ["proposals", "proposals"]
    compare.step_stage(1)
    assert compare.sides[1].session.stage == "roi_refinement"
    assert compare.stage_box.currentData() == "roi_refinement"


def test_export_png_side_by_side(compare, tmp_path):
    from PySide6.QtGui import QImage

    path = compare.export_png(tmp_path / "compare.png")
    image = QImage(str(path))
    assert not image.isNull() and image.width() > 1.8 * compare.sides[0].canvas.view.width()
    pixels = np.frombuffer(image.convertToFormat(QImage.Format.Format_RGB32).constBits(),
                           np.uint8).reshape(image.height(), -1)[:, :image.width() * 4]
    assert pixels.std() > 10  # not flat
    left, right = np.hsplit(pixels[:, :pixels.shape[1] // 8 * 8], 2)
    assert not np.array_equal(left, right)  # two different views, not one twice


def test_failure_of_b_names_b_and_a_still_draws(qtbot, traces):
    win = _open(qtbot, traces, fail={"b.h5"})
    qtbot.waitUntil(lambda: not win.is_busy(), timeout=TIMEOUT_MS)
    side_a, side_b = win.sides
    assert side_a.error is None and side_a.trace is traces[0]
    assert side_a.canvas.stack.currentIndex() == 1 and side_a.canvas.image_item.image is not None
    assert any(c.isVisible() for n, c in side_a.canvas.curves.items() if n.startswith("class:"))
    assert side_b.error[0] == "Weights do not fit the model" and side_b.trace is None
    assert "failed: Weights do not fit the model" in side_b.title.text()
    hint = side_b.canvas.empty_hint.text()
    assert hint.startswith("B (epoch 10) failed") and "mrcnn_class_logits" in hint
    assert "B failed" in win.status_label.text()
    assert win.pairs == [] and "B failed" in win.pairs_hint.text()
    detections = [r for r in range(win.counts_table.rowCount())
                  if _cell(win.counts_table, r, 0) == "detections"][0]
    assert [_cell(win.counts_table, detections, c) for c in (1, 2, 3)] == ["5", "—", "—"]
    runner = win.runner
    _dispose(qtbot, win)
    from viewer.compare_runners import RUNNERS as _RUNNERS

    assert runner not in _RUNNERS  # idle: released as soon as its window is gone


def test_close_while_tracing_cancels(qtbot, traces):
    from viewer import compare_runners as compare_module

    gate, entered = threading.Event(), threading.Event()
    win = _open(qtbot, traces, gate=gate, entered=entered)
    assert entered.wait(10) and win.is_busy() and win.cancel_button.isVisible()
    runner = win.runner
    side_a = win.sides[0]
    win.close()  # deletes the window (WA_DeleteOnClose) while A's trace is running
    qtbot.wait(20)
    assert not shiboken6.isValid(win)
    assert runner in compare_module.RUNNERS and not runner.is_busy()
    gate.set()
    qtbot.waitUntil(lambda: runner not in compare_module.RUNNERS, timeout=TIMEOUT_MS)
    assert side_a.trace is None  # the cancelled job's result never arrived


def test_cancel_button_keeps_what_is_traced(qtbot, traces):
    trace_a, trace_b, _ = traces
    gate, entered = threading.Event(), threading.Event()

    def factory(image_path, spec, model, names):
        hold = spec.weights == "b.h5"
        return _factory({"a.h5": trace_a, "b.h5": trace_b}, gate=gate if hold else None,
                        entered=entered if hold else None)(image_path, spec, model, names)

    win = CompareWindow("image.png", SPECS, LABELS, worker_factory=factory)
    # B starts once A's result reached the GUI thread: wait with the event loop running.
    qtbot.waitUntil(entered.is_set, timeout=TIMEOUT_MS)
    assert win.sides[0].trace is trace_a and win.is_busy()
    win.cancel_button.click()
    assert not win.is_busy() and win.status_label.text() == "Cancelled."
    assert win.sides[1].state == "cancelled" and "B was cancelled" in win.pairs_hint.text()
    gate.set()
    assert win.runner.wait(TIMEOUT_MS)
    qtbot.wait(20)
    assert win.sides[1].trace is None and win.sides[0].trace is trace_a
    _dispose(qtbot, win)


# ---- a real tiny model ---------------------------------------------------------------------

@pytest.mark.slow
def test_compare_two_real_tiny_models(qtbot, tmp_path):
    import keras
    import skimage.io
    from tiny_config import TinyConfig

    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.model import MaskRCNN

    config = TinyConfig()
    config.to_json(tmp_path / "config.json")
    specs = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        MaskRCNN("inference", config).save_weights(str(tmp_path / f"seed{seed}.h5"))
        specs.append(ModelSpec(weights=str(tmp_path / f"seed{seed}.h5"),
                               config=str(tmp_path / "config.json")))
    keras.backend.clear_session()
    dataset = ShapesDataset()
    dataset.load_shapes(1, 128, 128, seed=0)
    dataset.prepare()
    skimage.io.imsave(tmp_path / "shapes.png", dataset.load_image(0), check_contrast=False)

    win = CompareWindow(str(tmp_path / "shapes.png"), tuple(specs), ("seed 1", "seed 2"))
    win.show()
    qtbot.waitUntil(lambda: not win.is_busy(), timeout=240_000)
    side_a, side_b = win.sides
    assert side_a.error is None and side_b.error is None, (side_a.error, side_b.error)
    trace_a, trace_b = side_a.trace, side_b.trace
    assert trace_a.image.shape == (128, 128, 3)
    assert not np.array_equal(trace_a["rpn/scores"]["scores"], trace_b["rpn/scores"]["scores"])
    shown = {_cell(win.counts_table, r, 0): (_cell(win.counts_table, r, 1),
                                             _cell(win.counts_table, r, 2))
             for r in range(win.counts_table.rowCount())}
    for key in ("anchors", "proposals/post_nms", "detections"):
        assert shown[key] == (f"{len(trace_a[key]['boxes']):,}", f"{len(trace_b[key]['boxes']):,}")
    count_a, count_b = (len(t["detections"]["scores"]) for t in (trace_a, trace_b))
    paired = [p for p in win.pairs if p.status == "paired"]
    assert len(paired) + sum(p.status == ONLY_A for p in win.pairs) == count_a
    assert len(paired) + sum(p.status == ONLY_B for p in win.pairs) == count_b
    for pair in paired:
        box_a = trace_a["detections"]["boxes"][pair.a].astype(float)
        box_b = trace_b["detections"]["boxes"][pair.b].astype(float)
        assert pair.iou == pytest.approx(_iou(box_a, box_b)) and pair.iou >= 0.5
    image = win.render_side_by_side(scale=1)
    assert image.width() > 2 * 100 and not image.isNull()
    _dispose(qtbot, win)
