"""Bad input to ``mrcnn train`` and ``mrcnn evaluate``: options, COCO sets, configs, run dirs.

Each case runs ``main(argv)`` in-process and asserts a non-zero exit, an ``error`` event (train)
or stderr line (evaluate) naming the option / file / field and what was expected, no
traceback, and no run directory or output left half-written. The dataset check runs before
TensorFlow starts, so those cases take milliseconds.
"""

import json
import signal
import sys

import pytest
from bad_input_files import (COCO_VARIANTS, TRACEBACK, assert_clean_failure,  # noqa: F401
                             bad_files, shared_models)

from mrcnn import evaluate_cli, train
from mrcnn.runs import RunDir

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def run_train(monkeypatch, capsys, shared_models):
    """``train.main(argv)`` in-process: (exit code, JSON events, stderr); signal handlers and
    stdout are restored afterwards."""
    monkeypatch.setattr(train, "_claim_stdout", lambda: sys.stdout)
    monkeypatch.delenv("MRCNN_DEBUG", raising=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def run(argv):
        code = train.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return code, events, err

    yield run
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def error_message(events) -> str:
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert len(errors) == 1, events
    assert events[-1]["event"] == "end" and events[-1]["status"] == "failed"
    return errors[0]


def assert_train_refused(result, expect, code_wanted=None, run_dir=None):
    code, events, err = result
    message = error_message(events)
    assert "\n" not in message
    # The event's message is the one line; stderr must not carry a traceback beside it.
    assert_clean_failure(code, f"error: {message}\n" + err, expect, [run_dir] if run_dir else (),
                         code_wanted=code_wanted)
    if run_dir is not None and RunDir(run_dir).exists():
        assert RunDir(run_dir).read_run()["status"] == "failed"


# ---- numeric options ---------------------------------------------------------------------------

OPTION_CASES = [
    ("--steps-per-epoch", "0", ">= 1"), ("--steps-per-epoch", "-1", ">= 1"),
    ("--epochs", "0", ">= 1"), ("--epochs", "-2", ">= 1"),
    ("--learning-rate", "0", "> 0"), ("--learning-rate", "-0.1", "> 0"),
    ("--learning-rate", "nan", "finite"), ("--learning-rate", "inf", "finite"),
    ("--validation-steps", "-1", ">= 0"), ("--shapes-train", "0", ">= 1"),
    ("--shapes-val", "-1", ">= 0"), ("--shapes-size", "0", "in 16..4096"),
    ("--shapes-size", "8", "in 16..4096"), ("--shapes-size", "100000", "in 16..4096"),
    ("--seed", "-1", "in 0.."), ("--precise-bn", "-1", ">= 0"),
]


@pytest.mark.parametrize("option,value,expect", OPTION_CASES)
def test_bad_numeric_option(run_train, tmp_path, option, value, expect):
    run_dir = tmp_path / "run"
    result = run_train(["--run-dir", run_dir, option, value])
    assert_train_refused(result, [option, expect, f"got {value}"], code_wanted=2)
    assert not run_dir.exists()


@pytest.mark.parametrize("argv,expect", [
    (["--epochs", "abc"], ["--epochs", "invalid int value"]),
    (["--learning-rate", "fast"], ["--learning-rate", "invalid float value"]),
    (["--resume"], ["--resume needs --run-dir"]),
    (["--dataset", "coco"], ["--dataset coco needs --train-json and --train-images"]),
    (["--dataset", "mnist"], ["--dataset", "invalid choice"]),
    (["--bogus"], ["unrecognized arguments", "--bogus"]),
])
def test_bad_usage(run_train, argv, expect):
    assert_train_refused(run_train(argv), expect, code_wanted=2)


def test_resume_of_a_run_that_does_not_exist(run_train, tmp_path):
    result = run_train(["--resume", "--run-dir", tmp_path / "nowhere"])
    assert_train_refused(result, ["--resume", "nowhere", "does not exist"], code_wanted=2)
    assert not (tmp_path / "nowhere").exists()


def test_run_dir_holding_a_run_needs_resume(run_train, tmp_path):
    run = RunDir(tmp_path / "run").create()
    run.update_run(status="finished")
    result = run_train(["--run-dir", run.path])
    assert_train_refused(result, ["--run-dir", "already holds a run", "--resume"], code_wanted=2)


@pytest.mark.parametrize("where,expect", [
    ("file", ["--run-dir", "plain.txt", "is a file"]),
    ("below_file", ["--run-dir", "plain.txt is a file", "cannot be created"]),
    ("read_only", ["--run-dir", "/proc", "not writable"]),
])
def test_run_dir_that_cannot_be_written(run_train, bad_files, where, expect):
    path = {"file": bad_files.plain_file, "below_file": bad_files.plain_file / "run",
            "read_only": "/proc/mrcnn_run"}[where]
    assert_train_refused(run_train(["--run-dir", path]), expect, code_wanted=2)


def test_val_json_without_images(run_train, bad_files, tmp_path):
    good = bad_files.coco.good
    result = run_train(["--train-json", good, "--train-images", good.parent,
                        "--val-json", good, "--run-dir", tmp_path / "run"])
    assert_train_refused(result, ["--val-json and --val-images go together"], code_wanted=2)


# ---- the dataset check -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(COCO_VARIANTS))
def test_bad_coco_set_is_refused_before_training(run_train, bad_files, tmp_path, name):
    json_path = bad_files.coco.variants[name]
    run_dir = tmp_path / "run"
    result = run_train(["--train-json", json_path, "--train-images", json_path.parent,
                        "--run-dir", run_dir])
    assert_train_refused(result, ["annotations.json"] + COCO_VARIANTS[name][1], code_wanted=1)
    assert not run_dir.exists()  # refused before the run directory was made


@pytest.mark.parametrize("name,expect", [
    ("not_json", ["not_json.json", "malformed JSON"]),
    ("a_list", ["list.json", "expected a JSON object"]),
    ("no_key", ["no_key.json", "missing required key", "categories"]),
])
def test_broken_coco_file(run_train, bad_files, tmp_path, name, expect):
    path = getattr(bad_files.coco, name)
    result = run_train(["--train-json", path, "--train-images", bad_files.coco.good.parent,
                        "--run-dir", tmp_path / "run"])
    assert_train_refused(result, expect)


@pytest.mark.parametrize("what", ["json_missing", "images_missing", "images_is_a_file"])
def test_missing_coco_paths(run_train, bad_files, tmp_path, what):
    good = bad_files.coco.good
    json_path = tmp_path / "nope.json" if what == "json_missing" else good
    images = {"images_missing": tmp_path / "no_images",
              "images_is_a_file": bad_files.plain_file}.get(what, good.parent)
    result = run_train(["--train-json", json_path, "--train-images", images,
                        "--run-dir", tmp_path / "run"])
    named = {"json_missing": "nope.json", "images_missing": "no_images",
             "images_is_a_file": "plain.txt"}[what]
    assert_train_refused(result, [named, "does not exist"])


def test_bad_validation_set_is_refused_too(run_train, bad_files, tmp_path):
    good, bad = bad_files.coco.good, bad_files.coco.variants["missing_image"]
    result = run_train(["--train-json", good, "--train-images", good.parent, "--val-json", bad,
                        "--val-images", bad.parent, "--run-dir", tmp_path / "run"])
    assert_train_refused(result, ["1 missing image", "--skip-bad"])


# ---- configs and initial weights -------------------------------------------------------------------

@pytest.mark.parametrize("name,expect", [
    ("max_dim_string", ["IMAGE_MAX_DIM", "expected a number", '"big"']),
    ("rate_string", ["LEARNING_RATE", "expected a number"]),
    ("backbone_unknown", ["BACKBONE", "resnet9"]),
    ("max_dim_100", ["IMAGE_MAX_DIM", "divisible by 64"]),
])
def test_bad_training_config(run_train, bad_files, tmp_path, name, expect):
    result = run_train(["--config", bad_files.configs.variants[name], "--shapes-train", "2",
                        "--shapes-val", "0", "--run-dir", tmp_path / "run"])
    assert_train_refused(result, expect, run_dir=tmp_path / "run")


def test_config_with_too_few_classes(run_train, bad_files, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"NUM_CLASSES": 2}))
    result = run_train(["--config", config, "--shapes-train", "2", "--run-dir", tmp_path / "r"])
    assert_train_refused(result, ["NUM_CLASSES is 2", "dataset has 4 classes"])


@pytest.mark.parametrize("name,expect", [
    ("foreign", ["foreign.h5", "dense_a", "Mask R-CNN layer"]),
    ("text", ["text.h5", "HDF5"]),
    ("missing", ["nope.h5", "does not exist"]),
    ("directory", ["is a directory"]),
    ("empty_hdf5", ["empty.h5", "layer_names"]),
])
def test_bad_init_weights(run_train, bad_files, tmp_path, name, expect):
    w = bad_files.weights
    path = {"missing": w.dir / "nope.h5", "directory": w.dir}.get(name) or getattr(w, name)
    run_dir = tmp_path / "run"
    result = run_train(["--init", path, "--run-dir", run_dir])
    assert_train_refused(result, ["--init"] + expect, code_wanted=2)
    assert not run_dir.exists()


def test_train_through_the_mrcnn_command(bad_files, tmp_path, monkeypatch, capsys):
    from mrcnn import cli

    monkeypatch.setattr(train, "_claim_stdout", lambda: sys.stdout)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = cli.main(["train", "--steps-per-epoch", "0", "--run-dir", str(tmp_path / "r")])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    assert code == 2 and TRACEBACK not in err
    assert "--steps-per-epoch must be >= 1, got 0" in out


# ---- evaluate ------------------------------------------------------------------------------------

def run_evaluate(argv, capsys):
    try:
        code = evaluate_cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def evaluate_args(f, out, *extra, data=None):
    data = data or f.coco.good
    return ["--weights", f.weights.good, "--config", f.weights.config, "--json", data,
            "--images", data.parent, "--out", out, *extra]


@pytest.mark.parametrize("extra,expect", [
    (["--limit", "0"], ["--limit", ">= 1", "got 0"]),
    (["--shapes-count", "0"], ["--shapes-count", ">= 1"]),
    (["--min-confidence", "2"], ["--min-confidence", r"in 0.0..1.0"]),
    (["--shapes-size", "4"], ["--shapes-size", "in 16..4096"]),
])
def test_evaluate_bad_options(bad_files, tmp_path, capsys, extra, expect):
    out = tmp_path / "r.json"
    code, err = run_evaluate(evaluate_args(bad_files, out, *extra), capsys)
    assert_clean_failure(code, err, ["mrcnn evaluate: error"] + expect, [tmp_path])
    assert not out.exists()


@pytest.mark.parametrize("name,expect", [
    ("no_images", ["no images"]), ("no_annotations", ["no instances"]),
    ("missing_image", ["1 missing image", "before evaluation"]),
    ("two_point_polygons", ["polygon < 3 points"]),
])
def test_evaluate_bad_or_empty_set(bad_files, tmp_path, capsys, name, expect):
    out = tmp_path / "r.json"
    data = bad_files.coco.variants[name]
    code, err = run_evaluate(evaluate_args(bad_files, out, data=data), capsys)
    assert_clean_failure(code, err, ["mrcnn evaluate: error", "annotations.json"] + expect,
                         [tmp_path])
    assert not out.exists()


@pytest.mark.parametrize("what,expect", [
    ("out_is_dir", ["--out", "is a directory"]),
    ("weights_missing", ["--weights", "nope.h5", "does not exist"]),
    ("images_missing", ["no_images", "does not exist"]),
    ("json_missing", ["nope.json", "does not exist"]),
    ("foreign_weights", ["foreign.h5", "only 0 of the model's", "dense_a"]),
])
def test_evaluate_bad_paths(bad_files, tmp_path, capsys, what, expect):
    f = bad_files
    argv = evaluate_args(f, tmp_path / "r.json")
    swap = {"out_is_dir": ("--out", tmp_path), "weights_missing": ("--weights", tmp_path / "nope.h5"),
            "images_missing": ("--images", tmp_path / "no_images"),
            "json_missing": ("--json", tmp_path / "nope.json"),
            "foreign_weights": ("--weights", f.weights.foreign)}[what]
    argv[argv.index(swap[0]) + 1] = swap[1]
    code, err = run_evaluate(argv, capsys)
    assert_clean_failure(code, err, ["mrcnn evaluate: error"] + expect, [tmp_path])
    assert not (tmp_path / "r.json").exists()
