"""mrcnn.utils: matterport's names, each equal to the project's own function on random inputs,
and against a numpy reimplementation of matterport's where the semantics are meant to agree
(or, where they differ on purpose, exactly there)."""

import os

import matterport_reference as ref
import numpy as np
import pytest

from mrcnn import anchors, boxes, evaluate, imaging, utils
from mrcnn.data import dataset

MATTERPORT_NAMES = (
    "Dataset extract_bboxes compute_iou compute_overlaps compute_overlaps_masks "
    "non_max_suppression apply_box_deltas box_refinement box_refinement_graph resize_image "
    "resize_mask minimize_mask expand_mask mold_mask unmold_mask generate_anchors "
    "generate_pyramid_anchors trim_zeros compute_matches compute_ap compute_ap_range "
    "compute_recall batch_slice norm_boxes denorm_boxes resize download_trained_weights").split()

# utils name -> the project function it re-exports.
REEXPORTS = {
    "Dataset": dataset.Dataset, "extract_bboxes": boxes.extract_bboxes,
    "compute_iou": boxes.compute_iou, "compute_overlaps": boxes.compute_overlaps,
    "compute_overlaps_masks": boxes.compute_overlaps_masks,
    "non_max_suppression": boxes.non_max_suppression, "apply_box_deltas": boxes.apply_box_deltas,
    "box_refinement": boxes.box_refinement, "box_refinement_graph": boxes.box_refinement_tf,
    "resize_image": imaging.resize_image, "resize_mask": imaging.resize_mask,
    "minimize_mask": imaging.minimize_mask, "expand_mask": imaging.expand_mask,
    "unmold_mask": imaging.unmold_mask, "generate_anchors": anchors.generate_anchors,
    "generate_pyramid_anchors": anchors.generate_pyramid_anchors,
    "trim_zeros": evaluate.trim_zeros, "compute_matches": evaluate.compute_matches,
    "compute_ap": evaluate.compute_ap,
    "compute_recall": evaluate.compute_recall, "norm_boxes": boxes.norm_boxes,
    "denorm_boxes": boxes.denorm_boxes, "resize": imaging.resize,
}


def random_boxes(rng, count, size=100, integer=False):
    """[count, 4] valid pixel boxes inside a size x size image."""
    hw = rng.uniform(2, size / 2, (count, 2))
    corner = rng.uniform(0, size - hw)
    out = np.concatenate([corner, corner + hw], axis=1)
    return np.floor(out).astype(np.int32) + np.array([0, 0, 1, 1]) if integer else out


def random_masks(rng, count, shape=(40, 50)):
    """[H, W, count] bool masks, each a filled random rectangle (never empty)."""
    masks = np.zeros(shape + (count,), bool)
    for i, (y1, x1, y2, x2) in enumerate(random_boxes(rng, count, min(shape), integer=True)):
        masks[y1:y2, x1:x2, i] = True
    return masks


def test_every_matterport_name_is_there():
    missing = [name for name in MATTERPORT_NAMES if not hasattr(utils, name)]
    assert missing == []
    assert set(MATTERPORT_NAMES) <= set(utils.__all__)


@pytest.mark.parametrize("name", sorted(REEXPORTS))
def test_reexports_are_the_project_functions_not_copies(name):
    assert getattr(utils, name) is REEXPORTS[name]


@pytest.mark.parametrize("seed", range(5))
def test_reexports_equal_project_functions_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    b1, b2 = random_boxes(rng, 7), random_boxes(rng, 5)
    masks1, masks2 = random_masks(rng, 4), random_masks(rng, 3)
    deltas = rng.normal(0, 0.2, (7, 4))
    cases = [
        ("compute_iou", (b1[0], b2)), ("compute_overlaps", (b1, b2)),
        ("compute_overlaps_masks", (masks1, masks2)), ("extract_bboxes", (masks1,)),
        ("non_max_suppression", (b1, rng.random(7), 0.3)),
        ("apply_box_deltas", (b1, deltas)), ("box_refinement", (b1[:5], b2)),
        ("norm_boxes", (b1, (100, 120))), ("denorm_boxes", (b1 / 100, (100, 120))),
        ("trim_zeros", (np.concatenate([b1, np.zeros((3, 4))]),)),
        ("generate_anchors", ([16], [0.5, 1, 2], (5, 6), 8, 1)),
        ("resize", (rng.random((9, 11)), (17, 5))),
        ("minimize_mask", (boxes.extract_bboxes(masks1), masks1, (14, 14))),
        ("compute_recall", (b1, b2, 0.3)),
    ]
    for name, args in cases:
        mine, project = getattr(utils, name)(*args), REEXPORTS[name](*args)
        for a, b in zip(np.atleast_1d(mine) if name != "compute_recall" else mine,
                        np.atleast_1d(project) if name != "compute_recall" else project):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("seed", range(20))
def test_box_functions_agree_with_matterport(seed):
    rng = np.random.default_rng(100 + seed)
    b1, b2 = random_boxes(rng, 30), random_boxes(rng, 6)
    np.testing.assert_allclose(utils.compute_overlaps(b1, b2), ref.compute_overlaps(b1, b2),
                               rtol=1e-12)
    areas = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area = (b2[0, 2] - b2[0, 0]) * (b2[0, 3] - b2[0, 1])
    np.testing.assert_allclose(utils.compute_iou(b2[0], b1, area, areas),
                               ref.compute_iou(b2[0], b1, area, areas), rtol=1e-12)
    deltas = rng.normal(0, 0.3, (30, 4)).astype(np.float32)
    np.testing.assert_allclose(utils.apply_box_deltas(b1, deltas),
                               ref.apply_box_deltas(b1, deltas), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(utils.norm_boxes(b1, (100, 90)), ref.norm_boxes(b1, (100, 90)),
                               rtol=1e-6)
    normalized = rng.random((30, 4)).astype(np.float32)
    assert np.abs(utils.denorm_boxes(normalized, (100, 90))
                  - ref.denorm_boxes(normalized, (100, 90))).max() <= 1  # float32 vs 64 rounding
    masks = random_masks(rng, 5)
    np.testing.assert_array_equal(utils.extract_bboxes(masks), ref.extract_bboxes(masks))
    np.testing.assert_allclose(utils.compute_overlaps_masks(masks, masks[..., :3]),
                               ref.compute_overlaps_masks(masks, masks[..., :3]), rtol=1e-6)
    recall, positives = utils.compute_recall(b1, b2, 0.2)
    ref_recall, ref_positives = ref.compute_recall(b1, b2, 0.2)
    assert recall == ref_recall
    np.testing.assert_array_equal(positives, ref_positives)


@pytest.mark.parametrize("seed", range(20))
def test_nms_equals_matterport_with_distinct_scores(seed):
    rng = np.random.default_rng(200 + seed)
    b = random_boxes(rng, 40, size=60)
    scores = rng.permutation(40) / 40.0  # all different
    np.testing.assert_array_equal(utils.non_max_suppression(b, scores, 0.4),
                                  ref.non_max_suppression(b, scores, 0.4))


def test_nms_tie_order_differs_from_matterport_on_purpose():
    # Two far-apart boxes and a third overlapping box 1, all with the same score.
    b = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [51, 51, 61, 61]], np.float32)
    scores = np.array([0.9, 0.9, 0.9])
    # The project keeps the earlier index among equal scores (tf.image.non_max_suppression's
    # order); matterport's reversed argsort starts from the last box.
    np.testing.assert_array_equal(utils.non_max_suppression(b, scores, 0.5), [0, 1])
    np.testing.assert_array_equal(ref.non_max_suppression(b, scores, 0.5), [2, 0])


def ap_case(rng, gt_count=4, pred_count=6):
    gt_masks = random_masks(rng, gt_count)
    pred_masks = np.concatenate([gt_masks[..., rng.integers(0, gt_count, pred_count - 2)],
                                 random_masks(rng, 2)], axis=-1)
    gt_class_ids = rng.integers(1, 3, gt_count)
    pred_class_ids = np.concatenate([gt_class_ids, gt_class_ids])[:pred_count]
    return (utils.extract_bboxes(gt_masks), gt_class_ids, gt_masks,
            utils.extract_bboxes(pred_masks), pred_class_ids,
            rng.permutation(pred_count) / pred_count + 0.01, pred_masks)


@pytest.mark.parametrize("seed", range(30))
def test_compute_ap_equals_matterport_unless_it_double_matched(seed):
    args = ap_case(np.random.default_rng(300 + seed))
    ap, precisions, recalls, overlaps = utils.compute_ap(*args)
    ref_ap, ref_precisions, ref_recalls, ref_overlaps = ref.compute_ap(*args)
    np.testing.assert_allclose(overlaps, ref_overlaps, rtol=1e-6)
    gt_match, pred_match, _ = ref.compute_matches(*args)
    matched = pred_match[pred_match > -1]
    if len(np.unique(matched)) == len(matched):  # matterport matched no GT twice: identical
        assert ap == pytest.approx(ref_ap, abs=1e-12)
        np.testing.assert_allclose(precisions, ref_precisions)
        np.testing.assert_allclose(recalls, ref_recalls)
    else:  # it counted a duplicate of the top prediction as a second true positive
        assert ap < ref_ap
        mine = evaluate.compute_matches(*args)[1]
        assert len(np.unique(mine[mine > -1])) == np.sum(mine > -1)


def test_duplicate_of_the_top_prediction_is_a_false_positive():
    rng = np.random.default_rng(7)
    gt_masks = random_masks(rng, 1)
    pred_masks = np.concatenate([gt_masks, gt_masks], axis=-1)  # the same object, twice
    args = (utils.extract_bboxes(gt_masks), np.array([1]), gt_masks,
            utils.extract_bboxes(pred_masks), np.array([1, 1]), np.array([0.9, 0.8]), pred_masks)
    _, pred_match, _ = utils.compute_matches(*args)
    np.testing.assert_array_equal(pred_match, [0, -1])
    np.testing.assert_array_equal(ref.compute_matches(*args)[1], [0, 0])  # matterport: twice
    assert utils.compute_ap(*args)[0] == pytest.approx(1.0)  # recall 1 reached at rank 1
    precisions = utils.compute_ap(*args)[1]
    np.testing.assert_allclose(precisions[1:-1], [1.0, 0.5])


def test_compute_ap_range_prints_by_default_as_matterport(capsys):
    args = ap_case(np.random.default_rng(9))
    thresholds = np.arange(0.5, 1.0, 0.05)
    mean_ap = utils.compute_ap_range(*args)
    assert mean_ap == evaluate.compute_ap_range(*args, verbose=0)
    assert mean_ap == pytest.approx(np.mean([evaluate.compute_ap(*args, iou_threshold=t)[0]
                                             for t in thresholds]), abs=1e-12)
    assert 0.0 < mean_ap < 1.0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and lines[0].startswith("AP @0.50:") and lines[-1].startswith(
        "AP @0.50-0.95:")
    assert utils.compute_ap_range(*args, iou_thresholds=[0.5], verbose=0) == \
        evaluate.compute_ap(*args)[0]


def test_empty_inputs_give_defined_values():
    empty_masks = np.zeros((40, 50, 0), bool)
    masks = random_masks(np.random.default_rng(1), 2)
    assert utils.compute_overlaps_masks(empty_masks, masks).shape == (0, 2)
    no_pred = (utils.extract_bboxes(masks), np.array([1, 2]), masks,
               np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), empty_masks)
    assert utils.compute_ap(*no_pred)[0] == 0.0
    assert utils.compute_recall(np.zeros((0, 4)), utils.extract_bboxes(masks), 0.5)[0] == 0.0


def test_resize_and_mold_mask():
    rng = np.random.default_rng(3)
    image = rng.random((9, 11))
    import skimage.transform

    np.testing.assert_array_equal(
        utils.resize(image, (20, 7)),
        skimage.transform.resize(image, (20, 7), order=1, mode="constant", cval=0, clip=True,
                                 preserve_range=False, anti_aliasing=False))

    class MaskShape:
        MASK_SHAPE = [28, 28]

    box_mask = np.zeros((14, 14), np.float32)
    box_mask[:, 7:] = 1.0
    molded = utils.mold_mask(box_mask, MaskShape())
    assert molded.shape == (28, 28) and molded.dtype == np.float32
    # Bilinear with cval 0 outside (matterport's resize): the outer ring blends with 0.
    np.testing.assert_allclose(molded[:, :13], 0.0)
    np.testing.assert_allclose(molded[1:-1, 15:-1], 1.0)
    np.testing.assert_allclose(molded[0, 15:-1], 0.75)
    assert utils.mold_mask(np.ones((5, 6, 3)), MaskShape()).shape == (28, 28, 3)


def test_box_refinement_graph_equals_numpy():
    rng = np.random.default_rng(4)
    b1, b2 = random_boxes(rng, 8), random_boxes(rng, 8)
    np.testing.assert_allclose(utils.box_refinement_graph(b1, b2).numpy(),
                               utils.box_refinement(b1, b2), rtol=1e-5, atol=1e-6)


def test_batch_slice_runs_a_per_image_function_over_the_batch():
    import tensorflow as tf

    values = tf.constant(np.arange(24, dtype=np.float32).reshape(3, 8))
    top, total = utils.batch_slice([values], lambda v: (tf.reduce_max(v), tf.reduce_sum(v)), 3)
    np.testing.assert_array_equal(top.numpy(), [7, 15, 23])
    np.testing.assert_array_equal(total.numpy(), [28, 92, 156])
    single = utils.batch_slice(values, lambda v: v[:2] * 2, 3)
    np.testing.assert_array_equal(single.numpy(), values.numpy()[:, :2] * 2)


def test_download_trained_weights_never_downloads(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(utils.COCO_WEIGHTS_ENV, raising=False)
    target = tmp_path / "logs" / "mask_rcnn_coco.h5"
    with pytest.raises(FileNotFoundError) as info:
        utils.download_trained_weights(str(target))
    message = str(info.value)
    assert str(target) in message and utils.COCO_WEIGHTS_ENV in message
    assert utils.COCO_MODEL_URL in message and not target.exists()

    source = tmp_path / "my_copy.h5"
    source.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    monkeypatch.setenv(utils.COCO_WEIGHTS_ENV, str(source))
    assert utils.download_trained_weights(str(target)) == str(target)
    assert target.read_bytes() == source.read_bytes()
    assert "Copying" in capsys.readouterr().out
    assert not os.path.exists(str(target) + ".partial")
    # Already there: nothing to do (not even with the variable pointing elsewhere).
    monkeypatch.setenv(utils.COCO_WEIGHTS_ENV, str(tmp_path / "gone.h5"))
    assert utils.download_trained_weights(str(target), verbose=0) == str(target)

    other = tmp_path / "other.h5"
    with pytest.raises(FileNotFoundError, match=r"MRCNN_COCO_WEIGHTS .*gone\.h5"):
        utils.download_trained_weights(str(other))
    not_hdf5 = tmp_path / "weights.txt"
    not_hdf5.write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        utils.download_trained_weights(str(other), source=str(not_hdf5))
    assert utils.download_trained_weights(str(other), verbose=0, source=str(source)) == str(other)


def test_dataset_subclass_loads_like_matterport(tmp_path):
    class Cells(utils.Dataset):
        def load_cells(self):
            self.add_class("cells", 1, "cell")
            self.add_class("cells", 2, "nucleus, inner")
            for i in range(3):
                self.add_image("cells", image_id=f"c{i}", path=None, height=8, width=9)

        def load_mask(self, image_id):
            mask = np.zeros((8, 9, 1), bool)
            mask[2:5, 3:7, 0] = True
            return mask, np.array([2], np.int32)

    cells = Cells()
    cells.load_cells()
    cells.prepare()
    assert cells.class_names == ["BG", "cell", "nucleus"]
    np.testing.assert_array_equal(cells.image_ids, [0, 1, 2])
    assert cells.map_source_class_id("cells.2") == 2
    np.testing.assert_array_equal(utils.extract_bboxes(cells.load_mask(1)[0]), [[2, 3, 5, 7]])
