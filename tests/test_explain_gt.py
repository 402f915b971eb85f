"""explain(..., gt=g): a ground-truth object explained through what its diagnosis points to.

Held-out Shapes images traced with their ground truth on the demo model: a found GT is its
detection's map; a GT lost in the heads is explained through the covering ROI the diagnosis
names, for the GT's class (the score is the trace's own probability for that ROI and class); a
GT no ROI covered (a made-up object on empty background) through its own box.
"""

from pathlib import Path

import numpy as np
import pytest

from mrcnn.evaluate_cli import SHAPES_EVAL_SEED
from mrcnn.explain import (ExplainError, GroundTruthIndexError, NoGroundTruthError, explain,
                           gt_target, pooled_level)
from mrcnn.explain_gt import HEAD_CAUSES, gt_subject, gt_verdict, subject_name
from mrcnn.explain_metrics import mass_in_box
from mrcnn.trace import trace
from mrcnn.trace_data import original_to_normalized

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"
IMAGES = 14  # held-out images: enough for a detected GT and a head-stage miss


@pytest.fixture(scope="module")
def model():
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", Config.from_json(str(DEMO / "config.json")))
    model.load_weights(str(DEMO / "mask_rcnn_shapes_demo.h5"))
    return model


def _gt_of(dataset, image_id):
    from mrcnn import utils

    masks, class_ids = dataset.load_mask(image_id)
    return {"boxes": utils.extract_bboxes(masks), "class_ids": class_ids, "masks": masks}


@pytest.fixture(scope="module")
def traced(model):
    """[(image, trace with gt)] of the first IMAGES held-out Shapes images."""
    from mrcnn.data.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(IMAGES, 128, 128, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    return [(dataset.load_image(i), trace(model, dataset.load_image(i), gt=_gt_of(dataset, i),
                                          activations=[])) for i in dataset.image_ids]


def _first(traced, wanted):
    """(image, trace, g) of the first GT object whose cause is in ``wanted``."""
    for image, image_trace in traced:
        for g in range(len(image_trace["gt"]["class_ids"])):
            if gt_verdict(image_trace, g).cause in wanted:
                return image, image_trace, g
    pytest.fail(f"no GT with cause in {wanted} among {IMAGES} held-out images")


def test_subject_follows_the_diagnosis(traced):
    kinds = set()
    for _, image_trace in traced:
        for g in range(len(image_trace["gt"]["class_ids"])):
            verdict = gt_verdict(image_trace, g)
            kind, row = gt_subject(image_trace, g)
            kinds.add(kind)
            if verdict.detection >= 0:
                assert (kind, row) == ("detection", verdict.detection)
            elif verdict.cause in HEAD_CAUSES:
                assert (kind, row) == ("roi", verdict.details["roi"])
            else:
                assert (kind, row) == ("gt_box", g)
    assert {"detection", "roi"} <= kinds


def test_found_gt_is_its_detections_map(model, traced):
    image, image_trace, g = _first(traced, {"detected"})
    k = gt_verdict(image_trace, g).detection
    np.testing.assert_array_equal(explain(model, image, gt=g, trace=image_trace),
                                  explain(model, image, k, trace=image_trace))
    assert subject_name(g, *gt_subject(image_trace, g)) == f"detection {k}, which found GT {g}"


def test_head_miss_uses_the_covering_roi_and_the_gt_class(model, traced):
    from mrcnn.explain_graphs import explain_graphs

    image, image_trace, g = _first(traced, set(HEAD_CAUSES))
    row = gt_verdict(image_trace, g).details["roi"]
    target = gt_target(image_trace, g)
    gt_class = int(image_trace["gt"]["class_ids"][g])
    expected_roi = original_to_normalized(image_trace["proposals/post_nms"]["boxes"][[row]],
                                          image_trace.meta["image_meta"])[0]
    np.testing.assert_allclose(target.roi, expected_roi, atol=1e-6)
    assert target.class_id == gt_class and target.mask is None
    assert str(target) == f"GT {g}'s covering ROI {row}"
    # The explained score is the GT class's log-odds against the background on that ROI, from
    # the trace's own probabilities.
    molded, metas, _, _ = model.mold([image])
    level = pooled_level(target.roi, molded[0].shape)
    _, _, score = explain_graphs(model).gradient_fn(f"fpn_p{level}", "class")(
        molded, metas, target.roi.reshape(1, 1, 4), np.int32(gt_class),
        np.ones((28, 28), np.float32))
    probs = np.asarray(image_trace["heads/class_probs"]["probs"][row], np.float64)
    assert float(score) == pytest.approx(np.log(probs[gt_class] / probs[0]), abs=2e-3)
    for method, target_name in (("gradcam", "class"), ("gradcam", "mask"), ("gradcam++", "class")):
        saliency = explain(model, image, gt=g, method=method, target=target_name,
                           trace=image_trace)
        assert saliency.shape == image.shape[:2] and saliency.max() == pytest.approx(1.0)
        assert mass_in_box(saliency, image_trace["gt"]["boxes"][g]) >= 0.5, (method, target_name)


def test_gt_no_roi_covered_is_explained_through_its_own_box(model, traced):
    """A made-up 'square' on empty background: nothing proposed it, so its box is the ROI."""
    image, image_trace = traced[0]
    box = _empty_corner_box(image_trace)
    gt = {"boxes": np.array([box]), "class_ids": np.array([1])}
    fake = trace(model, image, gt=gt, activations=[])
    assert gt_subject(fake, 0) == ("gt_box", 0)
    target = gt_target(fake, 0)
    np.testing.assert_allclose(target.roi, target.box)
    np.testing.assert_array_equal(target.class_probs, [0, 1, 0, 0])
    assert "own box" in str(target)
    saliency = explain(model, image, gt=0, trace=fake)
    assert saliency.shape == image.shape[:2] and saliency.max() == pytest.approx(1.0)
    drise = explain(model, image, gt=0, method="drise", trace=fake, num_masks=50)
    assert drise.shape == image.shape[:2] and np.isfinite(drise).all()


def _empty_corner_box(image_trace):
    """A 20 x 20 box (original pixels) overlapping no GT object and no proposal much."""
    from mrcnn.explain_drise import box_iou

    boxes = np.concatenate([image_trace["gt"]["boxes"],
                            image_trace["proposals/post_nms"]["boxes"]]).astype(np.float64)
    for y in range(0, 108, 4):
        for x in range(0, 108, 4):
            box = np.array([y, x, y + 20, x + 20], np.float64)
            if box_iou(boxes, box).max() < 0.3:
                return box.astype(np.int32)
    pytest.fail("no empty corner in the image")


# ---- bad input -------------------------------------------------------------------------------

def test_trace_without_ground_truth(model, traced):
    image = traced[0][0]
    plain = trace(model, image, activations=[])
    with pytest.raises(NoGroundTruthError, match="no ground truth"):
        explain(model, image, gt=0, trace=plain)


@pytest.mark.parametrize("index", [-1, 50, 1.5, True])
def test_gt_index_out_of_range(model, traced, index):
    image, image_trace = traced[0]
    with pytest.raises(GroundTruthIndexError, match="gt|GT object"):
        explain(model, image, gt=index, trace=image_trace)


def test_detection_and_gt_together_or_neither(model, traced):
    image, image_trace = traced[0]
    for kwargs in ({"detection": 0, "gt": 0}, {}):
        with pytest.raises(ExplainError, match="exactly one of detection"):
            explain(model, image, trace=image_trace, **kwargs)
