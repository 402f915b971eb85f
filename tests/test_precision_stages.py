"""bfloat16 vs float32, stage by stage (trace), on random-weight models with the same weights.

Tolerances (measured on this project's machines with margin; bfloat16 has an 8-bit mantissa,
relative rounding 2**-9 ~ 0.2% per operation):

* features (C2-C5, P2-P6): max |a - b| <= 3% of max |a|, L2 error <= 2%;
* RPN: foreground scores within 0.01, deltas within 3% of their largest magnitude;
* proposals: >= 95% of the top 50 float32 proposals have a bfloat16 twin (IoU >= 0.9);
* class probabilities of the same proposal (same anchor): within 0.05;
* detections: >= 90% of the better half of the float32 detections (80% of all) have a
  bfloat16 twin (same class, IoU >= 0.9), their scores within 0.03;
* raw 28x28 masks of twin detections: within 0.06; thresholded at 0.5, IoU >= 0.9.

bfloat16 runs on every CPU (emulated where the CPU lacks it), so these hold on any machine. Every
comparison also checks that the two precisions do differ: the test fails if the bfloat16 model
silently computed in float32.
"""

import numpy as np
import pytest

from mrcnn.precision_compare import twin_rows
from precision_pairs import proposal_anchors, random_pair, relative_error, sample_image
from tiny_config import TinyConfig


class ResNet50Config(TinyConfig):
    """Matterport's ResNet-50 FPN at 256 px (the heads and pyramid at full width)."""

    NAME = "r50_256"
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    TOP_DOWN_PYRAMID_SIZE = 256
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024


CONFIGS = {"tiny": TinyConfig,
           "resnet50": ResNet50Config}


@pytest.fixture(scope="module", params=[
    "tiny", pytest.param("resnet50", marks=pytest.mark.slow)])
def traces(request):
    """(float32 trace, bfloat16 trace, config) of one image."""
    from mrcnn.trace import trace

    config = CONFIGS[request.param]()
    fp32, bf16 = random_pair(config)
    image = sample_image(config.IMAGE_MAX_DIM)
    return trace(fp32, image), trace(bf16, image), config


def _assert_close_but_not_equal(reference, value, max_tol, l2_tol, what):
    max_error, l2_error = relative_error(reference, value)
    assert max_error <= max_tol and l2_error <= l2_tol, (what, max_error, l2_error)
    assert l2_error > 1e-5, f"{what}: bfloat16 output equals float32 (did it run in bfloat16?)"


def test_precision_is_in_the_trace_meta(traces):
    fp32, bf16, _ = traces
    assert fp32.meta["precision"] == "float32" and bf16.meta["precision"] == "bfloat16"
    assert bf16.meta["config"]["COMPUTE_DTYPE"] == "bfloat16"


def test_features(traces):
    fp32, bf16, _ = traces
    layers = fp32.meta["activation_layers"]
    assert len(layers) == 9  # C2..C5 and P2..P6
    for name in layers:
        key = f"activations/{name}"
        _assert_close_but_not_equal(fp32.stages[key]["values"], bf16.stages[key]["values"],
                                    0.03, 0.02, name)


def test_rpn_scores_and_deltas(traces):
    fp32, bf16, _ = traces
    scores, scores16 = fp32.stages["rpn/scores"]["scores"], bf16.stages["rpn/scores"]["scores"]
    assert np.mean((scores > 0.01) & (scores < 0.99)) > 0.9, "graded scores, not saturated"
    assert np.abs(scores - scores16).max() <= 0.01
    assert np.abs(scores - scores16).max() > 0
    _assert_close_but_not_equal(fp32.stages["rpn/deltas"]["deltas"],
                                bf16.stages["rpn/deltas"]["deltas"], 0.03, 0.02, "rpn deltas")


def test_proposals_overlap(traces):
    fp32, bf16, _ = traces
    boxes = fp32.stages["proposals/post_nms"]["boxes"][:50]
    boxes16 = bf16.stages["proposals/post_nms"]["boxes"]
    assert len(boxes) == 50
    twins = twin_rows(boxes, np.zeros(len(boxes)), boxes16, np.zeros(len(boxes16)))
    assert np.mean(twins >= 0) >= 0.95
    # The same anchors reach the top of the pre-NMS list.
    top = set(fp32.stages["proposals/pre_nms"]["anchor_indices"][:100].tolist())
    top16 = set(bf16.stages["proposals/pre_nms"]["anchor_indices"][:100].tolist())
    assert len(top & top16) >= 90


def test_class_probs_of_the_same_proposals(traces):
    fp32, bf16, _ = traces
    anchors, anchors16 = proposal_anchors(fp32), proposal_anchors(bf16)
    common, rows, rows16 = np.intersect1d(anchors, anchors16, return_indices=True)
    assert len(common) >= 0.9 * len(anchors)
    probs = fp32.stages["heads/class_probs"]["probs"][rows]
    probs16 = bf16.stages["heads/class_probs"]["probs"][rows16]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs16.sum(axis=1), 1.0, atol=1e-5)  # float32 softmax
    assert 0 < np.abs(probs - probs16).max() <= 0.05


def _detection_twins(fp32, bf16):
    det, det16 = fp32.stages["detections"], bf16.stages["detections"]
    return det, det16, twin_rows(det["boxes"], det["class_ids"], det16["boxes"],
                                 det16["class_ids"])


def test_detections_have_twins(traces):
    fp32, bf16, _ = traces
    det, det16, twins = _detection_twins(fp32, bf16)
    assert len(det["boxes"]) >= 10, "enough detections to compare"
    # The last of the D kept detections compete with near-equal scores just below them (random
    # weights give many), so which ones make the cut may differ; the better half may not.
    assert np.mean(twins[:len(twins) // 2] >= 0) >= 0.9
    assert np.mean(twins >= 0) >= 0.8
    found = twins >= 0
    assert np.abs(det["scores"][found] - det16["scores"][twins[found]]).max() <= 0.03


def test_masks_of_twin_detections(traces):
    fp32, bf16, _ = traces
    _, _, twins = _detection_twins(fp32, bf16)
    found = np.flatnonzero(twins >= 0)
    raw = fp32.stages["masks/raw"]["masks"][found]
    raw16 = bf16.stages["masks/raw"]["masks"][twins[found]]
    assert 0 < np.abs(raw - raw16).max() <= 0.06
    for mask, mask16 in zip(raw >= 0.5, raw16 >= 0.5):
        union = np.logical_or(mask, mask16).sum()
        if union:
            assert np.logical_and(mask, mask16).sum() / union >= 0.9
