"""Diagnosis panel and the canvas's verdict layer on hand-built traces with known misses
(tests/diagnose_builder.py): rows and verdicts, a click on a miss jumping to the stage that lost
it with its evidence on the canvas, and the pure verdict plan's boxes."""

import numpy as np
import pytest
from PySide6.QtCore import Qt
from diagnose_builder import build_trace, oracle_head

from mrcnn.diagnose import Diagnosis
from mrcnn.synthetic_trace import make_fake_trace
from viewer.diagnosis_view import diagnosis_of, summary_text
from viewer.panels.canvas_verdicts import evidence_boxes, verdict_plan
from viewer.session import Selection, Session

G0, G1 = [20, 20, 60, 60], [65, 65, 95, 95]
FAR = [[0, 70, 25, 95], [70, 0, 95, 25]]


def low_score_trace():
    """GT 0 found (score 0.9), GT 1 right class but 0.5 < DETECTION_MIN_CONFIDENCE 0.7."""
    head = oracle_head(np.array([G0, G1]), np.array([1, 2]), score=[0.9, 0.5])
    return build_trace([G0, G1] + FAR, [0.9, 0.8, 0.3, 0.2], [G0, G1], [1, 2], head=head)


def proposal_nms_trace():
    gt = [20, 20, 30, 30]
    a, b = [20, 23, 30, 37], [20, 20, 30, 34]  # b covers GT, a suppresses b at NMS 0.6
    return build_trace([a, b], [0.9, 0.8], [gt], [1], RPN_NMS_THRESHOLD=0.6), a, b


@pytest.fixture
def panel(qtbot):
    from viewer.panels.diagnosis_panel import DiagnosisPanel

    session = Session()
    widget = DiagnosisPanel(session)
    qtbot.addWidget(widget)
    return widget


def texts(model, column):
    return [model.data(model.index(r, column)) for r in range(model.rowCount())]


def test_rows_and_verdicts_of_a_known_miss(panel):
    trace = low_score_trace()
    assert "diagnosis" not in trace.meta  # computed by the panel, then kept with the trace
    panel.session.set_trace(trace)
    assert panel.stack.currentIndex() == 1 and "diagnosis" in trace.meta
    assert panel.gt_model.rowCount() == 2 and panel.det_model.rowCount() == 1
    assert texts(panel.gt_model, 1) == ["a", "b"]
    assert texts(panel.gt_model, 3) == ["detected", "low score"]
    assert texts(panel.gt_model, 4) == ["1.00", "–"]
    assert texts(panel.gt_model, 5) == ["", "ROI refinement"]
    assert texts(panel.det_model, 3) == ["true positive"] and texts(panel.det_model, 4) == ["0"]
    assert panel.summary.text().startswith("GT 2: 1 detected, 1 missed (low score 1)")
    tooltip = panel.gt_model.data(panel.gt_model.index(1, 3), 3)  # ToolTipRole
    assert "0.50 < DETECTION_MIN_CONFIDENCE 0.70" in tooltip


def test_no_ground_truth_shows_the_hint(panel):
    trace = make_fake_trace(with_gt=False)
    panel.session.set_trace(trace)
    assert panel.stack.currentIndex() == 0 and panel.gt_model.rowCount() == 0
    assert diagnosis_of(trace) is None


def test_clicking_a_miss_selects_it_and_jumps_to_its_stage(panel, qtbot):
    session = panel.session
    session.set_trace(low_score_trace())
    assert session.stage != "roi_refinement"
    stages = []
    session.stageChanged.connect(stages.append)
    view = panel.gt_view
    rect = view.visualRect(panel.gt_model.index(1, 1))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert session.selection == Selection("gt", 1)
    assert session.stage == "roi_refinement" and stages == ["roi_refinement"]
    assert "DETECTION_MIN_CONFIDENCE" in panel.detail.text()
    assert "right class" in panel.detail.text()  # the evidence line names its role
    # A detected GT selects without moving the stepper.
    view.selectRow(0)
    assert session.selection == Selection("gt", 0) and session.stage == "roi_refinement"


def test_selection_made_elsewhere_selects_the_row(panel):
    session = panel.session
    session.set_trace(low_score_trace())
    session.select("detection", 0)
    assert [i.row() for i in panel.det_view.selectionModel().selectedRows()] == [0]
    assert not panel.gt_view.selectionModel().selectedRows()
    session.select("gt", 1)
    assert [i.row() for i in panel.gt_view.selectionModel().selectedRows()] == [1]
    assert session.selection == Selection("gt", 1)  # following did not re-select anything


def test_canvas_draws_verdict_colours_and_evidence(qtbot):
    from viewer.panels.canvas import CanvasPanel

    session = Session()
    canvas = CanvasPanel(session)
    qtbot.addWidget(canvas)
    trace = low_score_trace()
    session.set_trace(trace)
    plan = canvas.verdicts.last_plan
    assert {rgb: len(b) for rgb, b in plan.gt_boxes.items()} == {(60, 220, 90): 1,
                                                                 (255, 140, 30): 1}
    assert [label[1] for label in plan.labels] == ["GT 1: low score"]
    session.set_stage("roi_refinement")
    session.select("gt", 1)
    roi = diagnosis_of(trace).gt[1].details["roi"]
    np.testing.assert_array_equal(canvas.verdicts.last_plan.boxes["evidence"],
                                  trace["proposals/post_nms"]["boxes"][[roi]])
    session.set_overlay("gt", False)
    assert canvas.verdicts.last_plan.gt_boxes == {}


def test_plan_shows_the_suppressor_at_the_proposals_stage():
    trace, a, b = proposal_nms_trace()
    diagnosis = diagnosis_of(trace)
    assert diagnosis.gt[0].cause == "proposal_nms"
    plan = verdict_plan(trace, diagnosis, "proposals", Selection("gt", 0))
    np.testing.assert_array_equal(plan.boxes["evidence"], [b])      # suppressed, covered GT
    np.testing.assert_array_equal(plan.boxes["evidence_by"], [a])   # the one that suppressed it
    assert [label[1] for label in plan.labels] == [
        "GT 0: proposal NMS", "suppressed 1 · IoU 0.71", "suppressed by 0 · score 0.90"]
    # Evidence lives in the proposal stages: none at the anchors stage.
    assert verdict_plan(trace, diagnosis, "anchors", Selection("gt", 0)).boxes == {}


def test_evidence_boxes_of_rpn_scores_are_anchor_boxes():
    near = [21, 21, 61, 61]
    anchors = [G0] + FAR + [[70, 70, 95, 95], [0, 0, 15, 15], near]
    trace = build_trace(anchors, [0.2, 0.9, 0.8, 0.7, 0.6, 0.1], [G0], [1], PRE_NMS_LIMIT=3)
    (verdict,) = diagnosis_of(trace).gt
    assert verdict.cause == "rpn_rank"
    (item,) = [e for e in verdict.evidence if e.role == "matching_anchors"]
    np.testing.assert_array_equal(evidence_boxes(trace, item), [G0, near])
    plan = verdict_plan(trace, diagnosis_of(trace), "rpn_scores", Selection("gt", 0))
    assert len(plan.boxes["evidence"]) == 2


def test_attached_diagnosis_is_used_not_recomputed():
    trace = low_score_trace()
    stored = diagnosis_of(trace).to_dict()
    stored["gt"][1]["cause"] = "mask"  # a marker only the stored copy has
    trace.meta["diagnosis"] = stored
    assert diagnosis_of(trace).gt[1].cause == "mask"
    assert "mask 1" in summary_text(Diagnosis.from_trace(trace))


def test_background_roi_label_names_its_two_likeliest_classes():
    def background_head(rois):
        probs = np.tile(np.array([[0.9, 0.07, 0.03]], np.float32), (len(rois), 1))
        return probs, np.repeat(np.asarray(rois, np.float32)[:, None], 3, axis=1)

    trace = build_trace([G0], [0.9], [G0], [1], head=background_head)
    diagnosis = diagnosis_of(trace)
    assert diagnosis.gt[0].cause == "background"
    plan = verdict_plan(trace, diagnosis, "roi_refinement", Selection("gt", 0))
    texts = [label[1] for label in plan.labels]
    assert texts[0] == "GT 0: called background"
    assert texts[1].startswith("ROI 0 · BG 0.90, a 0.07")
    np.testing.assert_array_equal(plan.boxes["evidence"][0], G0)  # the ROI is the anchor


def test_labels_on_one_box_are_joined():
    def background_head(rois):
        probs = np.tile(np.array([[0.9, 0.07, 0.03]], np.float32), (len(rois), 1))
        return probs, np.repeat(np.asarray(rois, np.float32)[:, None], 3, axis=1)

    trace = build_trace([G0], [0.9], [G0], [1], head=background_head)
    plan = verdict_plan(trace, diagnosis_of(trace), "roi_refinement", Selection("gt", 0))
    tops = [label for label in plan.labels if label[3] == "top"]
    assert len(tops) == 1 and tops[0][1] == "ROI 0 · BG 0.90, a 0.07\ncovering ROI 0 · IoU 1.00"


def test_gt_selection_links_its_detection_or_the_roi_that_lost_it(qtbot):
    from viewer.panels.detections_table import DetectionsTablePanel

    session = Session()
    table = DetectionsTablePanel(session)
    qtbot.addWidget(table)
    trace = low_score_trace()
    session.set_trace(trace)
    session.select("gt", 0)  # detected by detection 0, which came from ROI 0 / anchor 0
    assert session.linked() == {"gt": 0, "detections": 0, **trace.lineage(0)}
    assert [i.row() for i in table.view.selectionModel().selectedRows()] == [0]
    session.select("gt", 1)  # lost: its ROI (score 0.5) and where that ROI came from
    roi = diagnosis_of(trace).gt[1].details["roi"]
    pre = int(trace["proposals/post_nms"]["indices"][roi])
    assert session.linked() == {"gt": 1, "proposals/post_nms": roi, "proposals/pre_nms": pre,
                                "anchors": int(trace["proposals/pre_nms"]["anchor_indices"][pre])}
    assert roi == 1 and not table.view.selectionModel().selectedRows()
