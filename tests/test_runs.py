"""Run directories (mrcnn.runs): index of good checkpoints, atomic JSON, metrics, stop requests."""

import json

import pytest

from mrcnn.runs import (RunDir, checkpoint_name, default_run_dir, read_json, resume_epoch,
                        write_json_atomic)


@pytest.fixture
def run(tmp_path):
    return RunDir(tmp_path / "run").create()


def test_checkpoint_names():
    assert checkpoint_name(1) == "epoch_0001.h5"
    assert checkpoint_name(12, 345) == "epoch_0012_step_0345.h5"


def test_default_run_dir_uses_name_and_timestamp(tmp_path):
    path = default_run_dir("Shapes", root=tmp_path)
    assert path.parent == tmp_path and path.name.startswith("shapes_")
    assert len(path.name) == len("shapes_20240101-120000")


def test_write_json_atomic_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_read_json_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(tmp_path / "bad.json")


def test_only_registered_checkpoints_are_good(run):
    assert run.checkpoints() == [] and run.last_checkpoint() is None
    first = run.checkpoint_path(1)
    first.write_bytes(b"weights")
    run.register_checkpoint(first, epoch=1, step=10)
    # A weights file written but not yet listed (killed before the index) is not good.
    run.checkpoint_path(2).write_bytes(b"half")
    assert [c["file"] for c in run.checkpoints()] == ["epoch_0001.h5"]
    last = run.last_checkpoint()
    assert last["epoch"] == 1 and last["step"] == 10 and not last["partial"]
    assert last["path"] == str(first)


def test_partial_checkpoint_and_resume_epoch(run):
    for epoch, step, partial in ((1, 5, False), (2, 7, True)):
        path = run.checkpoint_path(epoch, step if partial else None)
        path.write_bytes(b"w")
        run.register_checkpoint(path, epoch=epoch, step=step, partial=partial)
    last = run.last_checkpoint()
    assert last["file"] == "epoch_0002_step_0007.h5" and last["partial"]
    assert resume_epoch(last) == 1          # epoch 2 restarts from its beginning
    assert resume_epoch(run.checkpoints()[0]) == 1  # a whole epoch 1: the next is epoch 2
    index = json.loads(run.index_path.read_text())
    assert [e["file"] for e in index["checkpoints"]] == ["epoch_0001.h5", "epoch_0002_step_0007.h5"]


def test_deleted_checkpoint_file_is_not_offered(run):
    path = run.checkpoint_path(1)
    path.write_bytes(b"w")
    run.register_checkpoint(path, epoch=1, step=1)
    path.unlink()
    assert run.last_checkpoint() is None


def test_register_rejects_files_outside_the_run(run, tmp_path):
    other = tmp_path / "elsewhere.h5"
    other.write_bytes(b"w")
    with pytest.raises(ValueError, match="not inside"):
        run.register_checkpoint(other, epoch=1, step=1)


def test_run_json_status_updates_merge(run):
    run.update_run(args={"epochs": 2}, status="running")
    run.set_status("stopped", "received SIGTERM")
    record = run.read_run()
    assert record["args"] == {"epochs": 2}
    assert record["status"] == "stopped" and record["reason"] == "received SIGTERM"
    with pytest.raises(ValueError, match="status"):
        run.set_status("paused")


def test_metrics_skip_a_torn_last_line(run):
    run.append_metrics({"event": "step", "step": 1, "loss": 2.0})
    run.append_metrics({"event": "epoch", "epoch": 1, "loss": 1.5})
    with open(run.metrics_path, "a") as f:
        f.write('{"event": "step", "st')  # a killed writer
    assert [r["event"] for r in run.read_metrics()] == ["step", "epoch"]
    assert run.read_metrics("epoch") == [{"event": "epoch", "epoch": 1, "loss": 1.5}]


def test_stop_request_round_trip(run):
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested()
    run.clear_stop()
    assert not run.stop_requested()
