"""Training panel: the log without TensorFlow's chatter ("show all" brings it back), the
checkpoint selection hint, and Continue training of a finished run (issue 19)."""

from mrcnn.train import parse_args
from test_training_panel import panel, write_past_run  # noqa: F401 (fixture)
from viewer.training.continue_run import can_continue, continue_request, trained_epochs
from viewer.training.log_view import LogFilter, filtered

# The start of a real `mrcnn train` stderr on a CPU machine (lines shortened).
TF_START = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796379298.200333   14700 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796379298.200716   14700 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796379303.525002   14700 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error",
    "I0000 00:00:1796379303.6   14700 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "2026-12-04 10:15:03,525 mrcnn.train INFO: distribution strategy: "
    "_DefaultDistributionStrategy with 1 replica(s)",
    "2026-12-04 10:15:08,234 py.warnings WARNING: /work/main/.venv/lib/python3.11/site-packages/"
    "keras/src/trainers/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed",
    "  self.data_adapter = data_adapters.get_data_adapter(",
    "2026-12-04 10:15:08,229 mrcnn.model INFO: training 21 layers (heads) from epoch 0 to 1",
    "Traceback (most recent call last):",
    '  File "/x/mrcnn/train.py", line 3, in main',
    "ValueError: bad",
    "F0000 00:00:1796379303.525002   14700 check.cc:1] fatal: stays",
]
KEPT = [TF_START[i] for i in (6, 9, 10, 11, 12, 13)]


def test_log_filter_keeps_the_runs_own_lines_and_tracebacks():
    assert filtered(TF_START) == KEPT
    log_filter = LogFilter()
    assert [log_filter.is_noise(line) for line in TF_START].count(True) == len(TF_START) - 6


def test_panel_log_hides_tensorflow_lines_unless_show_all(qtbot, panel, tmp_path):
    write_past_run(tmp_path / "runs", "logged", "stopped")
    panel.set_runs_root(tmp_path / "runs")
    record = panel.model.record(0)
    record.log.extend(TF_START[:8])
    panel.select_record(record)
    assert panel.log_view.toPlainText().splitlines() == [TF_START[6]]
    assert "7 TensorFlow lines hidden" in panel.log_box.title_label.text()
    for line in TF_START[8:]:  # live lines go through the same filter
        record._append_log(line)
    assert panel.log_view.toPlainText().splitlines() == KEPT
    panel.log_box.show_all.setChecked(True)
    assert panel.log_view.toPlainText().splitlines() == TF_START
    assert "hidden" not in panel.log_box.title_label.text()
    panel.log_box.show_all.setChecked(False)
    assert panel.log_view.toPlainText().splitlines() == KEPT


def test_checkpoint_list_says_how_to_select_two(panel):
    assert "Ctrl+click" in panel.checkpoint_hint.text()
    assert not panel.checkpoint_hint.isHidden()


def test_continue_training_extends_a_finished_run(qtbot, panel, tmp_path, monkeypatch):
    write_past_run(tmp_path / "runs", "done", "finished", steps=4, epochs=2)
    write_past_run(tmp_path / "runs", "halted", "stopped", steps=4, epochs=2)
    panel.set_runs_root(tmp_path / "runs")
    records = {r.name: r for r in panel.model.records}
    panel.select_record(records["halted"])
    assert not panel.continue_button.isEnabled()  # stopped: Resume, not Continue
    assert panel.resume_button.isEnabled()
    panel.select_record(records["done"])
    assert panel.continue_button.isEnabled() and not panel.resume_button.isEnabled()
    assert trained_epochs(records["done"]) == 2

    started = []
    monkeypatch.setattr(panel.model, "start", lambda request, *a: started.append(request)
                        or records["done"])
    panel.continue_selected(3)
    (request,) = started
    assert request.args[-2:] == ["--epochs", "5"] and "--resume" in request.args
    args = parse_args(request.args)  # what mrcnn train makes of it
    assert (args.resume, args.epochs) == (True, 5)
    assert args.run_dir == str(records["done"].path.resolve())
    assert "continued to epoch 5" in request.description


def test_continue_counts_from_the_last_whole_checkpoint(tmp_path, panel):
    write_past_run(tmp_path / "runs", "longer", "finished", steps=6, epochs=3)
    panel.set_runs_root(tmp_path / "runs")
    record = panel.model.record(0)
    record.planned_epochs = 2  # run.json from a stage before the last one
    assert trained_epochs(record) == 3
    assert continue_request(record, 1).args[-1] == "4"
    record.status = "stopped"
    assert not can_continue(record)


def test_runs_list_menu_offers_continue_for_a_finished_run(qtbot, panel, tmp_path, monkeypatch):
    from viewer.training import continue_run

    write_past_run(tmp_path / "runs", "done", "finished", steps=4, epochs=2)
    panel.set_runs_root(tmp_path / "runs")
    record = panel.model.record(0)
    panel.select_record(record)
    menu = continue_run.runs_menu(panel, record)
    actions = {a.text(): a for a in menu.actions()}
    assert not actions["Resume"].isEnabled() and actions["Continue training…"].isEnabled()
    monkeypatch.setattr("viewer.training.panel.ask_extra_epochs", lambda parent, r: 2)
    started = []
    monkeypatch.setattr(panel.model, "start", lambda request, *a: started.append(request)
                        or record)
    actions["Continue training…"].trigger()
    assert [r.args[-1] for r in started] == ["4"]  # 2 epochs done + 2 more
