"""Train > Analyze dataset…: ``mrcnn analyze`` on the open shapes dataset with the demo model in a
child process, its progress, the report in the Errors browser, and cancel (a partial report)."""

import json

import pytest

from viewer.analyze_process import AnalyzeRequestError, analyze_command
from viewer.datasets import DatasetSpec, load_dataset
from viewer.errors_data import filter_rows
from viewer.workers import ModelSpec, demo_model_spec


def test_command_names_model_dataset_and_output(tmp_path):
    spec = ModelSpec(weights="w.h5", config="c.json")
    command = analyze_command(spec, DatasetSpec("shapes", count=7, height=96, width=96, seed=3),
                              tmp_path, limit=5)
    assert command[1:3] == ["-m", "mrcnn.analyze_cli"]
    text = " ".join(command[3:])
    assert text == (f"--weights w.h5 --config c.json --dataset shapes --shapes-count 7 "
                    f"--shapes-size 96 --seed 3 --limit 5 --out {tmp_path} --save-traces "
                    "--progress-every 1")
    coco = analyze_command(ModelSpec(weights="w.h5"), DatasetSpec("coco", annotations="a.json",
                                                                  image_dir="imgs"), tmp_path)
    assert coco[3:9] == ["--weights", "w.h5", "--json", "a.json", "--images", "imgs"]
    with pytest.raises(AnalyzeRequestError, match="Open a model first"):
        analyze_command(None, DatasetSpec("shapes"), tmp_path)
    with pytest.raises(AnalyzeRequestError, match="Open a dataset first"):
        analyze_command(spec, None, tmp_path)


def open_demo_on_shapes(window, count):
    window.document.model_spec = demo_model_spec()
    window.session.set_dataset(load_dataset(DatasetSpec("shapes", count=count, seed=5)))


@pytest.mark.slow
def test_analyze_action_reports_into_the_errors_browser(window, qtbot, tmp_path):
    open_demo_on_shapes(window, 3)
    actions = window.errors_actions
    seen = []
    assert actions.analyze_dataset(out_dir=tmp_path / "out")
    actions.process.progress.connect(lambda done, total: seen.append((done, total)))
    assert actions.browser.isVisible() and actions.browser.cancel_button.isVisible()
    qtbot.waitUntil(lambda: not actions.process.is_running(), timeout=180_000)
    qtbot.waitUntil(lambda: actions.browser.report is not None, timeout=5_000)
    assert seen[-1] == (3, 3) and not actions.browser.cancel_button.isVisible()
    report = actions.browser.report
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["images"] == 3 and data["dataset"] == {"kind": "shapes", "count": 3,
                                                       "height": 128, "width": 128, "seed": 5}
    assert data["weights_file"].endswith("mask_rcnn_shapes_demo.h5")
    # Every cause / type count of the report is a filter's row count in the browser.
    for cause, n in data["causes"]["counts"].items():
        assert len(filter_rows(report.rows, cause=cause)) == n, cause
    for fp_type, n in data["fp_types"]["counts"].items():
        assert len(filter_rows(report.rows, fp_type=fp_type)) == n, fp_type
    assert all(report.trace_file(i) is not None for i in range(3))
    # A row opens its saved trace, with the diagnosis, at the row's stage.
    row = next(r for r in report.rows if r.kind == "gt")
    actions.open_row(row)
    assert window.session.trace.meta.get("diagnosis") is not None
    assert window.session.selection.kind == "gt" and window.session.stage == row.stage


@pytest.mark.slow
def test_cancel_leaves_a_partial_report(window, qtbot, tmp_path):
    open_demo_on_shapes(window, 40)
    actions = window.errors_actions
    assert actions.analyze_dataset(out_dir=tmp_path / "out")
    progress = []
    actions.process.progress.connect(lambda done, total: progress.append(done))
    qtbot.waitUntil(lambda: len(progress) >= 2, timeout=180_000)
    actions.cancel()
    qtbot.waitUntil(lambda: not actions.process.is_running(), timeout=60_000)
    qtbot.waitUntil(lambda: actions.browser.report is not None, timeout=5_000)
    data = actions.browser.report.data
    assert data["interrupted"] is True and 2 <= data["images"] < 40
    assert data["total_images"] == 40
