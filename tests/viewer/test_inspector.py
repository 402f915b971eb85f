"""Dataset inspector: every tab draws, and what it shows equals mrcnn's own numbers computed here
independently (load_image_gt boxes and mini-masks, build_rpn_targets match counts, load_mask
class counts, hflip geometry), for shapes (a viewer LoadedDataset) and a COCO JSON written here
(a bare mrcnn.data Dataset with a crowd region, a grayscale image and an image without objects).
"""

import json

import numpy as np
import pytest
import skimage.io
from PySide6.QtGui import QImage

from mrcnn.anchors import anchor_level_ids, get_anchors_pixels
from mrcnn.boxes import extract_bboxes
from mrcnn.data import CocoDataset
from mrcnn.data.pipeline import load_image_gt
from mrcnn.targets import NEGATIVE, NEUTRAL, POSITIVE, build_rpn_targets
from viewer.datasets import DatasetSpec, load_dataset
from viewer.inspector import DatasetInspector, compute_statistics, default_config

TAB_TITLES = ("Image", "Molded", "Augmentation", "Anchors", "Statistics")


def _square(x, y, size):
    return [x, y, x + size, y, x + size, y + size, x, y + size]


@pytest.fixture(scope="module")
def shapes():
    return load_dataset(DatasetSpec("shapes", count=6, height=128, width=128, seed=3))


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """Bare CocoDataset: rgb.png (cat, dog, crowd dog), gray.png (2-D gray, one dog), empty.png."""
    root = tmp_path_factory.mktemp("coco")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    skimage.io.imsave(images / "rgb.png", rng.integers(0, 255, (60, 80, 3), dtype=np.uint8),
                      check_contrast=False)
    skimage.io.imsave(images / "gray.png", np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)),
                      check_contrast=False)
    skimage.io.imsave(images / "empty.png", np.full((40, 40, 3), 70, np.uint8),
                      check_contrast=False)
    data = {
        "images": [{"id": 1, "file_name": "rgb.png", "height": 60, "width": 80},
                   {"id": 2, "file_name": "gray.png", "height": 48, "width": 64},
                   {"id": 3, "file_name": "empty.png", "height": 40, "width": 40}],
        "categories": [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 4, "iscrowd": 0, "area": 400,
             "bbox": [10, 8, 20, 20], "segmentation": [_square(10, 8, 20)]},
            {"id": 2, "image_id": 1, "category_id": 9, "iscrowd": 0, "area": 256,
             "bbox": [50, 30, 16, 16], "segmentation": [_square(50, 30, 16)]},
            {"id": 3, "image_id": 1, "category_id": 9, "iscrowd": 1, "area": 100,
             "bbox": [60, 2, 10, 10], "segmentation": [_square(60, 2, 10)]},
            {"id": 4, "image_id": 2, "category_id": 9, "iscrowd": 0, "area": 576,
             "bbox": [20, 12, 24, 24], "segmentation": [_square(20, 12, 24)]},
        ],
    }
    (root / "instances.json").write_text(json.dumps(data))
    dataset = CocoDataset()
    dataset.load_coco(str(root / "instances.json"), str(images))
    dataset.prepare()
    return dataset


@pytest.fixture
def open_inspector(qtbot, dialogs):
    """open_inspector(dataset, config=None) -> a shown inspector whose statistics are complete."""
    from PySide6.QtWidgets import QApplication

    windows = []

    def open_(dataset, config=None):
        window = DatasetInspector(dataset, config)
        window.resize(1100, 750)
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: window.statistics.complete, timeout=15000)
        QApplication.processEvents()
        windows.append(window)
        return window

    yield open_
    for window in windows:
        window.close()
        window.deleteLater()
    QApplication.processEvents()


def _gt(dataset, config, image_id, mini=False):
    """load_image_gt with full (or mini) masks, seeded as the inspector seeds it."""
    import copy

    config = copy.copy(config)
    config.USE_MINI_MASK = mini
    return load_image_gt(dataset, config, image_id, rng=np.random.default_rng(0))


# ---- structure -------------------------------------------------------------------------------

def test_default_config_fits_the_dataset(shapes, coco):
    config = default_config(shapes)
    assert config.NUM_CLASSES == 4
    assert config.IMAGE_MAX_DIM == config.IMAGE_MIN_DIM == 128
    assert tuple(config.RPN_ANCHOR_SCALES) == (8, 16, 32, 64, 128)  # matterport's ShapesConfig
    assert config.RPN_TRAIN_ANCHORS_PER_IMAGE == 256 and tuple(config.MINI_MASK_SHAPE) == (56, 56)
    coco_config = default_config(coco)  # longest side 80 -> 128
    assert coco_config.NUM_CLASSES == 3 and coco_config.IMAGE_MAX_DIM == 128


# ---- shapes: every tab against mrcnn -------------------------------------------------------

def test_every_tab_draws(shapes, open_inspector, tmp_path):
    window = open_inspector(shapes)
    assert window.current_row == 0
    for title in TAB_TITLES:
        tab = window.show_tab(title)
        assert not getattr(tab, "error", ""), f"{title}: {tab.error}"
        written = window.export_png(tmp_path / f"{title}.png")
        image = QImage(str(written))
        assert image.width() > 200 and image.height() > 150, title
    image_tab = window.tabs["Image"]
    gt = shapes.ground_truth(0)
    assert image_tab.image.image_item.image.shape == (128, 128, 3)
    assert image_tab.image.mask_item.isVisible()
    from viewer.inspector.graphics import instance_box_count

    assert instance_box_count(image_tab.image) == len(gt["class_ids"])
    names = [shapes.class_names[c] for c in gt["class_ids"]]
    assert image_tab.image.visible_labels() == [f"{i} {n}" for i, n in enumerate(names)]


def test_molded_tab_equals_load_image_gt(shapes, open_inspector):
    window = open_inspector(shapes)
    window.select_row(2)
    tab = window.show_tab("Molded")
    config = window.data.config
    full = _gt(shapes.dataset, config, 2)
    mini = _gt(shapes.dataset, config, 2, mini=True)
    np.testing.assert_array_equal(tab.molded.boxes, full.boxes)
    np.testing.assert_array_equal(tab.molded.boxes, mini.boxes)
    np.testing.assert_array_equal(tab.molded.class_ids, mini.class_ids)
    np.testing.assert_array_equal(tab.molded.masks, full.masks)
    np.testing.assert_array_equal(tab.molded.mini_masks, mini.masks)  # [56, 56, N]
    np.testing.assert_array_equal(tab.molded.image, full.image)
    # Expanded mini-masks lose a little detail, never whole objects.
    assert np.all(tab.molded.mini_iou > 0.8) and np.all(tab.molded.mini_iou <= 1.0)
    count = len(full.class_ids)
    assert tab.grid.image_item.image.shape[0] >= count * 56
    tab.mask_mode.setCurrentText("lost / added by mini-masks")
    assert not tab.error and tab.image.mask_item.isVisible()


def _expected_matches(dataset, config, image_id, seed=0):
    gt = _gt(dataset, config, image_id)
    anchors = get_anchors_pixels(config, gt.image.shape)
    match, rpn_bbox = build_rpn_targets(anchors, gt.class_ids, gt.boxes, config,
                                        np.random.default_rng(seed))
    return gt, anchors, match, rpn_bbox, anchor_level_ids(config, gt.image.shape)


def test_anchor_counts_equal_build_rpn_targets(shapes, open_inspector):
    window = open_inspector(shapes)
    window.select_row(1)
    tab = window.show_tab("Anchors")
    config = window.data.config
    gt, anchors, match, _, levels = _expected_matches(shapes.dataset, config, 1)
    for level in (None, 2, 3, 4, 5, 6):
        keep = np.ones(len(match), bool) if level is None else levels == level
        expected = {"positive": int(np.sum(match[keep] == POSITIVE)),
                    "negative": int(np.sum(match[keep] == NEGATIVE)),
                    "neutral": int(np.sum(match[keep] == NEUTRAL)), "total": int(keep.sum())}
        assert tab.counts(level) == expected, level
    assert tab.counts()["total"] == len(anchors) == 4092  # 128x128: 3 * (32^2 + ... + 2^2)
    assert tab.counts()["positive"] + tab.counts()["negative"] <= config.RPN_TRAIN_ANCHORS_PER_IMAGE

    # The drawn curves hold those anchors: four segments (eight points) per box.
    tab.set_level(3)
    assert tab.image.box_count("positive") == int(np.sum((match == POSITIVE) & (levels == 3)))
    assert tab.image.box_count("negative") == int(np.sum((match == NEGATIVE) & (levels == 3)))
    assert tab.image.box_count("neutral") == 0  # off by default
    tab.state_boxes["neutral"].setChecked(True)
    assert tab.image.box_count("neutral") == int(np.sum((match == NEUTRAL) & (levels == 3)))
    assert tab.image.box_count("gt") == len(gt.boxes)
    assert "P3" in tab.heading.text

    # Refined positives land on their GT boxes (the targets are exact deltas).
    tab.set_level(None)
    refined = tab.matches.refined
    assert len(refined) == tab.counts()["positive"] > 0
    distance = np.abs(refined[:, None, :] - gt.boxes[None].astype(np.float32)).max(axis=2)
    assert np.all(distance.min(axis=1) < 1e-3)
    assert tab.image.box_count("refined") == len(refined)


def test_anchor_seed_and_unsampled_matching(shapes, open_inspector):
    window = open_inspector(shapes)
    tab = window.show_tab("Anchors")
    config = window.data.config
    tab.seed_box.setValue(7)
    _, _, match, _, levels = _expected_matches(shapes.dataset, config, 0, seed=7)
    # Sampling keeps 256 - P negatives whatever the seed; which levels they sit on is random.
    per_level = [tab.counts(level)["negative"] for level in range(2, 7)]
    assert per_level == [int(np.sum((match == NEGATIVE) & (levels == level)))
                         for level in range(2, 7)]
    np.testing.assert_array_equal(tab.matches.match, match)
    tab.sample_box.setChecked(False)
    import copy

    unsampled = copy.copy(config)
    unsampled.RPN_TRAIN_ANCHORS_PER_IMAGE = 10 ** 6
    gt = _gt(shapes.dataset, config, 0)
    anchors = get_anchors_pixels(config, gt.image.shape)
    full_match, _ = build_rpn_targets(anchors, gt.class_ids, gt.boxes, unsampled)
    assert tab.counts()["negative"] == int(np.sum(full_match == NEGATIVE)) > 256
    assert tab.counts()["positive"] == int(np.sum(full_match == POSITIVE))


def test_statistics_equal_counts_from_masks(shapes, open_inspector):
    window = open_inspector(shapes)
    stats = window.statistics
    expected = np.zeros(4, int)
    per_image = []
    for image_id in shapes.dataset.image_ids:
        masks, class_ids = shapes.dataset.load_mask(image_id)
        expected += np.bincount(class_ids, minlength=4)
        per_image.append(len(class_ids))
        assert (stats.heights[image_id], stats.widths[image_id]) == masks.shape[:2]
    np.testing.assert_array_equal(stats.per_class()[1:], expected[1:])
    np.testing.assert_array_equal(stats.instances_per_image(), per_image)
    tab = window.show_tab("Statistics")
    table = {tab.table.item(r, 0).text(): int(tab.table.item(r, 1).text())
             for r in range(tab.table.rowCount())}
    assert table == {name: int(n) for name, n in zip(shapes.class_names[1:], expected[1:])}
    bars = tab.bars["classes"].opts["height"]
    np.testing.assert_array_equal(bars, expected[1:])
    assert not tab.progress.isVisible() and f"{sum(per_image)}</b> instances" in tab.summary.text()
    # The list shows the counted instances, and a class filter keeps exactly its images.
    assert window.list_model.data(window.list_model.index(3, 3)) == str(per_image[3])
    window.class_filter.setCurrentText("circle")
    rows = sorted(window.proxy.mapToSource(window.proxy.index(r, 0)).row()
                  for r in range(window.proxy.rowCount()))
    assert rows == [i for i in shapes.dataset.image_ids
                    if 2 in shapes.dataset.load_mask(i)[1]]


def test_augmentation_hflip_mirrors_boxes(shapes, open_inspector):
    window = open_inspector(shapes)
    tab = window.show_tab("Augmentation")
    assert not tab.error and len(tab.versions) == tab.versions_box.value()
    tab.set_augmentation("hflip=1")
    original = tab.original
    width = original.image.shape[1]
    assert len(tab.cells) == len(tab.versions) + 1
    for boxes, molded in zip(tab.version_boxes(), tab.versions):
        np.testing.assert_array_equal(molded.class_ids, original.class_ids)
        np.testing.assert_array_equal(boxes[:, [0, 2]], original.boxes[:, [0, 2]])
        np.testing.assert_array_equal(boxes[:, 1], width - original.boxes[:, 3])  # x1' = W - x2
        np.testing.assert_array_equal(boxes[:, 3], width - original.boxes[:, 1])
        np.testing.assert_array_equal(molded.image, original.image[:, ::-1])
    seeds = list(tab.seeds)
    tab.reroll()
    assert tab.seeds[0] == seeds[-1] + 1
    # A bad spec is reported and the last good one stays in use.
    tab.set_augmentation("hflip=1,spin=3")
    assert "spin" in tab.info.text() and tab.augmentation.hflip == 1.0
    tab.set_augmentation("none")
    assert tab.augmentation is None
    np.testing.assert_array_equal(tab.versions[0].boxes, original.boxes)


def test_selecting_another_image_updates_every_tab(shapes, open_inspector):
    window = open_inspector(shapes)
    for title in TAB_TITLES[:4]:
        window.show_tab(title)
    window.show_tab("Image")
    index = window.proxy.index(4, 0)
    window.list.setCurrentIndex(index)
    assert window.current_row == 4
    image = shapes.dataset.load_image(4)
    np.testing.assert_array_equal(window.tabs["Image"].gt.image, image)
    config = window.data.config
    gt, _, match, _, _ = _expected_matches(shapes.dataset, config, 4)
    for title in TAB_TITLES[:4]:
        tab = window.show_tab(title)
        assert tab.shown_row == 4 and "4: " in tab.heading.text, title
    np.testing.assert_array_equal(window.tabs["Molded"].molded.boxes, gt.boxes)
    np.testing.assert_array_equal(window.tabs["Augmentation"].original.boxes, gt.boxes)
    assert window.tabs["Anchors"].counts()["positive"] == int(np.sum(match == POSITIVE))
    window.next_action.trigger()
    assert window.current_row == 5 and window.tabs["Anchors"].shown_row == 5


# ---- COCO: crowd, grayscale, no instances --------------------------------------------------

def test_coco_statistics_count_crowd_apart(coco, open_inspector):
    window = open_inspector(coco)
    stats = window.statistics
    reference = compute_statistics(coco, coco.class_names)
    for row, image_id in enumerate(coco.image_ids):
        masks, class_ids = coco.load_mask(image_id)
        assert stats.instances[row, 1:].sum() == int(np.sum(class_ids > 0))
        assert stats.crowd[row] == int(np.sum(class_ids < 0))
    assert stats.per_class().tolist() == [0, 1, 2] == reference.per_class().tolist()
    assert stats.crowd.tolist() == [1, 0, 0]
    assert stats.size_counts() == [((40, 40), 1), ((48, 64), 1), ((60, 80), 1)]
    assert window.list_model.data(window.list_model.index(0, 3)) == "2 +1 crowd"
    assert window.list_model.data(window.list_model.index(1, 2)) == "64×48"
    labels = window.tabs["Image"].image.visible_labels()
    assert labels == ["0 cat", "1 dog", "2 crowd: dog"]


def test_grayscale_image_draws(coco, open_inspector):
    window = open_inspector(coco)
    window.select_row(1)
    for title in TAB_TITLES:
        tab = window.show_tab(title)
        assert not getattr(tab, "error", ""), f"{title}: {tab.error}"
    image_tab = window.tabs["Image"]
    assert image_tab.gt.image.shape == (48, 64, 3)
    assert np.array_equal(image_tab.gt.image[..., 0], image_tab.gt.image[..., 2])
    molded = window.tabs["Molded"].molded
    assert molded.image.shape == (128, 128, 3) and len(molded.class_ids) == 1
    np.testing.assert_array_equal(molded.boxes, extract_bboxes(molded.masks))


def test_image_without_instances(coco, open_inspector):
    window = open_inspector(coco)
    window.select_row(2)
    for title in TAB_TITLES:
        tab = window.show_tab(title)
        assert not getattr(tab, "error", ""), f"{title}: {tab.error}"
    assert "no instances" in window.tabs["Image"].heading.text
    assert window.tabs["Image"].info.text() == "This image has no instances."
    molded = window.tabs["Molded"].molded
    assert molded.boxes.shape == (0, 4) and molded.mini_masks.shape == (56, 56, 0)
    anchors = window.tabs["Anchors"]
    counts = anchors.counts()
    assert counts["positive"] == 0 and len(anchors.matches.refined) == 0
    assert counts["negative"] == window.data.config.RPN_TRAIN_ANCHORS_PER_IMAGE
    assert anchors.image.box_count("positive") == 0
    assert all(len(v.boxes) == 0 for v in window.tabs["Augmentation"].versions)


def test_export_failure_is_reported(shapes, open_inspector, dialogs, tmp_path):
    window = open_inspector(shapes)
    assert window.export_png(tmp_path / "missing" / "view.png") is None
    assert dialogs and dialogs[-1][0] == "Export failed" and "missing" in dialogs[-1][1]


def test_empty_dataset_and_many_image_sizes(shapes, open_inspector, qtbot):
    from mrcnn.data.dataset import Dataset
    from viewer.inspector import DatasetStatistics, InspectorData
    from viewer.inspector.statistics_tab import HISTOGRAM_BINS, StatisticsTab

    empty = Dataset()
    empty.add_class("things", 1, "thing")
    empty.prepare()
    window = open_inspector(empty)
    assert window.current_row is None and window.proxy.rowCount() == 0
    for title in TAB_TITLES:
        assert not getattr(window.show_tab(title), "error", "")
    assert window.statistics.summary()["images"] == 0

    # More distinct sizes than bars: a histogram of the longest side, counts kept.
    tab = StatisticsTab(InspectorData(shapes))
    qtbot.addWidget(tab)
    stats = DatasetStatistics.empty(30, shapes.class_names)
    for row in range(30):
        stats.add(row, 100 + row, 200 + 3 * row, [1, 2, 2])
        stats.done += 1
    tab.show_statistics(stats)
    sizes = tab.bars["sizes"].opts["height"]
    assert len(sizes) == HISTOGRAM_BINS and sizes.sum() == 30
    assert tab.size_plot.getAxis("bottom").labelText == "longest side (pixels)"
    np.testing.assert_array_equal(tab.bars["classes"].opts["height"], [30, 60, 0])
    assert tab.table.item(1, 1).text() == "60" and tab.table.item(1, 2).text() == "30"


def test_config_without_the_dataset_classes_is_reported_in_the_tabs(shapes, open_inspector):
    from mrcnn.config import Config

    config = Config.from_dict({"NUM_CLASSES": 2, "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128})
    window = open_inspector(shapes, config)
    assert not window.show_tab("Image").error  # the stored image needs no config
    for title in ("Molded", "Augmentation", "Anchors"):
        tab = window.show_tab(title)
        assert "NUM_CLASSES is 2" in tab.error and "NUM_CLASSES is 2" in tab.info.text(), title
        assert all(box.image_item.image is None for box in tab.image_boxes())
