"""mrcnn.checks and mrcnn.run_repair on their own: numbers checked by hand."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from bad_input_files import coco_set

from mrcnn import run_repair
from mrcnn.checks.config_types import check_field_types
from mrcnn.checks.dataset import load_checked_coco, summarize, Problem
from mrcnn.checks.errors import DatasetCheckError, OptionError
from mrcnn.checks.images import image_shape_problem
from mrcnn.checks.options import check_train_options
from mrcnn.config import Config, ConfigError
from mrcnn.runs import RunDir


def _args(**values):
    defaults = dict(epochs=1, steps_per_epoch=None, validation_steps=None, shapes_train=4,
                    shapes_val=0, shapes_size=128, precise_bn=0, seed=0, learning_rate=None)
    return SimpleNamespace(**{**defaults, **values})


def test_train_options_accept_the_edges_and_refuse_past_them():
    check_train_options(_args(steps_per_epoch=1, validation_steps=0, learning_rate=1e-9,
                              shapes_size=16, seed=2**32 - 1))
    for bad in (dict(steps_per_epoch=0), dict(shapes_size=15), dict(seed=2**32),
                dict(learning_rate=float("nan")), dict(validation_steps=-1)):
        with pytest.raises(OptionError):
            check_train_options(_args(**bad))


def test_image_shape_limits():
    assert image_shape_problem(8, 8) is None and image_shape_problem(8, 512) is None
    assert "at least 8 px" in image_shape_problem(7, 100)
    assert "65:1" in image_shape_problem(8, 520)  # 520 / 8 = 65 > 64


def test_config_types_name_the_field():
    with pytest.raises(ConfigError, match='^IMAGE_MAX_DIM: expected a number, got the string "big"$'):
        Config.from_dict({"IMAGE_MAX_DIM": "big"})
    # Right kinds pass: an int for a float field, a bool field given 0/1, a callable backbone.
    check_field_types(Config, {"LEARNING_RATE": 1, "TRAIN_BN": 0, "BACKBONE": len})


def test_dataset_check_counts_every_problem_and_skip_bad_drops_them(tmp_path):
    def edit(data, image_dir):
        os.remove(image_dir / "002.png")
        data["annotations"][0]["segmentation"] = [[1, 1, 9, 9]]          # 2 points
        data["annotations"][2]["bbox"] = [60, 60, 10, 10]                # outside 64x64
    path = coco_set(tmp_path, "set", images=4, edit=edit)
    with pytest.raises(DatasetCheckError) as caught:
        load_checked_coco(path, path.parent)
    kinds = sorted(p.kind for p in caught.value.problems)
    assert kinds == ["box outside image", "missing image", "polygon < 3 points"]
    dataset = load_checked_coco(path, path.parent, skip_bad=True)
    # Image 2 is gone (missing); annotations 11 (polygon) and 13 (box) are gone too; image 1
    # and 3 stay without instances, image 4 keeps its one.
    assert [info["id"] for info in dataset.image_info] == [1, 3, 4]
    assert [len(info["annotations"]) for info in dataset.image_info] == [0, 0, 1]
    assert dataset.image_info[0]["annotation_file"] == str(path)
    masks, class_ids = dataset.load_mask(2)
    assert masks.shape == (64, 64, 1) and masks.sum() == 400 and list(class_ids) == [1]


def test_skip_bad_that_leaves_no_instance_is_still_an_error(tmp_path):
    def edit(data, image_dir):
        for annotation in data["annotations"]:
            annotation["segmentation"] = [[1, 1, 9, 9]]
    path = coco_set(tmp_path, "set", images=2, edit=edit)
    with pytest.raises(DatasetCheckError, match="no instances .* after --skip-bad"):
        load_checked_coco(path, path.parent, skip_bad=True)


def test_summary_shows_counts_and_first_ids():
    problems = [Problem("missing image", "image", i, f"{i}.png") for i in range(1, 8)]
    assert summarize(problems) == ("7 missing image (image ids 1, 2, 3, 4, 5, ... (2 more); "
                                   "first: 1.png)")


def test_merge_resume_argv_keeps_each_option_once():
    saved = ["--epochs", "2", "--run-dir", "r", "--exclude", "a", "b"]
    merged = run_repair.merge_resume_argv(saved, ["--run-dir", "r", "--resume", "--epochs", "5"])
    assert merged == ["--exclude", "a", "b", "--run-dir", "r", "--epochs", "5"]
    for _ in range(20):
        merged = run_repair.merge_resume_argv(merged, ["--run-dir", "r", "--resume"])
    assert len(merged) == 7


def test_trim_redone_metrics_drops_records_after_the_restart_point(tmp_path):
    run = RunDir(tmp_path).create()
    for step in range(1, 7):
        run.append_metrics({"event": "step", "step": step, "epoch": (step - 1) // 2 + 1})
        if step % 2 == 0:
            run.append_metrics({"event": "epoch", "epoch": step // 2, "step": step})
    with open(run.metrics_path, "a") as f:
        f.write('{"event": "step", "ste')  # the torn line of a kill
    assert run_repair.trim_redone_metrics(run, initial_epoch=2, steps_per_epoch=2) == 4
    assert [r["step"] for r in run.read_metrics("step")] == [1, 2, 3, 4]
    assert [r["epoch"] for r in run.read_metrics("epoch")] == [1, 2]


def test_running_with_a_dead_pid_reads_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = RunDir(tmp_path).create()
    run.update_run(status="running", pid=dead.pid)
    assert run_repair.interrupted_status(run.read_run()) == "interrupted"
    assert run_repair.mark_interrupted(run) and run.read_run()["status"] == "interrupted"
    run.update_run(status="running", pid=os.getpid())
    assert run_repair.interrupted_status(run.read_run()) == "running"
    assert not run_repair.mark_interrupted(run)
    assert json.loads(run.run_json_path.read_text())["status"] == "running"


def test_resume_without_checkpoint_warns_and_marks_the_killed_session(tmp_path, caplog):
    from mrcnn.train import prepare_run

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = RunDir(tmp_path / "run").create()
    run.update_run(status="running", pid=dead.pid, argv=["--run-dir", str(run.path)])
    run_dir, entry = prepare_run(SimpleNamespace(resume=True, run_dir=str(run.path)))
    assert entry is None and run_dir.path == run.path
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no good checkpoint" in w for w in warnings), warnings
    assert any("interrupted" in w for w in warnings), warnings
    assert run.read_run()["status"] == "interrupted"


def test_truncated_images_are_found_by_decoding_small_sets(tmp_path, monkeypatch):
    from mrcnn.checks import dataset as checks_dataset

    def truncate(data, image_dir):
        png = image_dir / "001.png"
        png.write_bytes(png.read_bytes()[:-200])  # header intact, pixel data cut
    path = coco_set(tmp_path, "set", images=2, edit=truncate)
    data = json.loads(path.read_text())
    problems = checks_dataset.check_coco(data, path.parent)
    assert [(p.kind, p.record_id) for p in problems] == [("unreadable image", 1)]
    # Over FULL_DECODE_LIMIT only headers are read (documented): the cut file passes here.
    monkeypatch.setattr(checks_dataset, "FULL_DECODE_LIMIT", 1)
    assert checks_dataset.check_coco(data, path.parent) == []
