"""What the Training dock shows for a resumed run: the step count, the bar and the curves go on
where the stop left them (the events of a resumed ``mrcnn train`` continue the global step)."""

import pytest
from PySide6.QtCore import Qt

from mrcnn.runs import RunDir
from test_training_panel import REAL_RUN_TIMEOUT_MS, dialog_request, panel  # noqa: F401
from viewer.training.runs import RunRecord


def _step(step, epoch, loss):
    return {"event": "step", "step": step, "epoch": epoch, "loss": loss, "images_per_s": 2.0,
            "eta_s": 10.0}


def test_resumed_session_continues_label_bar_and_curves(qtbot, tmp_path):
    run = RunDir(tmp_path / "run").create()
    run.update_run(status="stopped", args={"epochs": 2, "layers": "heads"})
    for step in range(1, 85):  # the first session: stopped at step 84 of 600
        run.append_metrics(_step(step, 1, 100.0 / step))
    record = RunRecord(run.path)
    record.read_summary()
    curves = record.ensure_history()
    # The resumed session's events (mrcnn train --resume from epoch_0001_step_0084.h5).
    record._on_event({"event": "start", "epochs": 2, "initial_epoch": 0, "initial_step": 84,
                      "steps_per_epoch": 600, "layers": "heads"})
    record.status = "running"
    fraction, text = record.progress()
    assert fraction == 84 / 1200 and "resumed after step 84" in text
    for step in range(85, 201):
        record._on_event(_step(step, 1, 100.0 / step))
    fraction, text = record.progress()
    assert "epoch 1/2" in text and "step 200/1200" in text
    assert fraction == 200 / 1200
    xs, ys = curves.arrays("train", "loss")
    assert xs.tolist() == list(range(1, 201))  # the first session's 84 points are kept
    assert ys[83] == 100.0 / 84 and ys[199] == 100.0 / 200


def test_bar_after_a_whole_epoch_resume_counts_the_whole_run(qtbot, tmp_path):
    record = RunRecord(RunDir(tmp_path / "run").create().path)
    record._on_event({"event": "start", "epochs": 3, "initial_epoch": 1, "initial_step": 10,
                      "steps_per_epoch": 10})
    record._on_event(_step(15, 2, 1.0))
    fraction, text = record.progress()
    assert "step 15/30" in text and fraction == 0.5  # not 5 of this session's 20 steps


# ---- a real run, stopped and resumed from the panel --------------------------------------------

@pytest.mark.slow
def test_real_run_stopped_and_resumed_keeps_its_curve(qtbot, panel, settings, tmp_path):
    record = panel.start(dialog_request(qtbot, settings, tmp_path, "resumed"))
    steps = []
    record.process.stepEvent.connect(steps.append)
    qtbot.waitUntil(lambda: bool(steps), timeout=REAL_RUN_TIMEOUT_MS)
    with qtbot.waitSignal(record.process.exited, timeout=REAL_RUN_TIMEOUT_MS) as exited:
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert exited.args[0] == "stopped", record.process.log_tail()
    stopped_at = RunDir(record.path).last_checkpoint()["step"]
    assert stopped_at in (1, 2, 3)  # after the first step, wherever the stop landed

    panel.resume_selected()
    with qtbot.waitSignal(record.process.exited, timeout=REAL_RUN_TIMEOUT_MS) as exited:
        pass
    assert exited.args[0] == "finished", record.process.log_tail()
    xs, _ = record.curves.arrays("train", "loss")
    assert xs.tolist() == [1.0, 2.0, 3.0, 4.0]  # 2 epochs of 2 steps, each step once
    run = RunDir(record.path)
    assert [r["step"] for r in run.read_metrics("step")] == [1, 2, 3, 4]
    labels = [(c["epoch"], c["step"], c["partial"]) for c in run.checkpoints()]
    assert (1, 2, False) in labels and labels[-1] == (2, 4, False)
    assert [step for _, step, _ in labels] == sorted({step for _, step, _ in labels})
    assert "epoch 2/2" in panel.progress_label.text()
    assert "step 4/4" in panel.progress_label.text()
    assert panel.progress_bar.value() == 1000
