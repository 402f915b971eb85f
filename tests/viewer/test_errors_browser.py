"""Errors browser: rows of a small hand-made analysis report, their filters (counts worked out
by hand in the comments), opening a row at the stage that lost the object, and bad reports."""

import json

import pytest
from diagnose_builder import build_trace, oracle_head

from mrcnn.diagnose import Diagnosis, DetectionVerdict, GTVerdict
from viewer.diagnosis_view import diagnosis_of
from viewer.errors_data import (SHOW_ALL, SHOW_FALSE_POSITIVES, SHOW_MISSES, ReportError,
                                filter_rows, load_report)
from viewer.session import Selection

G0, G1 = [20, 20, 60, 60], [65, 65, 95, 95]
NAMES = ["BG", "a", "b"]


def low_score_trace():
    """GT 0 (a, 40x40 medium) found; GT 1 (b, 30x30 small) right class but score 0.5 < 0.7."""
    head = oracle_head([G0, G1], [1, 2], score=[0.9, 0.5])
    return build_trace([G0, G1, [0, 70, 25, 95]], [0.9, 0.8, 0.3], [G0, G1], [1, 2], head=head)


def hand_diagnosis():
    """Image 9: GT 0 wrong class (a, large), GT 1 low score (a, small); detection 0 wrong class
    (b -> GT 0, large), 1 background (a, small), 2 background (b, medium)."""
    return Diagnosis(
        gt=[GTVerdict(0, 1, "wrong_class", "heads/class_probs", size="large", area=10000,
                      details={"roi": 0, "roi_iou": 0.8, "predicted_prob": 0.7,
                               "gt_class_prob": 0.2, "predicted_class": 2}),
            GTVerdict(1, 1, "low_score", "heads/class_probs", size="small", area=400,
                      details={"roi": 1, "score": 0.4, "min_confidence": 0.7})],
        detections=[DetectionVerdict(0, 2, 0.9, "wrong_class", gt=0, box_iou=0.8),
                    DetectionVerdict(1, 1, 0.8, "background"),
                    DetectionVerdict(2, 2, 0.75, "background")])


@pytest.fixture
def report_path(tmp_path):
    trace = low_score_trace()
    diagnosis = diagnosis_of(trace)  # attached to the trace too
    traces = tmp_path / "traces"
    traces.mkdir()
    trace.save(traces / "000004.npz")
    records = [
        {"image_id": 9, "reference": "nine.png", "ap50": 0.0, "diagnosis": hand_diagnosis().to_dict(),
         "detection_areas": [10000.0, 100.0, 2000.0]},
        {"image_id": 4, "reference": "four.png", "ap50": 0.5, "diagnosis": diagnosis.to_dict(),
         "detection_areas": [1600.0]},
    ]
    report = {"images": 2, "gt": 4, "detections": 4, "mAP50": 0.25,
              "causes": {"counts": {"detected": 1, "low_score": 2, "wrong_class": 1}},
              "fp_types": {"counts": {"true_positive": 1, "wrong_class": 1, "background": 2}},
              "confusion": {"labels": NAMES, "matrix": []}, "worst_images": records,
              "traces_dir": str(traces), "interrupted": False, "failures": []}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_filters_count_the_right_rows(report_path):
    rows = load_report(report_path.parent).rows
    assert len(rows) == 8  # 4 GT + 4 detections
    count = lambda **kw: len(filter_rows(rows, **kw))  # noqa: E731
    assert count() == 6                       # 3 misses + 3 false positives
    assert count(show=SHOW_ALL) == 8
    assert count(show=SHOW_MISSES) == 3 and count(show=SHOW_FALSE_POSITIVES) == 3
    assert count(cause="low_score") == 2      # image 4 GT 1, image 9 GT 1
    assert count(cause="detected") == 1
    assert count(fp_type="background") == 2
    assert count(cause="low_score", fp_type="background") == 4
    assert count(class_name="a") == 3         # image 9: GT 0, GT 1, detection 1
    assert count(size="small") == 3           # image 4 GT 1; image 9 GT 1, detection 1 (100 px²)
    assert count(show=SHOW_ALL, size="medium") == 3  # image 4 GT 0 + det 0; image 9 det 2
    assert count(class_name="b", size="large") == 1  # image 9 detection 0
    (row,) = filter_rows(rows, cause="low_score", class_name="b")
    assert (row.image_id, row.kind, row.index, row.stage) == (4, "gt", 1, "roi_refinement")
    assert "DETECTION_MIN_CONFIDENCE" in row.explanation
    with pytest.raises(ValueError, match="unknown cause 'nope'"):
        filter_rows(rows, cause="nope")


def test_browser_filters_and_counts(qtbot, report_path):
    from viewer.errors_browser import ErrorsBrowser

    browser = ErrorsBrowser()
    qtbot.addWidget(browser)
    browser.set_report(load_report(report_path))
    assert browser.model.rowCount() == 6 and browser.count.text() == "6 of 8 rows"
    assert "2 images" in browser.title.text() and "3 missed" in browser.title.text()
    assert [browser.class_box.itemData(i) for i in range(browser.class_box.count())] == \
        [None, "a", "b"]
    browser.set_filters(cause="low_score")
    assert browser.model.rowCount() == 2
    browser.set_filters(cause=None, fp_type="background", size="medium")
    assert browser.model.rowCount() == 1
    assert browser.model.data(browser.model.index(0, 5)) == "background"
    browser.set_filters(show=SHOW_ALL, fp_type=None, size=None, class_name="a")
    assert browser.model.rowCount() == 5  # image 4: GT 0, det 0; image 9: GT 0, GT 1, det 1


def test_clicking_a_row_opens_its_trace_at_the_stage(window, qtbot, report_path):
    from PySide6.QtCore import Qt

    report = window.errors_actions.open_report(report_path)
    browser = window.errors_actions.browser
    assert report is not None and browser.isVisible()
    browser.set_filters(cause="low_score", class_name="b")
    rect = browser.view.visualRect(browser.model.index(0, 3))
    qtbot.mouseClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    session = window.session
    assert session.trace is not None and "gt" in session.trace
    assert session.stage == "roi_refinement" and session.selection == Selection("gt", 1)
    diagnosis_panel = window.panels["Diagnosis"]
    assert [i.row() for i in diagnosis_panel.gt_view.selectionModel().selectedRows()] == [1]


def test_bad_reports_say_why(tmp_path, window, dialogs):
    with pytest.raises(ReportError, match="no such file"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"images": 3}')
    with pytest.raises(ReportError, match="not an mrcnn analyze report"):
        load_report(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    assert window.errors_actions.open_report(tmp_path / "broken.json") is None
    assert dialogs and "not a readable JSON report" in dialogs[-1][1]


def test_report_option_opens_the_browser_without_the_demo(window, report_path):
    from viewer.app import build_parser, open_startup, startup_plan

    args = build_parser().parse_args(["--report", str(report_path.parent)])
    assert startup_plan(args) == (None, None, None)  # no demo model traced behind it
    open_startup(window, args)
    browser = window.errors_actions.browser
    assert browser.isVisible() and browser.model.rowCount() == 6


def test_row_without_trace_opens_the_dataset_image_at_its_stage(window, report_path,
                                                              monkeypatch):
    from viewer.datasets import DatasetSpec, load_dataset

    data = json.loads(report_path.read_text())
    data["traces_dir"] = None
    data["dataset"] = {"kind": "shapes", "count": 12, "height": 64, "width": 64, "seed": 2}
    report_path.write_text(json.dumps(data))
    (report_path.parent / "traces").rename(report_path.parent / "moved")
    opened, loaded = [], []
    monkeypatch.setattr(window.document, "open_dataset_image",
                        lambda row, spec=None: opened.append(row))
    monkeypatch.setattr(window.document, "open_dataset",
                        lambda spec, row=None, model=None: loaded.append((spec, row)))
    actions = window.errors_actions
    report = actions.open_report(report_path)
    (row,) = filter_rows(report.rows, cause="low_score", class_name="b")
    # The report's dataset is not open: it opens, then image 4 of it.
    actions.open_row(row)
    assert loaded == [(DatasetSpec("shapes", count=12, height=64, width=64, seed=2), 4)]
    assert window.document.pending_stage == "roi_refinement" and not opened
    # The same dataset already open: the image opens at once, by its image id.
    window.session.set_dataset(load_dataset(DatasetSpec("shapes", count=12, height=64,
                                                        width=64, seed=2)))
    actions.open_row(row)
    assert opened == [4] and len(loaded) == 1
