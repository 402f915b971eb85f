"""trace(): every stage's shapes and invariants, lineage, targets, detect() equality, save/load."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn.anchors import anchors_per_level, get_anchors
from mrcnn.boxes import apply_box_deltas, clip_boxes, compute_overlaps
from mrcnn.model import MaskRCNN
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE, build_rpn_targets
from mrcnn.trace import default_activation_layers, trace
from mrcnn.trace_data import (STAGE_ORDER, Trace, normalized_to_original,
                              original_to_normalized)

HEIGHT, WIDTH = 100, 140  # not square: the window and scale matter


@pytest.fixture(scope="module")
def model():
    import keras
    from tiny_config import TinyConfig

    # Seeded: about one unseeded random init in eight detects nothing on the test image.
    keras.utils.set_random_seed(1)
    model = MaskRCNN("inference", TinyConfig())
    # Random RPN weights predict huge deltas that throw every proposal off the image; scaled
    # down, proposals stay near their anchors and can overlap ground truth.
    layer = model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred")
    layer.kernel.assign(layer.kernel.numpy() * 0.02)
    # Background must not win every ROI, or there is nothing to detect.
    logits_bias = model.keras_model.get_layer("mrcnn_class_logits").weights[1]
    logits_bias.assign(np.array([-3.0, 0.0, 0.0, 0.0], np.float32))
    return model


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    image[20:60, 30:90] = (250, 30, 30)
    return image


@pytest.fixture(scope="module")
def plain(model, image):
    return trace(model, image, class_names=["BG", "a", "b", "c"])


@pytest.fixture(scope="module")
def square_image():
    """128x128: no padding, so every (clipped) proposal lies inside the image."""
    return np.random.default_rng(2).integers(0, 256, (128, 128, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def gt(model, square_image):
    """GT boxes on top of three proposals (so some training ROIs are positive) + masks."""
    first = trace(model, square_image, activations=[])
    boxes = np.round(first["proposals/post_nms"]["boxes"]).astype(np.int32)
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    boxes = boxes[sizes >= 6][:3]
    assert len(boxes) == 3, "the test model should propose a few boxes of 6+ pixels"
    masks = np.zeros((128, 128, 3), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return {"boxes": boxes, "class_ids": np.array([1, 2, 3]), "masks": masks}


@pytest.fixture(scope="module")
def with_gt(model, square_image, gt):
    return trace(model, square_image, gt=gt, activations=[])


def test_stage_shapes(plain, model):
    config = model.config
    molded_shape = plain.meta["image_meta"]["molded_shape"]
    a = len(get_anchors(config, molded_shape))
    k = min(config.PRE_NMS_LIMIT, a)
    c = config.NUM_CLASSES
    assert plain["anchors"]["boxes"].shape == (a, 4)
    assert plain["rpn/scores"]["scores"].shape == (a,)
    assert plain["rpn/deltas"]["deltas"].shape == (a, 4)
    pre = plain["proposals/pre_nms"]
    assert pre["boxes"].shape == pre["unclipped"].shape == (k, 4)
    assert pre["scores"].shape == pre["anchor_indices"].shape == (k,)
    r = len(plain["proposals/post_nms"]["boxes"])
    assert 0 < r <= config.POST_NMS_ROIS_INFERENCE
    assert plain["heads/class_probs"]["probs"].shape == (r, c)
    assert plain["heads/refined"]["boxes"].shape == (r, c, 4)
    n = len(plain["detections"]["boxes"])
    assert plain["masks/raw"]["masks"].shape == (n, 28, 28)
    assert plain["masks"]["masks"].shape == (HEIGHT, WIDTH, n)
    assert plain["input"]["image"].shape == (HEIGHT, WIDTH, 3)
    assert list(plain["input"]["molded"].shape) == molded_shape
    assert [k for k in STAGE_ORDER if k in plain] == [k for k in plain.stages if k in STAGE_ORDER]
    assert "targets/rpn" not in plain and "gt" not in plain


def test_anchor_levels_and_scores(plain, model):
    levels = plain["anchors"]["levels"]
    counts = anchors_per_level(model.config, plain.meta["image_meta"]["molded_shape"])
    assert [int(np.sum(levels == lv)) for lv in range(2, 7)] == counts
    assert np.all(np.diff(levels) >= 0)
    assert len(plain.meta["level_shapes"]) == 5
    scores = plain["rpn/scores"]["scores"]
    assert np.all((scores >= 0) & (scores <= 1))


def test_pre_nms_boxes_are_refined_anchors(plain, model):
    meta = plain.meta["image_meta"]
    pre = plain["proposals/pre_nms"]
    ix = pre["anchor_indices"]
    assert len(np.unique(ix)) == len(ix)
    assert np.all(np.diff(pre["scores"]) <= 0), "pre-NMS boxes are in descending score order"
    np.testing.assert_array_equal(pre["scores"], plain["rpn/scores"]["scores"][ix])
    # anchors[anchor_indices] refined by their deltas = the unclipped boxes ...
    anchors = original_to_normalized(plain["anchors"]["boxes"][ix], meta)
    np.testing.assert_allclose(anchors, get_anchors(model.config, meta["molded_shape"])[ix],
                               atol=1e-5)
    refined = apply_box_deltas(anchors, plain["rpn/deltas"]["deltas"][ix])
    np.testing.assert_allclose(normalized_to_original(refined, meta), pre["unclipped"], atol=1e-2)
    # ... and the clipped ones are those clipped to the molded image.
    clipped = clip_boxes(original_to_normalized(pre["unclipped"], meta), (0, 0, 1, 1))
    np.testing.assert_allclose(normalized_to_original(clipped, meta), pre["boxes"], atol=1e-2)


def test_post_nms_indices_and_overlap(plain, model):
    pre, post = plain["proposals/pre_nms"], plain["proposals/post_nms"]
    assert np.all(post["indices"] >= 0) and len(np.unique(post["indices"])) == len(post["indices"])
    np.testing.assert_array_equal(pre["boxes"][post["indices"]], post["boxes"])
    np.testing.assert_array_equal(pre["scores"][post["indices"]], post["scores"])
    # NMS ran on normalized boxes: check the overlap there.
    boxes = original_to_normalized(post["boxes"], plain.meta["image_meta"])
    overlaps = compute_overlaps(boxes, boxes)
    np.fill_diagonal(overlaps, 0)
    assert overlaps.max() <= model.config.RPN_NMS_THRESHOLD + 1e-4


def test_detections_equal_detect(model, image, plain):
    result = model.detect([image])[0]
    det = plain["detections"]
    assert len(det["boxes"]) > 0
    np.testing.assert_array_equal(det["boxes"], result["rois"])
    np.testing.assert_array_equal(det["class_ids"], result["class_ids"])
    np.testing.assert_array_equal(det["scores"], result["scores"])
    np.testing.assert_array_equal(plain["masks"]["masks"], result["masks"])


def test_detections_link_to_heads_and_pre_nms(plain, model):
    det, pre = plain["detections"], plain["detections/pre_nms"]
    probs = plain["heads/class_probs"]["probs"]
    refined = plain["heads/refined"]["boxes"]
    candidates = np.flatnonzero((probs.argmax(1) > 0)
                                & (probs.max(1) >= model.config.DETECTION_MIN_CONFIDENCE))
    np.testing.assert_array_equal(pre["roi_indices"], candidates)
    assert np.all(det["pre_nms_indices"] >= 0)
    np.testing.assert_array_equal(pre["roi_indices"][det["pre_nms_indices"]], det["roi_indices"])
    np.testing.assert_array_equal(pre["class_ids"][det["pre_nms_indices"]], det["class_ids"])
    np.testing.assert_allclose(pre["scores"][det["pre_nms_indices"]], det["scores"], rtol=1e-6)
    rows = det["roi_indices"]
    np.testing.assert_allclose(refined[rows, det["class_ids"]], det["boxes"], atol=0.51)
    np.testing.assert_allclose(probs[rows, det["class_ids"]], det["scores"], rtol=1e-6)


def test_masks_inside_boxes_and_raw_masks(plain):
    det, masks = plain["detections"], plain["masks"]["masks"]
    raw = plain["masks/raw"]["masks"]
    assert np.all((raw >= 0) & (raw <= 1))
    for i, (y1, x1, y2, x2) in enumerate(det["boxes"]):
        outside = masks[:, :, i].copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()


def test_lineage_reaches_anchor(plain):
    pre = plain["proposals/pre_nms"]
    for i in range(len(plain["detections"]["boxes"])):
        path = plain.lineage(i)
        assert set(path) == {"detections/pre_nms", "proposals/post_nms", "proposals/pre_nms",
                             "anchors"}
        assert pre["anchor_indices"][path["proposals/pre_nms"]] == path["anchors"]
        assert plain["proposals/post_nms"]["indices"][path["proposals/post_nms"]] == \
            path["proposals/pre_nms"]


def test_activations_default_and_float16(plain, model):
    names = default_activation_layers(model.config)
    assert names == ["res2b_out", "res3b_out", "res4b_out", "res5b_out",
                     "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]
    assert plain.activation_layers() == names
    side = plain.meta["image_meta"]["molded_shape"][0]
    for name, stride in zip(names, (4, 8, 16, 32, 4, 8, 16, 32, 64)):
        values = plain[f"activations/{name}"]["values"]
        assert values.dtype == np.float16 and values.shape[:2] == (side // stride, side // stride)


def test_activation_errors(model, image):
    with pytest.raises(ValueError, match="res2b_out"):
        trace(model, image, activations=["res2b_ot"])
    with pytest.raises(ValueError, match="backbone and FPN layers only"):
        trace(model, image, activations=["mrcnn_mask_conv1"])


def test_custom_activation_and_no_retrace(model, image):
    from mrcnn.trace import _stage_graphs

    first = trace(model, image, activations=["res3a_branch2a"])
    graphs = _stage_graphs(model)
    counts = [fn.experimental_get_tracing_count()
              for fn in (graphs.rpn, graphs.proposals, graphs.classifier, graphs.mask)]
    second = trace(model, image, activations=["res3a_branch2a"])
    assert counts == [fn.experimental_get_tracing_count()
                      for fn in (graphs.rpn, graphs.proposals, graphs.classifier, graphs.mask)]
    assert first.activation_layers() == ["res3a_branch2a"]
    np.testing.assert_array_equal(first["activations/res3a_branch2a"]["values"],
                                  second["activations/res3a_branch2a"]["values"])


def test_meta_and_timings(plain, model):
    meta = plain.meta["image_meta"]
    assert meta["original_shape"] == [HEIGHT, WIDTH, 3]
    assert meta["molded_shape"] == [128, 128, 3]
    top, bottom = meta["padding"][0]
    assert top + bottom + meta["window"][2] - meta["window"][0] == 128
    assert meta["scale"] == pytest.approx(128 / WIDTH)
    assert plain.meta["config"]["NUM_CLASSES"] == model.config.NUM_CLASSES
    assert plain.class_names == ["BG", "a", "b", "c"]
    timings = plain.timings
    for stage in ("features", "rpn", "proposals", "classifier", "detection", "mask", "total"):
        assert timings[stage] >= 0
    assert timings["total"] == pytest.approx(sum(v for k, v in timings.items() if k != "total"))


def test_rpn_targets(with_gt, gt, model):
    targets = with_gt["targets/rpn"]
    match = targets["match"]
    assert set(np.unique(match)) <= {POSITIVE, NEGATIVE, NEUTRAL}
    positives = np.flatnonzero(match == POSITIVE)
    np.testing.assert_array_equal(targets["positive_indices"], positives)
    assert 3 <= len(positives) <= model.config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2
    assert len(positives) + np.sum(match == NEGATIVE) == model.config.RPN_TRAIN_ANCHORS_PER_IMAGE
    assert targets["deltas"].shape == (len(positives), 4)
    # Positive anchors moved by their target deltas land on a GT box (molded pixels).
    meta = with_gt.meta["image_meta"]
    from mrcnn.anchors import get_anchors_pixels

    anchors = get_anchors_pixels(model.config, meta["molded_shape"])[positives]
    moved = apply_box_deltas(anchors, targets["deltas"])
    gt_molded = np.round(gt["boxes"] * meta["scale"]
                         + np.array(meta["window"][:2] * 2)).astype(np.float32)
    assert np.all(compute_overlaps(moved, gt_molded).max(axis=1) > 0.99)
    rebuilt, _ = build_rpn_targets(anchors=get_anchors_pixels(model.config, meta["molded_shape"]),
                                   gt_class_ids=gt["class_ids"], gt_boxes=gt_molded,
                                   config=model.config, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(rebuilt, match)
    np.testing.assert_array_equal(with_gt["gt"]["boxes"], gt["boxes"])


def test_roi_targets(with_gt, model):
    rois = with_gt["targets/rois"]
    count = len(rois["boxes"])
    positives = int(np.sum(rois["class_ids"] > 0))
    assert positives >= 1 and count > positives
    assert positives <= int(model.config.TRAIN_ROIS_PER_IMAGE * model.config.ROI_POSITIVE_RATIO)
    assert positives / count <= model.config.ROI_POSITIVE_RATIO + 0.02
    assert np.all(rois["class_ids"][:positives] > 0) and np.all(rois["class_ids"][positives:] == 0)
    np.testing.assert_array_equal(with_gt["proposals/post_nms"]["boxes"][rois["proposal_indices"]],
                                  rois["boxes"])
    assert rois["masks"].shape == (count, 28, 28)
    assert set(np.unique(rois["masks"])) <= {0.0, 1.0}
    assert rois["masks"][:positives].any() and not rois["masks"][positives:].any()
    assert not rois["deltas"][positives:].any()


def test_gt_errors(model, image):
    with pytest.raises(ValueError, match="class_ids"):
        trace(model, image, gt={"boxes": [[0, 0, 5, 5]]}, activations=[])
    with pytest.raises(ValueError, match="masks"):
        trace(model, image, gt={"boxes": [[0, 0, 5, 5]], "class_ids": [1],
                                "masks": np.zeros((5, 5, 1), bool)}, activations=[])


def test_save_load_round_trip(with_gt, plain, tmp_path):
    for original in (plain, with_gt):
        path = original.save(tmp_path / "t.npz")
        loaded = Trace.load(path)
        assert list(loaded.stages) == list(original.stages)
        for key, arrays in original.stages.items():
            assert set(loaded[key]) == set(arrays)
            for name, value in arrays.items():
                assert loaded[key][name].dtype == value.dtype, (key, name)
                np.testing.assert_array_equal(loaded[key][name], value)
        expected = dict(original.meta, format_version=loaded.meta["format_version"])
        assert loaded.meta == expected
        assert loaded.lineage(0) == original.lineage(0)


def test_load_without_tensorflow(plain, tmp_path):
    path = plain.save(tmp_path / "trace.npz")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None  # any import of tensorflow now fails
        sys.modules["keras"] = None
        from mrcnn.trace_data import Trace
        from mrcnn.stats import rpn_recall
        t = Trace.load({str(path)!r})
        assert "detections" in t and t.lineage(0)["anchors"] >= 0
        rpn_recall(t, t["detections"]["boxes"][:2])
        print("ok", len(t.stages))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_diagnosis_attached_when_gt_is_given(with_gt, plain, tmp_path):
    from mrcnn.diagnose import Diagnosis, diagnose

    assert Diagnosis.from_trace(plain) is None and "diagnose" not in plain.timings
    attached = Diagnosis.from_trace(with_gt)
    recomputed = diagnose(with_gt)
    assert len(attached.gt) == len(with_gt["gt"]["class_ids"]) >= 1
    assert [v.cause for v in attached.gt] == [v.cause for v in recomputed.gt]
    assert [v.type for v in attached.detections] == [v.type for v in recomputed.detections]
    assert len(attached.detections) == len(with_gt["detections"]["scores"])
    assert 0 <= with_gt.timings["diagnose"] < with_gt.timings["total"]
    loaded = Diagnosis.from_trace(Trace.load(with_gt.save(tmp_path / "d.npz")))
    assert [v.cause for v in loaded.gt] == [v.cause for v in attached.gt]
