"""Datasets in the viewer: ground truth from shapes / COCO (crowd left out), no TensorFlow,
the open-dataset dialog, and the window's dataset flow with injected model steps."""

import json
import os

import numpy as np
import pytest
import skimage.io
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from mrcnn.boxes import extract_bboxes
from viewer.datasets import DatasetImage, DatasetSpec, load_dataset
from viewer.dialogs.open_dataset import COCO_TAB, SHAPES_TAB, OpenDatasetDialog
from viewer.workers import TraceWorker


def _square(x, y, size):
    return [x, y, x + size, y, x + size, y + size, x, y + size]


@pytest.fixture
def coco_files(tmp_path):
    """A two-image COCO JSON: image 7 has a cat, a dog and a crowd region; image 9 nothing."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        skimage.io.imsave(images / name, np.full((40, 60, 3), 90, np.uint8), check_contrast=False)
    data = {
        "images": [{"id": 7, "file_name": "a.png", "height": 40, "width": 60},
                   {"id": 9, "file_name": "b.png", "height": 40, "width": 60}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "area": 100,
             "bbox": [10, 5, 10, 10], "segmentation": [_square(10, 5, 10)]},
            {"id": 2, "image_id": 7, "category_id": 5, "iscrowd": 0, "area": 64,
             "bbox": [30, 20, 8, 8], "segmentation": [_square(30, 20, 8)]},
            {"id": 3, "image_id": 7, "category_id": 5, "iscrowd": 1, "area": 36,
             "bbox": [45, 2, 6, 6], "segmentation": [_square(45, 2, 6)]},
        ],
    }
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(data))
    return str(annotations), str(images)


def test_shapes_ground_truth_matches_masks():
    dataset = load_dataset(DatasetSpec("shapes", count=4, height=64, width=80, seed=2))
    assert len(dataset) == 4 and dataset.class_names == ["BG", "square", "circle", "triangle"]
    masks, class_ids = dataset.dataset.load_mask(1)
    gt = dataset.ground_truth(1)
    np.testing.assert_array_equal(gt["masks"], masks)
    np.testing.assert_array_equal(gt["class_ids"], class_ids)
    np.testing.assert_array_equal(gt["boxes"], extract_bboxes(masks))
    assert gt["masks"].shape[:2] == (64, 80) and gt["boxes"].dtype == np.int32
    assert dataset.label(1).startswith("1: shapes 1 (") and dataset.image_path(1) is None
    image = DatasetImage(dataset, 1)
    assert image.load_image().shape == (64, 80, 3) and image.name == "shapes-2-1"


def test_coco_ground_truth_leaves_crowd_out(coco_files):
    annotations, images = coco_files
    dataset = load_dataset(DatasetSpec("coco", annotations=annotations, image_dir=images))
    assert dataset.class_names == ["BG", "cat", "dog"] and len(dataset) == 2
    assert dataset.label(0) == "0: a.png (3 objects)" and dataset.label(1) == "1: b.png (0 objects)"
    gt = dataset.ground_truth(0)
    assert gt["class_ids"].tolist() == [1, 2]  # the crowd dog (id 3) is not an object
    assert gt["masks"].shape == (40, 60, 2)
    # Pixel boxes [y1, x1, y2, x2] of the polygons (y2, x2 one past the last pixel).
    np.testing.assert_array_equal(gt["boxes"], extract_bboxes(gt["masks"]))
    assert abs(int(gt["boxes"][0][0]) - 5) <= 1 and abs(int(gt["boxes"][0][1]) - 10) <= 1
    empty = dataset.ground_truth(1)
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (40, 60, 0)
    assert dataset.image_path(0) == os.path.join(images, "a.png") and dataset.name(0) == "a.png"


@pytest.mark.parametrize("spec, problem", [
    (DatasetSpec("coco", annotations="nope.json", image_dir="."), "annotations file not found"),
    (DatasetSpec("shapes", count=0), "count must be at least 1"),
    (DatasetSpec("shapes", height=8), "at least 16x16"),
    (DatasetSpec("voc"), "unknown dataset kind"),
])
def test_dataset_spec_check_names_the_problem(spec, problem):
    with pytest.raises(ValueError, match=problem):
        spec.check()


def test_open_dataset_dialog(qtbot, coco_files):
    annotations, images = coco_files
    dialog = OpenDatasetDialog()
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.tabs.currentIndex() == COCO_TAB and not ok.isEnabled()
    assert "annotations file not found" in dialog.message.text()
    dialog.annotations_edit.setText(annotations)
    dialog.image_dir_edit.setText(images)
    assert ok.isEnabled() and dialog.spec() == DatasetSpec("coco", annotations, images)
    dialog.tabs.setCurrentIndex(SHAPES_TAB)
    dialog.count_box.setValue(5)
    dialog.size_box.setValue(96)
    dialog.seed_box.setValue(4)
    assert dialog.spec() == DatasetSpec("shapes", count=5, height=96, width=96, seed=4)
    again = OpenDatasetDialog(initial=dialog.spec())
    qtbot.addWidget(again)
    assert again.tabs.currentIndex() == SHAPES_TAB and again.spec() == dialog.spec()


class _Model:
    """Stands in for a loaded MaskRCNN: only its config's class count is read."""

    def __init__(self, num_classes):
        self.config = type("C", (), {"NUM_CLASSES": num_classes})()


def _factory(fake_trace, calls, num_classes=4):
    from mrcnn.trace_data import Trace

    def trace_fn(model, image, names, gt=None):
        calls.append({"image": image.shape, "names": names, "gt": gt})
        # A copy: the worker writes the image name into the trace's meta.
        return Trace(stages=dict(fake_trace.stages), meta=dict(fake_trace.meta))

    def factory(image_path, spec, model, names, source=None):
        return TraceWorker(image_path, spec, model or _Model(num_classes), names,
                           trace_fn=trace_fn, stats_fn=False, source=source,
                           load_model_fn=lambda s, step: (_Model(num_classes), None))
    return factory


def test_window_browses_a_dataset_and_traces_with_ground_truth(window, qtbot, fake_trace):
    from viewer.workers import ModelSpec

    calls = []
    window.document.worker_factory = _factory(fake_trace, calls)
    assert window.dataset_panel.stack.currentWidget() is window.dataset_panel.hint
    window.open_dataset(DatasetSpec("shapes", count=5, height=64, width=64, seed=1))
    qtbot.waitUntil(lambda: window.session.dataset is not None, timeout=10000)
    panel = window.dataset_panel
    assert panel.model.rowCount() == 5 and "5 images, 3 classes" in panel.title.text()

    window.document.model_spec = ModelSpec(weights="w.h5")
    window.document.model = _Model(4)
    index = panel.model.index(2)
    panel.list.scrollTo(index)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.list.visualRect(index).center())
    qtbot.waitUntil(lambda: len(calls) == 1 and not window.document.runner.is_busy(), timeout=10000)
    gt = window.session.dataset.ground_truth(2)
    np.testing.assert_array_equal(calls[0]["gt"]["boxes"], gt["boxes"])
    assert calls[0]["names"] == ["BG", "square", "circle", "triangle"]
    assert calls[0]["image"] == (64, 64, 3)
    assert window.session.dataset_row == 2 and window.document.model is not None
    assert window.session.trace.meta["image_name"] == "shapes-1-2"

    window.next_image(1)  # N walks the dataset
    qtbot.waitUntil(lambda: len(calls) == 2 and not window.document.runner.is_busy(), timeout=10000)
    assert window.session.dataset_row == 3 and panel.current_row() == 3


def test_dataset_classes_that_do_not_fit_the_model_trace_without_gt(window, qtbot, fake_trace):
    from viewer.workers import ModelSpec

    calls = []
    window.document.worker_factory = _factory(fake_trace, calls, num_classes=81)
    window.open_dataset(DatasetSpec("shapes", count=2), row=0, model=ModelSpec(weights="w.h5"))
    qtbot.waitUntil(lambda: len(calls) == 1 and not window.document.runner.is_busy(), timeout=10000)
    assert calls[0]["gt"] is None
    assert "ground truth not used" in window.status_label.text()
    assert "NUM_CLASSES is 81" in window.status_label.text()


def test_dataset_image_without_a_model_shows_its_ground_truth(window, qtbot):
    window.open_dataset(DatasetSpec("shapes", count=3, height=64, width=64, seed=5), row=1)
    qtbot.waitUntil(lambda: window.session.trace is not None
                    and not window.document.runner.is_busy(), timeout=10000)
    trace = window.session.trace
    gt = window.session.dataset.ground_truth(1)
    assert set(trace.stages) == {"input", "gt"} and trace.class_names[1:] == [
        "square", "circle", "triangle"]
    assert window.panels["Ground truth"].gt_table.rowCount() == len(gt["boxes"])
    assert window.canvas.curves["gt"].isVisible()
    assert "open a model" in window.status_label.text()
    assert window.detections_table.hint.isVisible()
