"""mrcnn analyze: the dataset summary from hand-built diagnoses (numbers by hand), the report
files, the loop's failure / interrupt handling, bad input errors, and one real run."""

import json

import numpy as np
import pytest
from diagnose_builder import build_trace

from mrcnn import analyze as analyze_module
from mrcnn.analyze_cli import main
from mrcnn.analyze_report import FIGURES, write_report
from mrcnn.boxes import box_areas
from mrcnn.diagnose import diagnose
from mrcnn.diagnose.aggregate import ImageResult, summarize
from mrcnn.diagnose.geometry import box_iou

G0, G1 = [20, 20, 60, 60], [20, 40, 60, 80]
NAMES = ["BG", "a", "b"]
DEMO_WEIGHTS = "resources/demo/mask_rcnn_shapes_demo.h5"


def result(trace, image_id, ap50):
    det, gt = trace["detections"], trace["gt"]
    iou = box_iou(det["boxes"], gt["boxes"])
    return ImageResult(image_id, f"img{image_id}", diagnose(trace), ap50, iou, iou,
                       det["class_ids"], det["scores"], box_areas(det["boxes"]), gt["class_ids"])


@pytest.fixture
def results():
    # Image 0: G0 detected, G1 (same class, overlapping) lost to detection NMS.
    # Image 1: G0 (class 1) detected as class 2: wrong_class GT and wrong_class detection, plus
    #          a background detection of class 1 far away.
    first = build_trace([G0, G1], [0.9, 0.8], [G0, G1], [1, 1])
    far = [70, 70, 95, 95]

    def head(rois):
        probs = np.full((len(rois), 3), 0.05, np.float32)
        probs[:, 0] = 0.05
        for r, roi in enumerate(rois):
            probs[r, 2 if list(roi) == G0 else 1] = 0.9
        return probs, np.repeat(np.asarray(rois, np.float32)[:, None], 3, axis=1)

    second = build_trace([G0, far], [0.9, 0.8], [G0], [1], head=head)
    return [result(first, 0, 0.5), result(second, 1, 0.0)]


def test_summary_numbers(results):
    report = summarize(results, NAMES, max_proposals=50)
    assert (report["images"], report["gt"], report["detections"]) == (2, 3, 3)
    assert report["mAP50"] == 0.25
    causes = report["causes"]["counts"]
    assert (causes["detected"], causes["detection_nms"], causes["wrong_class"]) == (1, 1, 1)
    assert sum(causes.values()) == 3
    assert report["causes"]["shares"]["detected"] == pytest.approx(1 / 3)
    types = report["fp_types"]["counts"]
    assert (types["true_positive"], types["wrong_class"], types["background"]) == (1, 1, 1)
    assert report["per_class"]["a"]["gt"]["detection_nms"] == 1
    assert report["per_class"]["a"]["gt_shares"]["detection_nms"] == pytest.approx(1 / 3)
    assert report["per_class"]["b"]["detections"]["wrong_class"] == 1
    # Areas: G0 and G1 are 40 x 40 = 1600 px² boxes (medium); the far detection 25 x 25 (small).
    assert report["per_size"]["medium"]["gt"]["detected"] == 1
    assert report["per_size"]["small"]["detections"]["background"] == 1
    # Every GT has a covering proposal at post-NMS rank 0 or 1 (G1 is the second proposal).
    recall = dict(zip(report["rpn_recall"]["proposals"], report["rpn_recall"]["recall"]))
    assert recall[1] == pytest.approx(2 / 3) and recall[2] == 1.0 and recall[50] == 1.0
    # Rows GT class (0: none), columns predicted (0: missed).
    assert report["confusion"]["matrix"] == [[0, 1, 0], [1, 1, 1], [0, 0, 0]]
    assert [w["image_id"] for w in report["worst_images"]] == [1, 0]
    assert report["worst_images"][0]["causes"] == {"wrong_class": 1}
    # TIDE, boxes: class 1 has 3 GT and points TP 0.9, FP 0.9 (the far one, inserted later):
    # precision 1 up to recall 1/3 -> 34 of 101 grid points; class 2 has only a false positive:
    # AP 0. Mean over the two classes.
    assert report["dap"]["box"]["ap"] == pytest.approx((34 / 101 * 100 + 0) / 2)
    assert report["dap"]["box"]["counts"]["wrong_class"] == 1
    assert report["dap"]["box"]["dap"]["wrong_class"] > 0


def test_report_files(results, tmp_path):
    report = summarize(results, NAMES)
    report["interrupted"] = True
    path = write_report(report, tmp_path / "out")
    loaded = json.loads(path.read_text())
    assert loaded["causes"] == report["causes"] and loaded["interrupted"] is True
    for name in FIGURES:
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
        assert f'src="{name}"' in (tmp_path / "out" / "report.html").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "partial report" in html and "img1" in html
    # The per-class / size table: class "a" lost one object to detection NMS.
    assert "<th>detection_nms</th>" in html and "<td>a</td>" in html
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_empty_summary_is_valid(tmp_path):
    report = summarize([], NAMES)
    assert report["images"] == 0 and report["mAP50"] == 0.0
    assert report["causes"]["shares"]["detected"] == 0.0
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["gt"] == 0


class FakeDataset:
    """Three images; image 1 cannot be read."""

    image_ids = [0, 1, 2]
    class_names = NAMES
    num_classes = 3
    image_info = [{"path": f"/data/{i}.png"} for i in range(3)]

    def load_image(self, image_id):
        if image_id == 1:
            raise OSError("/data/1.png: truncated file")
        return np.zeros((100, 100, 3), np.uint8)

    def load_mask(self, image_id):
        masks = np.zeros((100, 100, 1), bool)
        masks[20:60, 20:60] = True
        return masks, np.array([1])


def test_loop_reports_failures_and_stops_on_interrupt(monkeypatch, results):
    calls = []

    def fake_analyze(model, image, gt, class_names, thresholds, image_id, reference, save):
        calls.append(image_id)
        assert gt["boxes"].tolist() == [G0] and gt["masks"].shape == (100, 100, 1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return results[0]

    monkeypatch.setattr(analyze_module, "analyze_image", fake_analyze)
    seen = []
    run = analyze_module.analyze_dataset(None, FakeDataset(), progress=lambda *a: seen.append(a[:2]))
    assert run.interrupted and calls == [0, 2] and len(run.results) == 1
    assert run.failures[0]["image_id"] == 1 and "truncated file" in run.failures[0]["error"]
    assert seen == [(1, 3), (2, 3)]
    stopped = analyze_module.analyze_dataset(None, FakeDataset(), should_stop=lambda: True)
    assert stopped.interrupted and stopped.results == [] and stopped.total == 3


def coco_files(tmp_path, categories=2, annotations=True, write_images=True):
    from PIL import Image

    images = [{"id": i, "file_name": f"{i}.png", "width": 32, "height": 32} for i in (1, 2)]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "area": 100,
             "iscrowd": 0, "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]}] if annotations else []
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, categories + 1)]
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                   "categories": cats}))
    (tmp_path / "img").mkdir()
    if write_images:
        for i in (1, 2):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "img" / f"{i}.png")
    return ["--json", str(tmp_path / "ann.json"), "--images", str(tmp_path / "img")]


def run_cli(capsys, tmp_path, args):
    code = main(["--weights", DEMO_WEIGHTS, "--config", "resources/demo/config.json",
                 "--out", str(tmp_path / "out"), *args])
    return code, capsys.readouterr().err


def test_class_count_mismatch(tmp_path, capsys):
    code, err = run_cli(capsys, tmp_path, coco_files(tmp_path, categories=2))
    assert code == 1
    assert "NUM_CLASSES=4" in err and "dataset has 3 classes" in err


def test_missing_images(tmp_path, capsys):
    code, err = run_cli(capsys, tmp_path, coco_files(tmp_path, categories=3, write_images=False))
    assert code == 1 and "2 of 2 images" in err and "missing" in err and "1.png" in err


def test_empty_gt(tmp_path, capsys):
    code, err = run_cli(capsys, tmp_path, coco_files(tmp_path, categories=3, annotations=False))
    assert code == 1 and "no ground-truth objects" in err


def test_missing_weights_via_mrcnn_cli(tmp_path, capsys):
    from mrcnn.cli import main as mrcnn_main

    code = mrcnn_main(["analyze", "--weights", str(tmp_path / "none.h5"), "--out", str(tmp_path)])
    assert code == 1 and "none.h5 does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_real_run_with_a_failing_image_then_ctrl_c(tmp_path, capsys, monkeypatch):
    real = analyze_module.analyze_image
    calls = []

    def flaky(model, image, gt, *args):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("broken image")
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(model, image, gt, *args)

    monkeypatch.setattr(analyze_module, "analyze_image", flaky)
    code, err = run_cli(capsys, tmp_path, ["--dataset", "shapes", "--shapes-count", "5",
                                           "--save-traces"])
    assert code == 130 and "partial report of 2 images" in err and "analyze [" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["interrupted"] and report["images"] == 2 and report["total_images"] == 5
    assert report["failures"][0]["image_id"] == 1 and "broken image" in report["failures"][0]["error"]
    assert sum(report["causes"]["counts"].values()) == report["gt"] > 0
    assert sum(report["fp_types"]["counts"].values()) == report["detections"]
    matrix = np.array(report["confusion"]["matrix"])
    assert matrix[1:].sum() == report["gt"]
    assert {w["image_id"] for w in report["worst_images"]} == {0, 2}
    from mrcnn.diagnose import Diagnosis
    from mrcnn.trace_data import Trace

    saved = Trace.load(tmp_path / "out" / "traces" / "000002.npz")
    record = next(w for w in report["worst_images"] if w["image_id"] == 2)
    assert Diagnosis.from_trace(saved).to_dict()["gt"] == record["diagnosis"]["gt"]
    assert (tmp_path / "out" / "report.html").is_file()


def test_progress_lines_when_not_a_terminal():
    import io

    from mrcnn.analyze_cli import Progress

    stream = io.StringIO()
    progress = Progress(stream)
    for done in range(1, 21):
        progress(done, 20, {"error": "x"} if done == 3 else None)
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == [f"{n}/20" for n in range(2, 21, 2)]
    assert lines[-1].startswith("analyze [" + "#" * 30 + "]") and "1 failed" in lines[-1]


@pytest.mark.slow
def test_weights_trained_for_another_class_count(tmp_path, capsys):
    config = json.loads(open("resources/demo/config.json").read())
    config["NUM_CLASSES"] = 3  # the dataset's 2 categories + BG; the demo weights have 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = main(["--weights", DEMO_WEIGHTS, "--config", str(tmp_path / "config.json"),
                 "--out", str(tmp_path / "out"), *coco_files(tmp_path, categories=2)])
    err = capsys.readouterr().err
    assert code == 1
    assert "were trained for 4 classes" in err and "the dataset have 3 (BG, c1, c2)" in err


@pytest.mark.slow
def test_unreadable_weights_file(tmp_path, capsys):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    code = main(["--weights", str(tmp_path / "bad.h5"), "--config", "resources/demo/config.json",
                 "--dataset", "shapes", "--shapes-count", "1", "--out", str(tmp_path / "out")])
    assert code == 1 and "bad.h5" in capsys.readouterr().err
