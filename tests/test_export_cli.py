"""`mrcnn export` bad input: exit code 2 and one specific line on stderr, no traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrcnn.export_cli import main, next_version

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"
WEIGHTS = str(DEMO / "mask_rcnn_shapes_demo.h5")


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("mrcnn export: error: ") and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_format_through_the_console_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mrcnn", "export", "--weights", WEIGHTS,
                           "--out", str(tmp_path / "out"), "--format", "tflite"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == ("mrcnn export: error: --format 'tflite' is not supported; "
                                   "expected one of savedmodel, onnx")
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_missing_and_foreign_weights_files(capsys, tmp_path):
    err = _error(capsys, ["--weights", str(tmp_path / "none.h5"), "--out", str(tmp_path)])
    assert f"weights file {tmp_path / 'none.h5'} does not exist" in err
    text_file = tmp_path / "notes.h5"
    text_file.write_text("not hdf5")
    err = _error(capsys, ["--weights", str(text_file), "--out", str(tmp_path)])
    assert str(text_file) in err and "not a readable HDF5 weights file" in err


def test_weights_that_do_not_fit_the_config(capsys, tmp_path):
    values = json.loads((DEMO / "config.json").read_text())
    values["TOP_DOWN_PYRAMID_SIZE"] = 32  # the demo weights have 64 FPN channels
    config = tmp_path / "config.json"
    config.write_text(json.dumps(values))
    err = _error(capsys, ["--weights", WEIGHTS, "--config", str(config),
                          "--out", str(tmp_path / "out")])
    assert "weights do not fit the config" in err and str(config) in err
    assert "fpn_c5p5" in err  # names a layer whose shapes differ
    assert not any((tmp_path / "out").iterdir())


def test_weights_missing_layers_of_the_model(capsys, tmp_path):
    values = json.loads((DEMO / "config.json").read_text())
    values["BACKBONE"] = "resnet34"  # more residual blocks than the resnet18 demo weights
    config = tmp_path / "config.json"
    config.write_text(json.dumps(values))
    err = _error(capsys, ["--weights", WEIGHTS, "--config", str(config),
                          "--out", str(tmp_path / "out")])
    assert "has no weights for" in err and "res3c_branch2a" in err and "random weights" in err


def test_output_folder_that_cannot_be_created(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    err = _error(capsys, ["--weights", WEIGHTS, "--out", str(blocker / "model")])
    assert err == (f"mrcnn export: error: --out {blocker / 'model'}: output folder cannot be "
                   f"written (Not a directory)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_output_folder(capsys, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        err = _error(capsys, ["--weights", WEIGHTS, "--out", str(folder)])
    finally:
        folder.chmod(0o700)
    assert "output folder cannot be written (Permission denied)" in err


def test_version_folders(capsys, tmp_path):
    assert next_version(tmp_path) == 1
    (tmp_path / "1").mkdir()
    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert next_version(tmp_path) == 4
    assert next_version(tmp_path, 2) == 2
    err = _error(capsys, ["--weights", WEIGHTS, "--out", str(tmp_path), "--version", "3"])
    assert "version folder 3 already exists" in err


def test_crop_mode_config_is_refused(capsys, tmp_path):
    values = json.loads((DEMO / "config.json").read_text())
    values.update(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=128)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(values))
    err = _error(capsys, ["--weights", WEIGHTS, "--config", str(config), "--out", str(tmp_path)])
    assert "IMAGE_RESIZE_MODE 'crop' cannot be exported" in err


def test_onnx_without_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    err = _error(capsys, ["--weights", WEIGHTS, "--out", str(tmp_path), "--format", "onnx"])
    assert "--format onnx needs tf2onnx" in err and "pip install 'mrcnn[onnx]'" in err
