"""diagnose() on real traces of the demo model (resources/demo): each cause provoked on purpose
through the config or the weights, checked against the trace's own arrays."""

import numpy as np
import pytest

from mrcnn.boxes import compute_overlaps, extract_bboxes
from mrcnn.config import DERIVED_FIELDS, Config
from mrcnn.data.shapes import draw_shape_mask, visible_masks
from mrcnn.diagnose import diagnose
from mrcnn.model import MaskRCNN
from mrcnn.trace import trace

pytestmark = pytest.mark.slow
DEMO = "resources/demo"
SIZE = 128
CLASSES = ("square", "circle", "triangle")
# Three well separated shapes the demo model finds, and two overlapping squares.
THREE = [("square", (230, 60, 60), (30, 30, 14)), ("circle", (60, 230, 60), (30, 95, 14)),
         ("triangle", (60, 60, 230), (88, 60, 16))]
# The second square covers the first's lower right corner: both boxes stay whole and overlap.
OVERLAPPING = [("square", (230, 200, 40), (50, 40, 18)), ("square", (40, 200, 230), (70, 70, 18))]


def render(shapes, thin=None):
    """(image, gt dict) of shapes on a dark background; ``thin``: an extra 'square' GT box
    [y1, x1, y2, x2] drawn as a filled bar."""
    image = np.full((SIZE, SIZE, 3), 25, np.uint8)
    full = [draw_shape_mask(name, dims, SIZE, SIZE) for name, _, dims in shapes]
    masks = visible_masks(full)
    for (_, colour, _), mask in zip(shapes, full):
        image[mask] = colour
    class_ids = [CLASSES.index(name) + 1 for name, _, _ in shapes]
    if thin is not None:
        bar = np.zeros((SIZE, SIZE, 1), bool)
        y1, x1, y2, x2 = thin
        bar[y1:y2, x1:x2] = True
        image[bar[:, :, 0]] = (240, 240, 240)
        masks, class_ids = np.concatenate([masks, bar], axis=2), class_ids + [1]
    return image, {"boxes": extract_bboxes(masks), "class_ids": np.array(class_ids),
                   "masks": masks}


def demo_model(**overrides):
    base = Config.from_json(f"{DEMO}/config.json").to_dict()
    fields = {k: v for k, v in base.items() if k not in DERIVED_FIELDS}
    model = MaskRCNN("inference", Config.from_dict({**fields, **overrides}))
    model.load_weights(f"{DEMO}/mask_rcnn_shapes_demo.h5")
    return model


def diagnosed(model, shapes, thin=None):
    image, gt = render(shapes, thin)
    t = trace(model, image, gt=gt, activations=[])
    return t, diagnose(t)


@pytest.fixture(scope="module")
def model():
    return demo_model()


def test_baseline_finds_all_and_a_thin_bar_has_no_anchor(model):
    thin = [112, 20, 114, 80]  # 2 x 60 px: ratio 30, no anchor of ratio 0.5..2 fits
    t, d = diagnosed(model, THREE, thin)
    assert [v.cause for v in d.gt[:3]] == ["detected"] * 3
    assert all(v.mask_iou >= 0.5 and v.box_iou >= 0.5 for v in d.gt[:3])
    bar = d.gt[3]
    assert bar.cause == "no_anchor" and bar.stage == "anchors"
    anchor_iou = compute_overlaps(t["anchors"]["boxes"], t["gt"]["boxes"][3:4])[:, 0]
    assert anchor_iou.max() < 0.7
    assert bar.details["best_anchor"] == int(np.argmax(anchor_iou))
    assert bar.details["best_iou"] == pytest.approx(anchor_iou.max())
    assert bar.details["needed_ratio"] == pytest.approx(30.0) and bar.details["nearest_ratio"] == 2
    assert bar.evidence[0].stage == "anchors" and bar.evidence[0].indices == [int(np.argmax(anchor_iou))]


def test_background_bias_makes_every_object_background(model):
    bias = model.keras_model.get_layer("mrcnn_class_logits").weights[1]
    saved = bias.numpy().copy()
    try:
        bias.assign(saved + np.array([40.0, 0.0, 0.0, 0.0], np.float32))
        t, d = diagnosed(model, THREE)
    finally:
        bias.assign(saved)
    assert len(t["detections"]["class_ids"]) == 0
    assert [v.cause for v in d.gt] == ["background"] * 3
    for v in d.gt:
        roi = v.details["roi"]
        probs = t["heads/class_probs"]["probs"][roi]
        assert np.argmax(probs) == 0 and v.details["background_prob"] == pytest.approx(probs[0])
        assert compute_overlaps(t["proposals/post_nms"]["boxes"][[roi]],
                                t["gt"]["boxes"][[v.index]])[0, 0] >= 0.5


def test_tiny_pre_nms_limit_loses_objects_at_rpn_rank():
    t, d = diagnosed(demo_model(PRE_NMS_LIMIT=1), THREE)
    assert len(t["proposals/pre_nms"]["scores"]) == 1
    # One pre-NMS box covers at most one object; each other one had a matching anchor that
    # ranked too low (rpn_rank) or had none at all (the triangle's best anchor IoU is 0.53).
    missed = [v for v in d.gt if v.cause != "detected"]
    assert len(missed) == 2 and {v.cause for v in missed} <= {"rpn_rank", "no_anchor"}
    lost = [v for v in missed if v.cause == "rpn_rank"]
    assert lost
    for v in missed:
        best_iou = compute_overlaps(t["anchors"]["boxes"], t["gt"]["boxes"][[v.index]]).max()
        assert (best_iou >= 0.7) == (v.cause == "rpn_rank")
    scores = t["rpn/scores"]["scores"]
    for v in lost:
        anchor = v.details["best_anchor"]
        assert v.details["best_rank"] == int(np.sum(scores > scores[anchor])) >= 1
        assert v.details["best_score"] == pytest.approx(scores[anchor])
        assert compute_overlaps(t["anchors"]["boxes"][[anchor]],
                                t["gt"]["boxes"][[v.index]])[0, 0] >= 0.7


def test_min_confidence_above_a_score_gives_low_score(model):
    """DETECTION_MIN_CONFIDENCE between the lowest and the next score of the three shapes: the
    lowest becomes low_score (with its ROI's own probability), the others stay detected."""
    _, base = diagnosed(model, THREE)
    base_scores = [base.detections[v.detection].score for v in base.gt]
    lowest, second = sorted(base_scores)[:2]
    assert second > lowest, "the three scores must differ"
    threshold = float((lowest + second) / 2)
    t, d = diagnosed(demo_model(DETECTION_MIN_CONFIDENCE=threshold), THREE)
    for v, score in zip(d.gt, base_scores):
        if score < threshold:
            assert v.cause == "low_score" and v.stage == "heads/class_probs"
            assert v.details["score"] < threshold
            assert v.details["min_confidence"] == pytest.approx(threshold)
            roi_probs = t["heads/class_probs"]["probs"][v.details["roi"]]
            assert v.details["score"] == pytest.approx(roi_probs[v.class_id])
        else:
            assert v.cause == "detected"
    assert any(v.cause == "low_score" for v in d.gt)


def test_max_instances_one_of_three():
    t, d = diagnosed(demo_model(DETECTION_MAX_INSTANCES=1), THREE)
    assert len(t["detections"]["class_ids"]) == 1
    causes = sorted(v.cause for v in d.gt)
    assert causes == ["detected", "max_instances", "max_instances"]
    for v in d.gt:
        if v.cause == "max_instances":
            assert v.details["rank_after_nms"] >= 1 and v.details["max_instances"] == 1
            m = v.details["candidate"]
            assert t["detections/pre_nms"]["class_ids"][m] == v.class_id


def test_low_detection_nms_threshold_suppresses_an_overlapping_square(model):
    t0, d0 = diagnosed(model, OVERLAPPING)
    assert [v.cause for v in d0.gt] == ["detected", "detected"]
    t, d = diagnosed(demo_model(DETECTION_NMS_THRESHOLD=0.01), OVERLAPPING)
    causes = [v.cause for v in d.gt]
    assert sorted(causes) == ["detected", "detection_nms"]
    lost = d.gt[causes.index("detection_nms")]
    kept = d.gt[causes.index("detected")]
    assert lost.details["suppressed_by_detection"] == kept.detection
    pre = t["detections/pre_nms"]
    m, by = lost.details["candidate"], lost.details["suppressed_by"]
    assert pre["scores"][by] >= pre["scores"][m]
    assert compute_overlaps(pre["boxes"][[m]], pre["boxes"][[by]])[0, 0] > 0.01
