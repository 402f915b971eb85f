"""MaskRCNN inference: detect() contract, input conversion, no retracing, graph outputs."""

import numpy as np
import pytest

from mrcnn import imaging
from mrcnn.anchors import get_anchors
from mrcnn.boxes import denorm_boxes, norm_boxes
from mrcnn.model import INFERENCE_OUTPUTS, MaskRCNN


@pytest.fixture(scope="module")
def model():
    import keras
    from tiny_config import TinyConfig

    # Seeded: the tests below need random weights that detect something, whatever ran before
    # on this test worker.
    keras.utils.set_random_seed(0)
    return MaskRCNN("inference", TinyConfig(), model_dir=None)


def _random_image(rng, height, width, channels=3, dtype=np.uint8):
    high = 65535 if dtype == np.uint16 else 255
    shape = (height, width) if channels == 0 else (height, width, channels)
    return rng.integers(0, high + 1, shape).astype(dtype)


def _check_result(result, height, width, config):
    n = len(result["class_ids"])
    assert result["rois"].shape == (n, 4) and result["rois"].dtype == np.int32
    assert result["class_ids"].dtype == np.int32
    assert result["scores"].shape == (n,) and result["scores"].dtype == np.float32
    assert result["masks"].shape == (height, width, n) and result["masks"].dtype == bool
    assert n <= config.DETECTION_MAX_INSTANCES
    if n:
        assert np.all(result["class_ids"] >= 1) and np.all(result["class_ids"] < config.NUM_CLASSES)
        assert np.all(result["scores"] >= config.DETECTION_MIN_CONFIDENCE)
        assert np.all(np.diff(result["scores"]) <= 1e-6), "scores are sorted descending"
        rois = result["rois"]
        assert np.all(rois[:, :2] >= 0) and np.all(rois[:, 2] <= height) and np.all(rois[:, 3] <= width)
        assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])
        # Every mask pixel lies inside its box (unmold pastes the 28x28 mask into the box).
        for i in range(n):
            y1, x1, y2, x2 = rois[i]
            outside = result["masks"][:, :, i].copy()
            outside[y1:y2, x1:x2] = False
            assert not outside.any()


def test_graph_outputs_have_documented_shapes(model):
    config = model.config
    rng = np.random.default_rng(0)
    molded, metas, windows, anchors = model.mold([_random_image(rng, 128, 128)])
    out = model.predict_molded(molded, metas, anchors)
    assert set(out) == set(INFERENCE_OUTPUTS)
    a = get_anchors(config, (128, 128, 3)).shape[0]
    k = min(config.PRE_NMS_LIMIT, a)
    r, d, c = config.POST_NMS_ROIS_INFERENCE, config.DETECTION_MAX_INSTANCES, config.NUM_CLASSES
    expected = {
        "detections": (1, d, 6), "detection_roi_indices": (1, d), "mrcnn_class": (1, r, c),
        "mrcnn_bbox": (1, r, c, 4), "mrcnn_mask": (1, d, 28, 28, c), "rpn_rois": (1, r, 4),
        "rpn_class": (1, a, 2), "rpn_bbox": (1, a, 4), "pre_nms_boxes": (1, k, 4),
        "pre_nms_anchor_indices": (1, k), "pre_nms_scores": (1, k), "post_nms_indices": (1, r),
    }
    for name, shape in expected.items():
        assert out[name].shape == shape, name
    # Probabilities sum to one; proposals are normalized boxes.
    np.testing.assert_allclose(out["mrcnn_class"][0].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(out["rpn_class"][0].sum(-1), 1.0, atol=1e-4)
    assert out["rpn_rois"].min() >= 0.0 and out["rpn_rois"].max() <= 1.0
    # Detections point at the ROI they refine: the refined box of that ROI and class equals it.
    dets, roi_idx = out["detections"][0], out["detection_roi_indices"][0]
    valid = dets[:, 4] > 0
    assert np.all(roi_idx[valid] >= 0) and np.all(roi_idx[~valid] == -1)
    for row in np.where(valid)[0]:
        probs = out["mrcnn_class"][0, roi_idx[row]]
        assert int(dets[row, 4]) == int(np.argmax(probs))
        np.testing.assert_allclose(dets[row, 5], probs.max(), rtol=1e-5)


def test_detect_contract_on_rgb_image(model):
    rng = np.random.default_rng(1)
    image = _random_image(rng, 100, 150)
    (result,) = model.detect([image])
    assert set(result) == {"rois", "class_ids", "scores", "masks"}
    _check_result(result, 100, 150, model.config)
    assert len(result["class_ids"]) > 0, "random weights with min confidence 0 still detect"


@pytest.mark.parametrize("kind", ["gray2d", "gray1", "rgba", "uint16", "float01", "tiny", "huge"])
def test_detect_converts_any_image(model, kind):
    rng = np.random.default_rng(2)
    image = {
        "gray2d": lambda: _random_image(rng, 90, 60, channels=0),
        "gray1": lambda: _random_image(rng, 90, 60, channels=1),
        "rgba": lambda: _random_image(rng, 64, 64, channels=4),
        "uint16": lambda: _random_image(rng, 70, 80, dtype=np.uint16),
        "float01": lambda: rng.random((50, 40, 3)).astype(np.float32),
        "tiny": lambda: _random_image(rng, 3, 5),
        "huge": lambda: _random_image(rng, 1500, 2100),
    }[kind]()
    (result,) = model.detect([image])
    _check_result(result, image.shape[0], image.shape[1], model.config)


def test_uint16_image_is_the_same_picture_as_its_0_255_float_version(model):
    rng = np.random.default_rng(3)
    image8 = _random_image(rng, 96, 96)
    image16 = image8.astype(np.uint16) * 257  # 255 -> 65535
    (a,), (b,) = model.detect([image8.astype(np.float32)]), model.detect([image16])
    np.testing.assert_array_equal(a["rois"], b["rois"])
    np.testing.assert_array_equal(a["class_ids"], b["class_ids"])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10,), np.uint8), "image 0"),
    (np.zeros((10, 10, 5), np.uint8), "image 0"),
    (np.zeros((0, 10, 3), np.uint8), "image 0"),
])
def test_detect_rejects_bad_input_clearly(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.detect([bad])


def test_detect_rejects_a_bare_image_instead_of_a_list(model):
    with pytest.raises(ValueError, match="list of images"):
        model.detect(np.zeros((64, 64, 3), np.uint8))


def test_predict_function_is_traced_once_for_many_images(model):
    rng = np.random.default_rng(4)
    for height, width in [(64, 64), (128, 90), (200, 33), (128, 128)]:
        model.detect([_random_image(rng, height, width)])
    assert model._predict_fn.experimental_get_tracing_count() == 1


def test_batch_of_two_gives_the_same_graph_outputs_as_one_at_a_time():
    from tiny_config import TinyConfig

    class TwoImages(TinyConfig):
        IMAGES_PER_GPU = 2

    model2 = MaskRCNN("inference", TwoImages())
    rng = np.random.default_rng(5)
    images = [_random_image(rng, 128, 128), _random_image(rng, 80, 120)]
    molded, metas, _, anchors = model2.mold(images)
    batched = model2.predict_molded(molded, metas, anchors)
    for i in range(2):
        single = model2.predict_molded(molded[i:i + 1], metas[i:i + 1], anchors[i:i + 1])
        for name in ("rpn_class", "rpn_bbox", "pre_nms_scores", "rpn_rois", "mrcnn_class"):
            np.testing.assert_allclose(batched[name][i], single[name][0], atol=1e-4, err_msg=name)
        # Random weights give near-tied scores, so which of the tied ROIs wins (and the order)
        # may differ; the kept scores may not.
        scores_b = np.sort(batched["detections"][i][:, 5])
        scores_s = np.sort(single["detections"][0][:, 5])
        np.testing.assert_allclose(scores_b, scores_s, atol=1e-4)


def test_unmolded_boxes_are_the_graph_boxes_in_original_pixels(model):
    rng = np.random.default_rng(6)
    image = _random_image(rng, 64, 128)  # square mode: scaled x1 then padded top and bottom
    molded, metas, windows, anchors = model.mold([image])
    out = model.predict_molded(molded, metas, anchors)
    (result,) = model.detect([image])
    dets = out["detections"][0]
    dets = dets[dets[:, 4] > 0]
    # matterport's unmold: normalize the window, undo its shift/scale, denormalize to original.
    window = norm_boxes(np.array([imaging.parse_image_meta(metas[0])["window"]]), molded.shape[1:3])[0]
    shift = np.array([window[0], window[1], window[0], window[1]])
    extent = np.array([window[2] - window[0], window[3] - window[1]] * 2)
    expected = denorm_boxes((dets[:, :4] - shift) / extent, image.shape[:2])
    keep = (expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])
    np.testing.assert_array_equal(result["rois"], expected[keep])


def test_mask_head_skips_padding_rows_and_gives_the_masks_of_running_on_every_row(model):
    """Masks of real detections equal the mask head run on all D rows (matterport's way);
    padding rows are zero."""
    import keras

    graph = model.keras_model
    rng = np.random.default_rng(7)
    molded, metas, _, anchors = model.mold([_random_image(rng, 128, 128)])
    out = model.predict_molded(molded, metas, anchors)
    detections = out["detections"]
    rows = model.config.DETECTION_MAX_INSTANCES
    assert (detections[0, :, 4] > 0).sum() == rows  # random weights, confidence 0: all real

    levels = [graph.get_layer(f"fpn_p{i}").output for i in range(2, 6)]
    features = [np.asarray(f) for f in keras.Model(graph.inputs[0], levels)(molded, training=False)]
    every_row_head = keras.Model([graph.get_layer("detection_boxes").output, *levels, graph.inputs[1]],
                                 graph.get_layer("mrcnn_mask").output)
    trimmed_head = keras.Model([graph.get_layer("mrcnn_detection").output[0], *levels, graph.inputs[1]],
                               graph.get_layer("mrcnn_mask_padded").output)
    every_row = np.asarray(every_row_head([detections[..., :4], *features, metas], training=False))
    np.testing.assert_allclose(out["mrcnn_mask"], every_row, atol=1e-6)

    for count in (0, 1, 5):
        fewer = detections.copy()
        fewer[:, count:] = 0  # what DetectionLayer returns for an image with `count` detections
        masks = np.asarray(trimmed_head([fewer, *features, metas], training=False))
        assert masks.shape == (1, rows, 28, 28, model.config.NUM_CLASSES)
        np.testing.assert_allclose(masks[0, :count], every_row[0, :count], atol=1e-6)
        assert not masks[0, count:].any()


def test_an_image_without_detections_gives_empty_results_and_zero_masks():
    from tiny_config import TinyConfig

    model = MaskRCNN("inference", TinyConfig())
    # A classifier that calls every ROI background.
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([np.zeros_like(kernel), np.array([50.0, 0, 0, 0], np.float32)])
    image = _random_image(np.random.default_rng(8), 96, 128)
    (result,) = model.detect([image])
    _check_result(result, 96, 128, model.config)
    assert len(result["class_ids"]) == 0 and result["masks"].shape == (96, 128, 0)
    molded, metas, _, anchors = model.mold([image])
    out = model.predict_molded(molded, metas, anchors)
    assert not out["detections"].any() and not out["mrcnn_mask"].any()
    assert out["mrcnn_mask"].shape == (1, model.config.DETECTION_MAX_INSTANCES, 28, 28, 4)
