"""``mrcnn trace IMAGE --gt COCO.json``: the demo model on a sample image with its annotations
saves a trace with ground truth and the diagnosis attached; bad --gt files are one-line errors."""

import json

import numpy as np
import pytest

from mrcnn import cli
from mrcnn.diagnose import Diagnosis, diagnose
from mrcnn.trace_data import Trace

SAMPLES = "resources/samples/shapes"
DEMO = "resources/demo/mask_rcnn_shapes_demo.h5"


@pytest.mark.slow
def test_trace_with_gt_attaches_the_diagnosis(tmp_path, capsys):
    out = tmp_path / "t"
    code = cli.main(["trace", f"{SAMPLES}/000005.png", "--weights", DEMO, "--out", str(out),
                     "--gt", f"{SAMPLES}/annotations.json", "--activations"])
    assert code == 0
    trace = Trace.load(out / "trace.npz")
    annotations = json.loads(open(f"{SAMPLES}/annotations.json").read())
    image_id = next(i["id"] for i in annotations["images"] if i["file_name"] == "000005.png")
    objects = [a for a in annotations["annotations"] if a["image_id"] == image_id
               and not a.get("iscrowd", 0)]
    assert len(trace["gt"]["class_ids"]) == len(objects) == 4
    # COCO bbox [x, y, w, h] vs the trace's [y1, x1, y2, x2] from the masks: within a pixel.
    coco_boxes = np.array([[b[1], b[0], b[1] + b[3], b[0] + b[2]]
                           for b in (a["bbox"] for a in objects)])
    assert np.abs(np.sort(trace["gt"]["boxes"], axis=0) - np.sort(coco_boxes, axis=0)).max() <= 1
    stored = Diagnosis.from_trace(trace)
    fresh = diagnose(trace)
    assert [v.cause for v in stored.gt] == [v.cause for v in fresh.gt]
    assert "targets/rpn" in trace
    printed = capsys.readouterr().out
    assert "diagnosis: detected " in printed and "; detections: true_positive " in printed


def test_gt_for_an_image_not_in_the_json(tmp_path, capsys):
    image = tmp_path / "elsewhere.png"
    image.write_bytes(open(f"{SAMPLES}/000001.png", "rb").read())
    code = cli.main(["trace", str(image), "--weights", DEMO, "--out", str(tmp_path / "t"),
                     "--gt", f"{SAMPLES}/annotations.json"])
    assert code == 2
    assert "no image named 'elsewhere.png' among its 8 images" in capsys.readouterr().err


def test_gt_read_from_coco_and_class_count_checked():
    from mrcnn.errors import DatasetError
    from mrcnn.trace_gt import check_class_count, coco_ground_truth

    gt = coco_ground_truth(f"{SAMPLES}/annotations.json", "any/folder/000005.png")
    assert gt["num_classes"] == 4 and gt["masks"].shape == (128, 128, 4)
    assert gt["boxes"].shape == (4, 4) and set(gt["class_ids"]) <= {1, 2, 3}
    check_class_count(gt, "a.json", 4)  # the demo model's 4 classes: fine
    with pytest.raises(DatasetError, match="has 4 classes including background but the model "
                                           "has NUM_CLASSES=3"):
        check_class_count(gt, "a.json", 3)
