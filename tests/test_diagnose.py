"""diagnose(): every miss cause and false-positive type built on purpose in a hand-made trace,
asserting the verdict and its evidence against numbers worked out by hand."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from diagnose_builder import box_mask, build_trace, iou, oracle_head

from mrcnn.diagnose import Diagnosis, Thresholds, diagnose
from mrcnn.trace_data import Trace

G0 = [20, 20, 60, 60]           # 40 x 40, class 1
FAR = [[70, 70, 95, 95], [0, 70, 25, 95], [70, 0, 95, 25], [0, 0, 15, 15]]


def evidence(verdict, role):
    found = [e for e in verdict.evidence if e.role == role]
    assert found, f"no {role!r} evidence in {verdict.evidence}"
    return found[0]


def test_detected_with_box_and_mask_iou():
    trace = build_trace([G0, FAR[0]], [0.9, 0.5], [G0], [1], gt_masks=box_mask(G0)[..., None])
    d = diagnose(trace)
    (g,) = d.gt
    assert (g.cause, g.stage, g.detection, g.box_iou, g.mask_iou) == ("detected", "detections", 0,
                                                                       1.0, 1.0)
    assert g.size == "medium" and g.area == 1600 and g.proposal_rank == 0
    assert [v.type for v in d.detections] == ["true_positive"] and d.detections[0].gt == 0
    assert not d.boxes_only


def test_no_anchor_for_a_thin_object():
    thin = [40, 10, 44, 70]  # 4 x 60: no 16/32/64 anchor of ratio 0.5..2 reaches IoU 0.7
    anchors = [[26, 24, 58, 56], [34, 8, 50, 40], [34, 36, 50, 68], [0, 0, 16, 16]]
    trace = build_trace(anchors, [0.9, 0.8, 0.7, 0.6], [thin], [1],
                        RPN_ANCHOR_SCALES=[16, 32, 64])
    (g,) = diagnose(trace).gt
    expected_iou = [iou(a, thin) for a in anchors]
    assert g.cause == "no_anchor" and g.stage == "anchors"
    assert g.details["best_anchor"] == int(np.argmax(expected_iou)) == 2
    assert g.details["best_iou"] == pytest.approx(max(expected_iou))
    assert g.details["needed_ratio"] == pytest.approx(15.0)       # width / height
    assert g.details["needed_scale"] == pytest.approx(np.sqrt(240))
    assert g.details["nearest_ratio"] == 2 and g.details["nearest_scale"] == 16
    e = evidence(g, "best_anchor")
    assert e.stage == "anchors" and e.indices == [2]
    # With a looser positive IoU the anchors count as matching: the loss moves downstream.
    (loose,) = diagnose(trace, Thresholds(rpn_positive_iou=0.2)).gt
    assert loose.cause == "proposal_refinement"


def test_rpn_rank_when_pre_nms_limit_is_tiny():
    near = [21, 21, 61, 61]  # IoU 0.906 with G0: a second matching anchor
    anchors = [G0] + FAR + [near]
    trace = build_trace(anchors, [0.2, 0.9, 0.8, 0.7, 0.6, 0.1], [G0], [1], PRE_NMS_LIMIT=3)
    (g,) = diagnose(trace).gt
    assert g.cause == "rpn_rank" and g.stage == "rpn/scores"
    assert g.details["best_rank"] == 4 and g.details["best_anchor"] == 0
    assert g.details["best_score"] == pytest.approx(0.2)
    assert g.details["pre_nms_limit"] == 3 and g.details["cutoff_score"] == pytest.approx(0.7)
    e = evidence(g, "matching_anchors")
    assert e.stage == "rpn/scores" and e.indices == [0, 5] and e.values["rank"] == [4, 5]
    assert e.values["iou"] == pytest.approx([1.0, iou(near, G0)])


def test_proposal_refinement_moves_the_anchor_away():
    anchors = [G0, FAR[0]]
    moved = [[60, 60, 100, 100], FAR[0]]
    (g,) = diagnose(build_trace(anchors, [0.9, 0.5], [G0], [1], moved=moved)).gt
    assert g.cause == "proposal_refinement" and g.stage == "proposals/pre_nms"
    assert g.details["best_pre_nms"] == 0 and g.details["best_refined_iou"] == 0.0
    assert g.details["anchor_iou"] == 1.0
    assert evidence(g, "refined_from_matching_anchors").indices == [0]


def test_proposal_nms_names_the_suppressor():
    gt = [20, 20, 30, 30]
    a, b = [20, 23, 30, 37], [20, 20, 30, 34]   # IoU(a, b) 0.647, IoU(b, gt) 0.714, IoU(a, gt) 0.41
    trace = build_trace([a, b], [0.9, 0.8], [gt], [1], RPN_NMS_THRESHOLD=0.6)
    assert list(trace["proposals/post_nms"]["indices"]) == [0]
    (g,) = diagnose(trace).gt
    assert g.cause == "proposal_nms" and g.stage == "proposals/pre_nms"
    assert g.details["covering_pre_nms"] == 1 and g.details["suppressed_by"] == 0
    assert g.details["suppressed_by_post_nms"] == 0
    assert g.details["suppressor_iou"] == pytest.approx(110 / 170)
    assert evidence(g, "suppressed").indices == [1] and evidence(g, "suppressed_by").indices == [0]
    # Not suppressed (threshold 0.7) but cut by a proposal count of one.
    (cut,) = diagnose(build_trace([a, b], [0.9, 0.8], [gt], [1], POST_NMS_ROIS_INFERENCE=1)).gt
    assert cut.cause == "proposal_nms" and cut.details["suppressed_by"] == -1
    assert "POST_NMS_ROIS_INFERENCE" in cut.details["reason"]


def constant_head(class_id, score, refined_box=None, num_classes=3):
    def head(rois):
        probs = np.full((len(rois), num_classes), (1 - score) / (num_classes - 1), np.float32)
        probs[:, class_id] = score
        refined = np.repeat(np.asarray(rois, np.float32)[:, None], num_classes, axis=1)
        if refined_box is not None:
            refined[:, 1] = refined_box
        return probs, refined
    return head


def test_background_head():
    trace = build_trace([G0], [0.9], [G0], [1], head=constant_head(0, 0.9))
    d = diagnose(trace)
    (g,) = d.gt
    assert g.cause == "background" and g.stage == "heads/class_probs"
    assert g.details["roi"] == 0 and g.details["background_prob"] == pytest.approx(0.9)
    assert g.details["gt_class_prob"] == pytest.approx(0.05)
    assert evidence(g, "roi").values["probs"][0] == pytest.approx([0.9, 0.05, 0.05])
    assert d.detections == []


def test_wrong_class_gt_and_detection():
    d = diagnose(build_trace([G0], [0.9], [G0], [1], head=constant_head(2, 0.8)))
    (g,) = d.gt
    assert g.cause == "wrong_class" and g.details["predicted_class"] == 2
    assert g.details["predicted_prob"] == pytest.approx(0.8)
    (det,) = d.detections
    assert (det.type, det.gt, det.class_id, det.box_iou) == ("wrong_class", 0, 2, 1.0)


def test_low_score_below_min_confidence():
    (g,) = diagnose(build_trace([G0], [0.9], [G0], [1], head=constant_head(1, 0.6))).gt
    assert g.cause == "low_score" and g.details["score"] == pytest.approx(0.6)
    assert g.details["min_confidence"] == 0.7
    assert evidence(g, "right_class").indices == [0]


def test_box_regression_and_localization_error():
    refined = [20, 40, 60, 80]  # IoU 1/3 with G0
    d = diagnose(build_trace([G0], [0.9], [G0], [1], head=constant_head(1, 0.9, refined)))
    (g,) = d.gt
    assert g.cause == "box_regression" and g.stage == "heads/refined"
    assert g.details["roi_iou"] == 1.0 and g.details["refined_iou"] == pytest.approx(1 / 3)
    (det,) = d.detections
    assert det.type == "localization" and det.gt == 0 and det.box_iou == pytest.approx(1 / 3)


def test_detection_nms_names_the_suppressing_detection():
    g1 = [20, 40, 60, 80]  # same class, IoU 1/3 with G0 > DETECTION_NMS_THRESHOLD 0.3
    d = diagnose(build_trace([G0, g1], [0.9, 0.8], [G0, g1], [1, 1]))
    assert [v.cause for v in d.gt] == ["detected", "detection_nms"]
    v = d.gt[1]
    assert v.stage == "detections/pre_nms"
    assert v.details["candidate"] == 1 and v.details["suppressed_by"] == 0
    assert v.details["suppressed_by_detection"] == 0
    assert v.details["suppressor_iou"] == pytest.approx(1 / 3)
    assert evidence(v, "suppressed_by").indices == [0]


def test_max_instances_cuts_the_rest():
    boxes = [G0, [70, 10, 95, 35], [5, 70, 30, 95]]
    trace = build_trace(boxes, [0.9, 0.8, 0.7], boxes, [1, 2, 1],
                        head=oracle_head(boxes, [1, 2, 1], score=[0.95, 0.9, 0.85]),
                        DETECTION_MAX_INSTANCES=1)
    d = diagnose(trace)
    assert [v.cause for v in d.gt] == ["detected", "max_instances", "max_instances"]
    assert [v.details["rank_after_nms"] for v in d.gt[1:]] == [1, 2]
    assert [v.details["score"] for v in d.gt[1:]] == pytest.approx([0.9, 0.85])
    assert all(v.details["max_instances"] == 1 for v in d.gt[1:])


def test_mask_cause_when_only_the_box_fits():
    mask = np.zeros((100, 100, 1), bool)
    mask[20:60, 20:30, 0] = True   # 400 of the detection's 1600 pixels: mask IoU 0.25
    (g,) = diagnose(build_trace([G0], [0.9], [G0], [1], gt_masks=mask)).gt
    assert g.cause == "mask" and g.stage == "masks" and g.detection == 0
    assert g.mask_iou == pytest.approx(0.25) and g.size == "small" and g.area == 400


def test_duplicate_detection():
    twin = [22, 22, 62, 62]   # both ROIs refine onto G0; NMS threshold 1.0 keeps both
    d = diagnose(build_trace([G0, twin], [0.9, 0.8], [G0], [1], RPN_NMS_THRESHOLD=0.9,
                             DETECTION_NMS_THRESHOLD=1.0))
    assert [v.type for v in d.detections] == ["true_positive", "duplicate"]
    assert [v.gt for v in d.detections] == [0, 0]
    assert d.gt[0].cause == "detected" and d.gt[0].detection == 0


def test_background_both_and_localization_detections():
    far, shifted, loose = FAR[0], [20, 40, 60, 80], [30, 30, 70, 70]
    rois = {tuple(G0): (1, 0.9), tuple(far): (2, 0.9), tuple(shifted): (2, 0.8),
            tuple(loose): (1, 0.85)}

    def head(boxes):
        probs = np.full((len(boxes), 3), 0.05, np.float32)
        for r, box in enumerate(boxes):
            cls, score = rois[tuple(int(v) for v in box)]
            probs[r] = (1 - score) / 2
            probs[r, cls] = score
        return probs, np.repeat(np.asarray(boxes, np.float32)[:, None], 3, axis=1)

    trace = build_trace([G0, far, shifted, loose], [0.9, 0.8, 0.7, 0.6], [G0], [1], head=head,
                        DETECTION_NMS_THRESHOLD=0.5)
    d = diagnose(trace)
    by_box = {tuple(trace["detections"]["boxes"][v.index]): v for v in d.detections}
    assert by_box[tuple(G0)].type == "true_positive"
    assert by_box[tuple(far)].type == "background" and by_box[tuple(far)].gt == -1
    assert by_box[tuple(shifted)].type == "both" and by_box[tuple(shifted)].gt == 0
    assert by_box[tuple(loose)].type == "localization"
    assert by_box[tuple(loose)].box_iou == pytest.approx(900 / 2300)
    assert d.counts()["detections"] == {"true_positive": 1, "duplicate": 0, "localization": 1,
                                        "wrong_class": 0, "both": 1, "background": 1}


def test_empty_gt_makes_every_detection_background():
    trace = build_trace([G0], [0.9], np.zeros((0, 4)), [], head=constant_head(1, 0.9))
    d = diagnose(trace)
    assert d.gt == [] and [v.type for v in d.detections] == ["background"]


def test_boxes_only_without_gt_masks():
    d = diagnose(build_trace([G0], [0.9], [G0], [1]))
    assert d.boxes_only and d.gt[0].mask_iou is None and d.gt[0].cause == "detected"


def test_trace_without_gt_is_a_clear_error():
    trace = build_trace([G0], [0.9], [G0], [1])
    del trace.stages["gt"]
    with pytest.raises(ValueError, match="gt=") as err:
        diagnose(trace)
    assert "gt" in str(err.value)


def test_synthetic_trace_all_detected():
    from mrcnn.synthetic_trace import make_fake_trace

    d = diagnose(make_fake_trace())
    assert [v.cause for v in d.gt] == ["detected"] * 5
    assert all(v.mask_iou > 0.5 for v in d.gt)
    assert sorted(v.gt for v in d.detections) == [0, 1, 2, 3, 4]


def test_saved_with_the_trace_and_loaded_without_tensorflow(tmp_path):
    g1 = [20, 40, 60, 80]
    trace = build_trace([G0, g1], [0.9, 0.8], [G0, g1], [1, 1])
    diagnosis = diagnose(trace)
    diagnosis.attach(trace)
    path = trace.save(tmp_path / "t.npz")
    assert Diagnosis.from_trace(Trace.load(path)).to_dict() == diagnosis.to_dict()
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        from mrcnn.trace_data import Trace
        from mrcnn.diagnose import Diagnosis, diagnose
        t = Trace.load({str(path)!r})
        d = Diagnosis.from_trace(t)
        assert [v.cause for v in d.gt] == ["detected", "detection_nms"]
        assert d.gt[1].evidence[1].stage == "detections/pre_nms"
        assert list(d.gt_causes()) == [0, 9]
        assert diagnose(t).to_dict()["gt"] == d.to_dict()["gt"]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cover_iou_is_a_parameter():
    refined = [20, 20, 60, 66]   # IoU 1600 / 1840 = 0.87 with G0
    trace = build_trace([G0], [0.9], [G0], [1], head=constant_head(1, 0.9, refined))
    assert diagnose(trace).gt[0].cause == "detected"
    strict = diagnose(trace, Thresholds(cover_iou=0.9))
    (g,) = strict.gt
    assert g.cause == "box_regression" and g.details["refined_iou"] == pytest.approx(1600 / 1840)
    assert strict.detections[0].type == "localization"
    assert strict.thresholds["cover_iou"] == 0.9 and strict.thresholds["min_confidence"] == 0.7


def test_box_taken_by_another_object_is_box_regression():
    twin = [20, 24, 60, 64]   # IoU 0.818 with G0; the one ROI refines onto G0 only
    d = diagnose(build_trace([G0], [0.9], [G0, twin], [1, 1]))
    assert [v.cause for v in d.gt] == ["detected", "box_regression"]
    assert d.gt[1].details["taken_by_gt"] == [0]
    assert d.gt[1].details["refined_iou"] == pytest.approx(1440 / 1760)


def test_missed_box_reports_the_best_mask_match():
    # An occluded object whose visible mask is the left half of its box: the detection on that
    # half overlaps it 0.45 by box (a miss, lost at the anchors) but 0.9 by mask.
    gt_box, half = [20, 20, 60, 60], [20, 20, 60, 38]
    mask = np.zeros((100, 100, 1), bool)
    mask[20:60, 20:40, 0] = True                        # 800 px; the detection mask is 720 px
    rois = [half]
    trace = build_trace(rois, [0.9], [gt_box], [1], gt_masks=mask,
                        head=constant_head(1, 0.9), DETECTION_NMS_THRESHOLD=0.5)
    (g,) = diagnose(trace).gt
    assert g.cause == "no_anchor" and g.details["best_mask_detection"] == 0
    assert g.details["best_mask_iou"] == pytest.approx(720 / 800)


def test_explanations_name_the_numbers():
    from mrcnn.diagnose.explain import explain_detection, explain_gt

    names = ["BG", "square", "circle"]
    g1 = [20, 40, 60, 80]
    d = diagnose(build_trace([G0, g1], [0.9, 0.8], [G0, g1], [1, 1]))
    assert explain_gt(d.gt[0], names) == "GT 0 (square, medium): detected by detection 0 (box IoU 1.00)"
    assert explain_gt(d.gt[1], names) == ("GT 1 (square, medium): candidate 1 (score 0.90) was "
                                          "suppressed by detection 0 (IoU 0.33 > 0.30)")
    near = [21, 21, 61, 61]
    rank = diagnose(build_trace([G0] + FAR + [near], [0.2, 0.9, 0.8, 0.7, 0.6, 0.1], [G0], [1],
                                PRE_NMS_LIMIT=3)).gt[0]
    assert explain_gt(rank).endswith("its best matching anchor ranks 4 by objectness "
                                     "(score 0.200), outside PRE_NMS_LIMIT 3")
    wrong = diagnose(build_trace([G0], [0.9], [G0], [1], head=constant_head(2, 0.8)))
    assert "the head says circle (p=0.80; square p=0.10)" in explain_gt(wrong.gt[0], names)
    assert explain_detection(wrong.detections[0], [1], names) == (
        "detection 0 (circle 0.80): wrong class: IoU 1.00 with GT 0, a square")
    gt = [20, 20, 30, 30]
    a, b = [20, 23, 30, 37], [20, 20, 30, 34]
    nms = diagnose(build_trace([a, b], [0.9, 0.8], [gt], [1], RPN_NMS_THRESHOLD=0.6)).gt[0]
    assert explain_gt(nms).endswith("NMS removed it for pre-NMS proposal 0 (IoU 0.65 > 0.60)")


def test_every_cause_has_a_full_explanation():
    from mrcnn.diagnose.explain import explain_gt

    thin = [40, 10, 44, 70]
    boxes = [G0, [70, 10, 95, 35], [5, 70, 30, 95]]
    mask = np.zeros((100, 100, 1), bool)
    mask[20:60, 20:30, 0] = True
    gt = [20, 20, 30, 30]
    a, b = [20, 23, 30, 37], [20, 20, 30, 34]
    traces = [
        build_trace([[34, 36, 50, 68]], [0.9], [thin], [1], RPN_ANCHOR_SCALES=[16, 32, 64]),
        build_trace([G0, FAR[0]], [0.9, 0.5], [G0], [1], moved=[[60, 60, 100, 100], FAR[0]]),
        build_trace([a, b], [0.9, 0.8], [gt], [1], POST_NMS_ROIS_INFERENCE=1),
        build_trace([G0], [0.9], [G0], [1], head=constant_head(0, 0.9)),
        build_trace([G0], [0.9], [G0], [1], head=constant_head(1, 0.6)),
        build_trace([G0], [0.9], [G0], [1], head=constant_head(1, 0.9, [20, 40, 60, 80])),
        build_trace(boxes, [0.9, 0.8, 0.7], boxes, [1, 2, 1], DETECTION_MAX_INSTANCES=1,
                    head=oracle_head(boxes, [1, 2, 1], score=[0.95, 0.9, 0.85])),
        build_trace([G0], [0.9], [G0], [1], gt_masks=mask),
    ]
    causes = set()
    for trace in traces:
        for verdict in diagnose(trace).gt:
            text = explain_gt(verdict)
            causes.add(verdict.cause)
            # The fallback is the bare verdict name: every real one says more, with numbers.
            assert len(text.split(": ", 1)[1]) > 30 and any(ch.isdigit() for ch in text), text
    assert causes >= {"no_anchor", "proposal_refinement", "proposal_nms", "background",
                      "low_score", "box_regression", "max_instances", "mask"}
