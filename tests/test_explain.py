"""explain(): Grad-CAM / Grad-CAM++ / D-RISE maps of one detection on the demo model.

The heads re-applied to one ROI must reproduce the trace's numbers; the gradient on an FPN
level must live inside the ROI; and the saliency sanity checks hold on held-out Shapes images
(a handful here; ``bench/explain_sanity.py`` and the slow test measure all 50).
"""

from pathlib import Path

import numpy as np
import pytest

from mrcnn.evaluate_cli import SHAPES_EVAL_SEED
from mrcnn.explain import (DetectionIndexError, ExplainCancelled, ExplainError,
                           LayerNotFeedingError, NoDetectionsError, UnknownLayerError,
                           detection_target, explain, pooled_level)
from mrcnn.explain_metrics import (delete_pixels, detection_scores, mass_in_box, pointing_hit,
                                   random_fraction_mask, spearman, top_fraction_mask)
from mrcnn.trace import trace

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"
CONFIDENT = 0.9
HANDFUL = 4  # held-out images in the fast tests
# Stated bound of the randomisation check: median Spearman rank correlation, inside the
# detection's box, between the maps of the trained and the head-randomised model.
RANDOMISED_RHO_BOUND = 0.5


def _demo_model():
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", Config.from_json(str(DEMO / "config.json")))
    model.load_weights(str(DEMO / "mask_rcnn_shapes_demo.h5"))
    return model


def _held_out(count):
    from mrcnn.data.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(count, 128, 128, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    return [dataset.load_image(i) for i in dataset.image_ids]


@pytest.fixture(scope="module")
def model():
    return _demo_model()


@pytest.fixture(scope="module")
def cases(model):
    """[(image, trace, confident detection indices)] for the first HANDFUL held-out images."""
    out = []
    for image in _held_out(HANDFUL):
        image_trace = trace(model, image, activations=[])
        confident = np.flatnonzero(image_trace["detections"]["scores"] >= CONFIDENT)
        out.append((image, image_trace, [int(k) for k in confident]))
    assert sum(len(c[2]) for c in out) >= 8, "the demo model should find the shapes"
    return out


@pytest.fixture(scope="module")
def first(cases):
    image, image_trace, confident = cases[0]
    return image, image_trace, confident[0]


# ---- the graph pieces reproduce the trace ----------------------------------------------------

def test_single_roi_head_reproduces_trace_class_probs(model, cases):
    from mrcnn.explain_graphs import explain_graphs

    for image, image_trace, confident in cases:
        molded, metas, _, _ = model.mold([image])
        for k in confident:
            det = detection_target(image_trace, k)
            probs = explain_graphs(model).class_probs(molded, metas, det.roi)[0]
            np.testing.assert_allclose(probs, det.class_probs, atol=2e-4)
            assert probs[det.class_id] == pytest.approx(
                float(image_trace["detections"]["scores"][k]), abs=2e-4)


def test_mask_logits_reproduce_trace_mask(model, first):
    """sigmoid(score) with a one-cell region = the trace's mask probability at that cell."""
    from mrcnn.explain_graphs import explain_graphs

    image, image_trace, k = first
    det = detection_target(image_trace, k)
    molded, metas, _, _ = model.mold([image])
    level = pooled_level(det.box, molded[0].shape)
    fn = explain_graphs(model).gradient_fn(f"fpn_p{level}", "mask")
    for cell in [(3, 5), (14, 14), (20, 9)]:
        region = np.zeros_like(det.mask)
        region[cell] = 1.0
        _, _, score = fn(molded, metas, det.box.reshape(1, 1, 4), np.int32(det.class_id), region)
        assert 1 / (1 + np.exp(-float(score))) == pytest.approx(float(det.mask[cell]), abs=2e-4)


def test_class_target_is_the_log_odds_against_the_background(model, cases):
    """S = log(p_class / p_background) of the trace's class probabilities, and dS/dA is the
    gradient of z_class - z_background taken independently here from the level tensor."""
    import keras
    import tensorflow as tf

    from mrcnn.explain_graphs import explain_graphs

    graphs = explain_graphs(model)
    image, image_trace, confident = cases[0]
    molded, metas, _, _ = model.mold([image])
    for k in confident[:2]:
        det = detection_target(image_trace, k)
        level = pooled_level(det.roi, molded[0].shape)
        box = det.roi.reshape(1, 1, 4).astype(np.float32)
        activations, gradients, score = graphs.gradient_fn(f"fpn_p{level}", "class")(
            molded, metas, box, np.int32(det.class_id), np.ones((28, 28), np.float32))
        probs = det.class_probs.astype(np.float64)
        assert float(score) == pytest.approx(np.log(probs[det.class_id] / probs[0]), abs=2e-3)
        level_value = tf.Variable(activations[None])
        others = list(keras.Model(graphs.image_input, graphs.levels)(molded, training=False))
        others[level - 2] = level_value
        with tf.GradientTape() as tape:
            logits = tf.cast(graphs._class_logits(tf.constant(box), tf.constant(metas), others),
                             tf.float32)[0, 0]
            margin = logits[det.class_id] - logits[0]
        expected = tape.gradient(margin, level_value)[0].numpy()
        scale = np.abs(expected).max()
        assert scale > 0
        np.testing.assert_allclose(gradients.numpy() / scale, expected / scale, atol=1e-3)


def test_fpn_gradient_lives_inside_the_roi(model, first):
    """ROIAlign crops one level: on it, cells farther than one cell from the ROI get no gradient."""
    from mrcnn.explain_graphs import explain_graphs

    image, image_trace, k = first
    det = detection_target(image_trace, k)
    molded, metas, _, _ = model.mold([image])
    level = pooled_level(det.roi, molded[0].shape)
    activations, gradients, _ = explain_graphs(model).gradient_fn(f"fpn_p{level}", "class")(
        molded, metas, det.roi.reshape(1, 1, 4), np.int32(det.class_id),
        np.ones((28, 28), np.float32))
    cells = gradients.shape[0]
    y1, x1, y2, x2 = det.roi * (cells - 1)  # crop_and_resize samples box * (size - 1)
    rows, cols = np.arange(cells)[:, None], np.arange(cells)[None, :]
    outside = (rows < np.floor(y1) - 1) | (rows > np.ceil(y2) + 1) | \
              (cols < np.floor(x1) - 1) | (cols > np.ceil(x2) + 1)
    magnitude = np.abs(gradients.numpy()).sum(-1)
    assert outside.any() and magnitude[~outside].max() > 0
    assert np.all(magnitude[outside] == 0.0)


# ---- maps ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "gradcam-pooled"])
@pytest.mark.parametrize("target", ["class", "mask"])
def test_map_is_float_in_original_pixels(model, method, target):
    """A non-square image (padded by the molding): the map has its size, values in [0, 1]."""
    image = _held_out(1)[0]
    wide = np.concatenate([image, np.repeat(image[:, -1:], 64, axis=1)], axis=1)  # 128 x 192
    image_trace = trace(model, wide, activations=[])
    saliency = explain(model, wide, 0, method=method, target=target, trace=image_trace)
    assert saliency.shape == (128, 192) and saliency.dtype == np.float32
    assert saliency.min() >= 0.0 and saliency.max() == pytest.approx(1.0)
    box = image_trace["detections"]["boxes"][0]
    area_share = (box[2] - box[0]) * (box[3] - box[1]) / saliency.size  # ~0.1
    if method != "gradcam-pooled":  # the pooled forms light other objects too
        assert mass_in_box(saliency, box) > 4 * area_share


def test_explain_traces_the_image_when_no_trace_is_given(model, first):
    image, image_trace, k = first
    np.testing.assert_allclose(explain(model, image, k), explain(model, image, k,
                                                                 trace=image_trace), atol=1e-6)


def test_default_layer_is_the_detections_fpn_level(model, first):
    image, image_trace, k = first
    molded = model.mold([image])[0]
    level = pooled_level(detection_target(image_trace, k).roi, molded[0].shape)
    np.testing.assert_array_equal(explain(model, image, k, trace=image_trace),
                                  explain(model, image, k, layer=f"fpn_p{level}",
                                          trace=image_trace))


def test_backbone_layer_feeds_every_level(model, first):
    image, image_trace, k = first
    saliency = explain(model, image, k, layer="res3b_out", trace=image_trace)
    assert saliency.shape == image.shape[:2] and saliency.max() == pytest.approx(1.0)


# ---- sanity checks on held-out images --------------------------------------------------------

@pytest.mark.parametrize("target", ["class", "mask"])
def test_pointing_game_and_mass_in_box(model, cases, target):
    hits, masses = [], []
    for image, image_trace, confident in cases:
        for k in confident:
            saliency = explain(model, image, k, target=target, trace=image_trace)
            box = image_trace["detections"]["boxes"][k]
            hits.append(pointing_hit(saliency, box))
            masses.append(mass_in_box(saliency, box))
    # Class maps can peak on the ROI's edge, a pixel or two outside the refined box: 91.5%
    # over the 50 held-out images (slow test below), 85%+ on any handful.
    assert np.mean(hits) >= (0.85 if target == "class" else 0.9)
    assert np.mean(np.asarray(masses) >= 0.6) >= 0.9


@pytest.mark.slow
def test_pointing_game_on_all_held_out_images(model):
    """The issue's bar on the 50 held-out images of ``mrcnn evaluate --dataset shapes``.

    Measured: class target 91.5% pointing, 100% with >= 60% mass in the box, 91.5% both at
    once; mask target 100% / 100% / 100%.
    """
    hits, masses = {"class": [], "mask": []}, {"class": [], "mask": []}
    for image in _held_out(50):
        image_trace = trace(model, image, activations=[])
        for k in np.flatnonzero(image_trace["detections"]["scores"] >= CONFIDENT):
            box = image_trace["detections"]["boxes"][k]
            for target in hits:
                saliency = explain(model, image, int(k), target=target, trace=image_trace)
                hits[target].append(pointing_hit(saliency, box))
                masses[target].append(mass_in_box(saliency, box) >= 0.6)
    assert len(hits["class"]) > 100
    for target in hits:
        assert np.mean(hits[target]) >= 0.9, target
        assert np.mean(masses[target]) >= 0.9, target
        assert np.mean(np.logical_and(hits[target], masses[target])) >= 0.9, target


def test_randomised_heads_change_the_map(model, cases):
    from mrcnn.explain_graphs import explain_graphs

    sys_path_bench()
    from explain_sanity import randomise_heads

    randomised = _demo_model()
    assert "mrcnn_class_conv1" in randomise_heads(randomised)
    rhos, whole = [], []
    for image, image_trace, confident in cases:
        for k in confident:
            box = image_trace["detections"]["boxes"][k]
            rows, cols = slice(box[0], box[2]), slice(box[1], box[3])
            trained = explain(model, image, k, trace=image_trace)
            random = explain(randomised, image, k, trace=image_trace)
            rhos.append(spearman(trained[rows, cols], random[rows, cols]))
            whole.append(spearman(trained, random))
    assert np.median(rhos) < RANDOMISED_RHO_BOUND
    # Over the whole image both maps are zero outside the (held-fixed) ROI, so the ranks agree
    # there by construction; the change is inside.
    assert np.median(whole) > np.median(rhos)
    assert explain_graphs(randomised) is not explain_graphs(model)


def test_deleting_salient_pixels_hurts_more_than_random(model, cases):
    rng = np.random.default_rng(0)
    top_drops, random_drops = [], []
    for image, image_trace, confident in cases:
        for k in confident:
            saliency = explain(model, image, k, trace=image_trace)
            fill = model.config.MEAN_PIXEL
            top = delete_pixels(image, top_fraction_mask(saliency, 0.2), fill)
            random = delete_pixels(image, random_fraction_mask(saliency.shape, 0.2, rng), fill)
            base, top_score, random_score = detection_scores(model, [image, top, random],
                                                             image_trace, k)
            top_drops.append(base - top_score)
            random_drops.append(base - random_score)
    top_drops, random_drops = np.array(top_drops), np.array(random_drops)
    assert top_drops.mean() > random_drops.mean() + 0.2
    # Per detection: 79.5% over the 117 confident detections of the 50 held-out images
    # (bench/explain_sanity.py); 8 of the 12 of this handful.
    assert np.mean(top_drops > random_drops) >= 0.6


def sys_path_bench():
    import sys

    bench = str(Path(__file__).resolve().parent.parent / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)


# ---- D-RISE -----------------------------------------------------------------------------------

def test_drise_map_progress_seed_and_cancel(model, first):
    image, image_trace, k = first
    calls = []
    saliency = explain(model, image, k, method="drise", trace=image_trace, num_masks=50,
                       batch_size=25, seed=3, progress=lambda done, total: calls.append(
                           (done, total)))
    assert calls == [(25, 50), (50, 50)]
    assert saliency.shape == image.shape[:2] and saliency.max() == pytest.approx(1.0)
    box = image_trace["detections"]["boxes"][k]
    area_share = (box[2] - box[0]) * (box[3] - box[1]) / saliency.size
    assert mass_in_box(saliency, box) > area_share  # better than a uniform map
    again = explain(model, image, k, method="drise", trace=image_trace, num_masks=50, seed=3)
    np.testing.assert_array_equal(saliency, again)
    batches = []
    with pytest.raises(ExplainCancelled, match="after 25 of 50"):
        explain(model, image, k, method="drise", trace=image_trace, num_masks=50,
                progress=lambda d, t: batches.append(d), cancel=lambda: bool(batches))


def test_random_masks_are_smooth_and_keep_about_p():
    from mrcnn.explain_drise import random_masks

    masks = random_masks(200, 40, 56, 8.0, 0.3, np.random.default_rng(0))
    assert masks.shape == (200, 40, 56) and masks.min() >= 0.0 and masks.max() <= 1.0
    assert masks.mean() == pytest.approx(0.3, abs=0.03)
    # Bilinear: neighbouring pixels differ by at most one cell's step (1 / 8).
    assert np.abs(np.diff(masks, axis=2)).max() <= 1 / 8 + 1e-6


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [-1, 99, 1.0, True, "0"])
def test_detection_index_out_of_range(model, first, index):
    image, image_trace, _ = first
    with pytest.raises(DetectionIndexError, match="detection"):
        explain(model, image, index, trace=image_trace)


def test_fpn_level_the_roi_is_not_pooled_from(model, first):
    image, image_trace, k = first
    level = pooled_level(detection_target(image_trace, k).roi, model.mold([image])[0][0].shape)
    other = 3 if level != 3 else 2
    with pytest.raises(LayerNotFeedingError, match=f"feeds P{other} only.*pooled from P{level}"):
        explain(model, image, k, layer=f"fpn_p{other}", trace=image_trace)


@pytest.mark.parametrize("layer", ["mrcnn_class_conv1", "mrcnn_mask_conv1", "fpn_p6", "rpn_model"])
def test_layers_after_or_beside_the_pooling(model, first, layer):
    image, image_trace, k = first
    with pytest.raises(LayerNotFeedingError, match=f"{layer}.*does not feed"):
        explain(model, image, k, layer=layer, trace=image_trace)


def test_unknown_layer_lists_close_matches(model, first):
    image, image_trace, k = first
    with pytest.raises(UnknownLayerError, match="close matches: fpn_p2"):
        explain(model, image, k, layer="fpn_p22", trace=image_trace)


def test_image_without_detections(model):
    blank = np.full((128, 128, 3), 200, np.uint8)
    with pytest.raises(NoDetectionsError, match="no detections"):
        explain(model, blank, 0)


def test_trace_without_detections_stage(model, first):
    from mrcnn.trace_data import Trace

    image = first[0]
    with pytest.raises(NoDetectionsError, match="no 'detections' stage"):
        explain(model, image, 0, trace=Trace(stages={"input": {"image": image}}))


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="lime"), "method must be one of"),
    (dict(target="box"), "target must be one of"),
    (dict(method="drise", layer="fpn_p2"), "takes no layer"),
    (dict(num_masks=10), "apply to D-RISE only"),
    (dict(method="drise", num_masks=0), "num_masks"),
    (dict(method="drise", keep_prob=1.0), "keep_prob"),
])
def test_bad_options(model, first, kwargs, message):
    image, image_trace, k = first
    with pytest.raises(ExplainError, match=message):
        explain(model, image, k, trace=image_trace, **kwargs)


def test_trace_of_another_image(model, first):
    image, image_trace, k = first
    with pytest.raises(ExplainError, match="trace of this image"):
        explain(model, image[:64], k, trace=image_trace)


@pytest.mark.parametrize("kind", ["gray", "rgba", "uint16"])
def test_gray_rgba_and_16_bit_images(model, first, kind):
    """The image is converted as detect() converts it; the map has the image's own size."""
    image = first[0]
    converted = {"gray": image.mean(axis=2).astype(np.uint8),
                 "rgba": np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]),
                 "uint16": image.astype(np.uint16) * 257}[kind]
    saliency = explain(model, converted, 0)
    assert saliency.shape == image.shape[:2] and saliency.max() == pytest.approx(1.0)
    if kind != "gray":  # the same pixels: the same map
        np.testing.assert_allclose(saliency, explain(model, image, 0), atol=1e-5)
