"""mrcnn.visualize with matterport's signatures: functions draw into the axes they are given
and return them; what they draw is checked (patches, texts, pixels)."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn import visualize

H, W = 64, 80
NAMES = ["BG", "square", "circle"]


def axes():
    return Figure(figsize=(4, 4)).subplots()


@pytest.fixture(scope="module")
def gt():
    boxes = np.array([[10, 20, 40, 60], [30, 5, 60, 30]], np.int32)
    masks = np.zeros((H, W, 2), bool)
    masks[10:40, 20:60, 0] = True
    masks[30:60, 5:30, 1] = True
    return boxes, masks, np.array([1, 2])


def image():
    out = np.full((H, W, 3), 60, np.uint8)
    out[10:40, 20:60] = 200
    return out


def painted(ax):
    """The RGB pixels the axes' image shows."""
    return np.asarray(ax.images[0].get_array())


def test_display_instances_draws_into_the_given_axes(gt):
    boxes, masks, class_ids = gt
    ax = axes()
    returned = visualize.display_instances(image(), boxes, masks, class_ids, NAMES,
                                           np.array([0.9, 0.8]), ax=ax, colors=[(1, 0, 0)] * 2,
                                           captions=["a", "b"])
    assert returned is ax and len(ax.patches) == 2
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    y1, x1, y2, x2 = boxes[0]
    rect = ax.patches[0]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (x1, y1, x2 - x1,
                                                                             y2 - y1)
    pixels = painted(ax)
    # Mask 0 tinted red at alpha 0.5: 200 * 0.5 + 255 * 0.5 in red, 200 * 0.5 elsewhere.
    np.testing.assert_allclose(pixels[20, 40], [227, 100, 100], atol=1)
    np.testing.assert_allclose(pixels[2, 2], [60, 60, 60])
    plain = axes()
    visualize.display_instances(image(), boxes, masks, class_ids, NAMES, ax=plain,
                                show_mask=False, show_bbox=False)
    assert len(plain.patches) == 0 and painted(plain)[20, 40].tolist() == [200, 200, 200]
    assert [t.get_text() for t in plain.texts] == ["square", "circle"]
    assert isinstance(visualize.display_instances(image(), boxes, masks, class_ids, NAMES),
                      Figure)


def test_display_differences_colours_gt_and_predictions(gt):
    boxes, masks, class_ids = gt
    # Predictions: a perfect copy of GT 0 (score 0.6) and a false positive (score 0.9).
    fp_mask = np.zeros((H, W, 1), bool)
    fp_mask[0:8, 70:80] = True
    ax = axes()
    returned = visualize.display_differences(
        image(), boxes, class_ids, masks, np.array([[10, 20, 40, 60], [0, 70, 8, 80]]),
        np.array([1, 1]), np.array([0.6, 0.9]), np.concatenate([masks[..., :1], fp_mask], -1),
        NAMES, ax=ax)
    assert returned is ax and len(ax.patches) == 4
    colours = [p.get_edgecolor()[:3] for p in ax.patches]
    assert colours == [(0, 1, 0)] * 2 + [(1, 0, 0)] * 2
    # Predictions in score order: the false positive first (IoU 0), then the match (IoU 1).
    assert [t.get_text() for t in ax.texts][2:] == ["0.90 / 0.00", "0.60 / 1.00"]


def test_draw_rois_draws_positive_rois_and_their_refinements():
    rois = np.array([[5, 5, 25, 25], [30, 30, 50, 70], [0, 0, 10, 10]], np.float32)
    refined = rois + 2
    masks = np.ones((3, 14, 14), np.float32)
    ax = axes()
    returned = visualize.draw_rois(image(), rois, refined, masks, np.array([1, 0, 2]), NAMES,
                                   ax=ax)
    assert returned is ax
    assert len(ax.patches) == 4  # two positive ROIs, dotted + solid each; background skipped
    assert ax.get_title() == "3 ROIs"
    assert [t.get_text() for t in ax.texts] == ["square", "circle"]
    ax = axes()
    visualize.draw_rois(image(), np.tile(rois, (5, 1)), np.tile(refined, (5, 1)),
                        np.ones((15, 14, 14)), np.ones(15, int), NAMES, limit=4, ax=ax)
    assert ax.get_title() == "Showing 4 random ROIs out of 15" and len(ax.patches) == 8


def test_draw_box_paints_in_place():
    canvas = np.zeros((20, 20, 3), np.uint8)
    out = visualize.draw_box(canvas, [2, 3, 12, 15], (255, 0, 0))
    assert out is canvas
    assert canvas[2, 5].tolist() == [255, 0, 0] and canvas[13, 5].tolist() == [255, 0, 0]
    assert canvas[7, 3].tolist() == [255, 0, 0] and canvas[7, 16].tolist() == [255, 0, 0]
    # Two 2x12 bands (top, bottom) and two 10x2 bands (left, right); the left band's top 2x2
    # corner is already painted by the top band.
    assert canvas[7, 8].tolist() == [0, 0, 0]
    assert np.count_nonzero(canvas[:, :, 0]) == 24 + 24 + 20 + 20 - 4


def test_draw_boxes_plot_precision_recall_and_overlaps_take_axes():
    ax = axes()
    assert visualize.draw_boxes(image(), boxes=np.array([[1, 1, 9, 9]]),
                                refined_boxes=np.array([[2, 2, 10, 10]]), ax=ax) is ax
    assert len(ax.patches) == 2 and len(ax.lines) == 1
    ax = axes()
    assert visualize.plot_precision_recall(0.75, np.array([0, 1, 0.5, 0]),
                                           np.array([0, 0.5, 0.5, 1]), ax=ax) is ax
    assert ax.get_title() == "Precision-Recall curve. AP@50 = 0.750"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 0.5, 0.5, 1])
    ax = axes()
    overlaps = np.array([[0.9, 0.1], [0.0, 0.6]])
    assert visualize.plot_overlaps([1, 2], [1, 1], [0.9, 0.8], overlaps, NAMES, ax=ax) is ax
    texts = [t.get_text() for t in ax.texts]
    assert "0.90\nmatch" in texts and "0.60\nwrong" in texts


def test_display_images_table_and_weight_stats_of_a_model():
    fig = visualize.display_images([image(), image()[..., 0]], titles=["rgb", "gray"], cols=2,
                                   cmap="gray")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["rgb", "gray"]
    markup = visualize.display_table([["WEIGHT NAME", "SHAPE"], ["conv1/kernel", "(7, 7, 3, 64)"]])
    assert markup == ("<table><tr><td>WEIGHT NAME</td><td>SHAPE</td></tr>"
                      "<tr><td>conv1/kernel</td><td>(7, 7, 3, 64)</td></tr></table>")
    import keras

    model = type("Model", (), {})()  # matterport's call passes the MaskRCNN: its keras_model
    model.keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc")])
    fig = visualize.display_weight_stats(model)
    assert isinstance(fig, Figure) and "2 weight tensors" in fig.axes[0].get_title()


def test_random_colors_and_apply_mask_keep_matterport_signatures():
    colors = visualize.random_colors(5, True)
    assert len(set(colors)) == 5 and all(max(c) == 1.0 for c in colors)
    mask = np.zeros((H, W), bool)
    mask[0:4, 0:4] = True
    tinted = visualize.apply_mask(image(), mask, (0, 0, 1), alpha=0.5)
    np.testing.assert_allclose(tinted[0, 0], [30, 30, 157.5])
    np.testing.assert_allclose(tinted[10, 10], [60, 60, 60])


def test_no_pyplot_needed():
    assert "matplotlib.pyplot" not in visualize.__dict__
    assert matplotlib.get_backend() is not None
