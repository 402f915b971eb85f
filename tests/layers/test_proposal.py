"""ProposalLayer against a numpy reference (top-k, decode, clip, greedy NMS) and its edge cases."""

import keras
import numpy as np
import pytest
from layer_helper import check_layer

from mrcnn.boxes import apply_box_deltas, clip_boxes, compute_overlaps, non_max_suppression
from mrcnn.layers.proposal import ProposalLayer

STD = [0.1, 0.1, 0.2, 0.2]


def random_inputs(batch, count, seed=0, delta_scale=1.0):
    """Softmax RPN probs (B, N, 2), deltas (B, N, 4), normalized anchors (B, N, 4) in [0, 1]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, count, 2))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    deltas = rng.normal(scale=delta_scale, size=(batch, count, 4))
    corner = rng.uniform(0.0, 0.8, size=(batch, count, 2))
    size = rng.uniform(0.05, 0.2, size=(batch, count, 2))
    anchors = np.concatenate([corner, corner + size], axis=-1)
    return [a.astype(np.float32) for a in (probs, deltas, anchors)]


def reference(probs, deltas, anchors, proposal_count, nms_threshold, pre_nms_limit):
    """numpy ProposalLayer for one image: (proposals padded, pre_nms boxes, anchor order, keep)."""
    scores = probs[:, 1]
    order = np.argsort(-scores, kind="stable")[:pre_nms_limit]
    boxes = apply_box_deltas(anchors[order], deltas[order] * np.float32(STD))
    boxes = clip_boxes(boxes, [0, 0, 1, 1])
    keep = non_max_suppression(boxes, scores[order], nms_threshold, max_output=proposal_count)
    proposals = np.zeros((proposal_count, 4), np.float32)
    proposals[:len(keep)] = boxes[keep]
    return proposals, boxes, order, keep


def test_matches_numpy_reference_and_links_back_to_anchors():
    probs, deltas, anchors = random_inputs(batch=2, count=300)
    layer = ProposalLayer(proposal_count=60, nms_threshold=0.5, pre_nms_limit=120,
                          rpn_bbox_std_dev=STD)
    outputs = check_layer(layer, [probs, deltas, anchors],
                          [(2, 60, 4), (2, 120, 4), (2, 120), (2, 60), (2, 120)])
    proposals, pre_boxes, anchor_ix, post_ix, pre_scores = outputs
    for b in range(2):
        ref_props, ref_boxes, ref_order, ref_keep = reference(probs[b], deltas[b], anchors[b],
                                                              60, 0.5, 120)
        np.testing.assert_array_equal(anchor_ix[b], ref_order)
        np.testing.assert_allclose(pre_boxes[b], ref_boxes, atol=1e-6)
        np.testing.assert_array_equal(pre_scores[b], probs[b, anchor_ix[b], 1])
        assert np.all(np.diff(pre_scores[b]) <= 0), "pre-NMS rows must be in score order"
        kept = post_ix[b][post_ix[b] >= 0]
        np.testing.assert_array_equal(kept, ref_keep)
        np.testing.assert_allclose(proposals[b], ref_props, atol=1e-6)
        # Each proposal is exactly the pre-NMS row it names; padding rows are zero.
        np.testing.assert_array_equal(proposals[b, :len(kept)], pre_boxes[b, kept])
        assert np.all(post_ix[b, len(kept):] == -1)
        assert np.all(proposals[b, len(kept):] == 0)
        overlaps = compute_overlaps(proposals[b, :len(kept)], proposals[b, :len(kept)])
        np.fill_diagonal(overlaps, 0)
        assert overlaps.max() <= 0.5 + 1e-6
        assert np.all((proposals[b] >= 0) & (proposals[b] <= 1))


def test_fewer_anchors_than_pre_nms_limit():
    probs, deltas, anchors = random_inputs(batch=1, count=40, seed=1)
    layer = ProposalLayer(proposal_count=50, nms_threshold=0.7, pre_nms_limit=6000)
    proposals, pre_boxes, anchor_ix, post_ix, _ = check_layer(
        layer, [probs, deltas, anchors], [(1, 50, 4), (1, 40, 4), (1, 40), (1, 50), (1, 40)])
    assert sorted(anchor_ix[0]) == list(range(40))
    ref_props, _, _, ref_keep = reference(probs[0], deltas[0], anchors[0], 50, 0.7, 6000)
    np.testing.assert_allclose(proposals[0], ref_props, atol=1e-6)
    assert (post_ix[0] >= 0).sum() == len(ref_keep) < 50  # some padding is needed


def test_zero_deltas_give_the_anchors_themselves():
    probs, deltas, anchors = random_inputs(batch=1, count=30, seed=2)
    layer = ProposalLayer(proposal_count=30, nms_threshold=1.0, pre_nms_limit=30)
    proposals, pre_boxes, anchor_ix, post_ix, _ = layer([probs, np.zeros_like(deltas), anchors])
    order = np.argsort(-probs[0, :, 1])
    np.testing.assert_allclose(pre_boxes[0], anchors[0, order], atol=1e-6)
    np.testing.assert_array_equal(post_ix[0], np.arange(30))  # threshold 1.0 keeps every box
    np.testing.assert_allclose(proposals[0], anchors[0, order], atol=1e-6)


def test_identical_anchors_collapse_to_one_padded_proposal():
    probs, _, _ = random_inputs(batch=1, count=20, seed=3)
    anchors = np.tile(np.float32([[0.2, 0.3, 0.5, 0.6]]), (1, 20, 1))
    proposals, _, anchor_ix, post_ix, _ = ProposalLayer(10, 0.7, 100)(
        [probs, np.zeros((1, 20, 4), np.float32), anchors])
    assert list(np.asarray(post_ix[0])) == [0] + [-1] * 9
    np.testing.assert_allclose(proposals[0, 0], anchors[0, 0], atol=1e-6)
    assert np.all(np.asarray(proposals[0, 1:]) == 0)
    assert anchor_ix[0, 0] == np.argmax(probs[0, :, 1])


def test_functional_model_with_unknown_batch_and_anchor_count():
    probs, deltas, anchors = random_inputs(batch=2, count=50, seed=4)
    inputs = [keras.Input((None, 2)), keras.Input((None, 4)), keras.Input((None, 4))]
    outputs = ProposalLayer(8, 0.7, 30, name="ROI")(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, 8, 4), (None, None, 4), (None, None),
                                                  (None, 8), (None, None)]
    model = keras.Model(inputs, outputs)
    result = model.predict([probs, deltas, anchors], verbose=0)
    direct = ProposalLayer(8, 0.7, 30)([probs, deltas, anchors])
    for a, b in zip(result, direct):  # graph vs eager: float ops may differ in the last bit
        np.testing.assert_allclose(a, np.asarray(b), atol=1e-6)


def test_rejects_bad_std_dev():
    with pytest.raises(ValueError, match="rpn_bbox_std_dev needs 4 values"):
        ProposalLayer(10, 0.7, 100, rpn_bbox_std_dev=[0.1, 0.2])
