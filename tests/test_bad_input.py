"""Bad input to ``mrcnn detect / trace / inspect-weights``: a table of cases, each one a clear
one-line error (naming the file / field / option and what was expected), a non-zero exit, no
traceback without --debug and nothing half-written. Inputs the README accepts must succeed.

Every case calls ``mrcnn.cli.main(argv)`` in-process; the files come from the session fixture
``bad_files`` (tests/bad_input_files.py). Most cases fail before a model is built; the few
that need one (non-finite or partial weights) build the tiny model.
"""

import json

import pytest
from bad_input_files import (CONFIG_VARIANTS, TRACEBACK, assert_clean_failure,  # noqa: F401
                             bad_files, shared_models)

from mrcnn import cli

# Per case; generous because the first case also builds the shared files (a tiny model) and
# the machine is shared. A hang fails the case instead of stalling the run.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch, shared_models):
    monkeypatch.delenv("MRCNN_DEBUG", raising=False)
    yield
    import os

    os.environ.pop("MRCNN_DEBUG", None)


def run(argv, capsys):
    """(exit code, stderr) of ``mrcnn argv``; argparse's SystemExit counts as its code."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


def detect(f, out, images=None, weights=None, config="default", extra=()):
    config = f.weights.config if config == "default" else config
    argv = ["detect", *(images or [f.images.good]), "--weights", weights or f.weights.good,
            "--out", out, *extra]
    return argv + (["--config", config] if config else [])


# ---- images ------------------------------------------------------------------------------------

IMAGE_CASES = {
    # name: (attribute of bad_files.images or a lambda, texts the error line names)
    "missing": (lambda i: i.dir / "nope.png", ["nope.png", "does not exist"]),
    "directory": (lambda i: i.dir, ["images", "is a directory", "expected a file"]),
    "zero_bytes": ("zero", ["zero.png", "cannot read"]),
    "text_as_png": ("text", ["text.png", "cannot read"]),
    "truncated_png": ("truncated", ["truncated.png", "cannot read"]),
    "random_jpeg": ("noise_jpg", ["noise.jpg", "cannot read"]),
    "one_pixel": ("one", ["one.png", "1x1", "at least 8"]),
    "1x5000": ("wide", ["wide.png", "1x5000", "at least 8"]),
    "5000x1": ("tall", ["tall.png", "5000x1", "at least 8"]),
    "4x4": ("tiny4", ["tiny4.png", "4x4", "at least 8"]),
    "five_channels": ("five_channels", ["five.tif", "channel"]),
    "npy_file": ("npy", ["array.png.npy"]),
}


def _image(f, spec):
    return spec(f.images) if callable(spec) else getattr(f.images, spec)


# trace shares detect's image reader: a subset runs for it.
TRACE_IMAGE_CASES = ("missing", "directory", "one_pixel", "truncated_png", "1x5000")


@pytest.mark.parametrize("command,name", [("detect", n) for n in IMAGE_CASES]
                         + [("trace", n) for n in TRACE_IMAGE_CASES])
def test_bad_image(bad_files, tmp_path, capsys, command, name):
    spec, expect = IMAGE_CASES[name]
    out = tmp_path / "out"
    image = _image(bad_files, spec)
    argv = detect(bad_files, out, [image]) if command == "detect" else \
        ["trace", image, "--weights", bad_files.weights.good, "--config",
         bad_files.weights.config, "--out", out]
    code, err = run(argv, capsys)
    assert_clean_failure(code, err, [f"mrcnn {command}: error"] + expect, [tmp_path])
    assert not out.exists()  # nothing written for a run that could not start


def test_one_bad_image_among_good_ones_writes_nothing(bad_files, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(detect(bad_files, out, [bad_files.images.good, bad_files.images.truncated]),
                    capsys)
    assert_clean_failure(code, err, ["truncated.png"], [tmp_path])
    assert not out.exists()


# ---- weights -----------------------------------------------------------------------------------

WEIGHTS_CASES = {
    "missing": (lambda w: w.dir / "nope.h5", ["nope.h5", "does not exist"]),
    "directory": (lambda w: w.dir, ["weights", "is a directory", "expected a file"]),
    "zero_bytes": ("zero", ["zero.h5", "not a readable HDF5"]),
    "text": ("text", ["text.h5", "not a readable HDF5"]),
    "truncated": ("truncated", ["truncated.h5", "HDF5"]),
    "empty_hdf5": ("empty_hdf5", ["empty.h5", "layer_names"]),
    "keras3_file": ("keras3", ["model.weights.h5", "not a Keras-2", "layer_names"]),
    "no_layers": ("no_layers", ["no_layers.h5", "no weights"]),
    "foreign_model": ("foreign", ["foreign.h5", "dense_a", "Mask R-CNN layer"]),
}


# Without --config the config is inferred from the weights file: a subset runs that way too.
INFERRED_CASES = ("foreign_model", "empty_hdf5", "no_layers", "directory")


@pytest.mark.parametrize("name,with_config", [(n, True) for n in WEIGHTS_CASES]
                         + [(n, False) for n in INFERRED_CASES])
def test_bad_weights_detect(bad_files, tmp_path, capsys, name, with_config):
    spec, expect = WEIGHTS_CASES[name]
    weights = spec(bad_files.weights) if callable(spec) else getattr(bad_files.weights, spec)
    out = tmp_path / "out"
    code, err = run(detect(bad_files, out, weights=weights,
                           config="default" if with_config else None), capsys)
    assert_clean_failure(code, err, ["mrcnn detect: error"] + expect, [tmp_path],
                         code_wanted=2)
    assert not out.exists()


@pytest.mark.parametrize("name", ["missing", "directory", "text", "truncated", "empty_hdf5",
                                  "keras3_file"])
def test_bad_weights_inspect(bad_files, capsys, name):
    spec, expect = WEIGHTS_CASES[name]
    weights = spec(bad_files.weights) if callable(spec) else getattr(bad_files.weights, spec)
    code, err = run(["inspect-weights", weights], capsys)
    assert_clean_failure(code, err, ["mrcnn inspect-weights: error"] + expect, code_wanted=2)


@pytest.mark.parametrize("name", ["foreign_model", "missing", "no_layers"])
def test_bad_weights_trace(bad_files, tmp_path, capsys, name):
    spec, expect = WEIGHTS_CASES[name]
    weights = spec(bad_files.weights) if callable(spec) else getattr(bad_files.weights, spec)
    code, err = run(["trace", bad_files.images.good, "--weights", weights, "--out",
                     tmp_path / "t"], capsys)
    assert_clean_failure(code, err, ["mrcnn trace: error"] + expect, [tmp_path])


@pytest.mark.parametrize("name,expect", [
    ("nan", ["nan.h5", "NaN or Inf", "mrcnn_class_logits", "--allow-nonfinite"]),
    ("inf", ["inf.h5", "NaN or Inf", "mrcnn_mask"]),
    ("partial", ["partial.h5", r"only 2 of the model's \d+ layers", "not in the file"]),
])
def test_weights_that_load_badly_are_refused(bad_files, tmp_path, capsys, name, expect):
    out = tmp_path / "out"
    code, err = run(detect(bad_files, out, weights=getattr(bad_files.weights, name)), capsys)
    assert_clean_failure(code, err, ["mrcnn detect: error"] + expect, [tmp_path], code_wanted=2)
    assert not out.exists()


def test_allow_nonfinite_loads_with_a_loud_warning(bad_files, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(detect(bad_files, out, weights=bad_files.weights.nan,
                           extra=["--allow-nonfinite"]), capsys)
    assert code == 0, err[-2000:]
    assert "WARNING" in err and "nan.h5" in err and "NaN or Inf" in err
    assert json.loads((out / "detections.json").read_text())["images"]


def test_debug_shows_the_traceback(bad_files, tmp_path, capsys):
    code, err = run(detect(bad_files, tmp_path / "o", weights=bad_files.weights.foreign)
                    + ["--debug"], capsys)
    assert code == 2 and TRACEBACK in err and "foreign.h5" in err.splitlines()[-1]


# ---- configs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIG_VARIANTS))
def test_bad_config_field(bad_files, tmp_path, capsys, name):
    config = bad_files.configs.variants[name]
    out = tmp_path / "out"
    code, err = run(detect(bad_files, out, config=config), capsys)
    assert_clean_failure(code, err, ["mrcnn detect: error"] + CONFIG_VARIANTS[name][1],
                         [tmp_path], code_wanted=2)
    assert not out.exists()


@pytest.mark.parametrize("name,expect", [
    ("not_json", ["not_json.json", "not valid JSON"]),
    ("a_list", ["list.json", "expected a JSON object"]),
    ("empty", ["empty.json", "not valid JSON"]),
    ("missing", ["nope.json", "not found"]),
    ("directory", ["configs", "is a directory|not found"]),
])
def test_bad_config_file(bad_files, tmp_path, capsys, name, expect):
    c = bad_files.configs
    config = {"missing": c.dir / "nope.json", "directory": c.dir}.get(name) or getattr(c, name)
    code, err = run(detect(bad_files, tmp_path / "out", config=config), capsys)
    assert_clean_failure(code, err, ["mrcnn detect: error"] + expect, [tmp_path], code_wanted=2)


# ---- options and output folders -------------------------------------------------------------------

def test_out_is_a_file(bad_files, tmp_path, capsys):
    code, err = run(detect(bad_files, bad_files.plain_file), capsys)
    assert_clean_failure(code, err, ["--out", "plain.txt", "is a file", "expected a directory"])


def test_out_below_a_file(bad_files, capsys):
    code, err = run(detect(bad_files, bad_files.plain_file / "sub"), capsys)
    assert_clean_failure(code, err, ["--out", "plain.txt is a file", "cannot be created"])


def test_out_read_only(bad_files, capsys):
    # /proc refuses new files even to root (a chmod 555 folder does not stop root).
    code, err = run(detect(bad_files, "/proc/mrcnn_out"), capsys)
    assert_clean_failure(code, err, ["--out", "/proc", "not writable"], code_wanted=2)


@pytest.mark.parametrize("command,dpi", [("detect", "0"), ("detect", "-3"),
                                         ("detect", "100000"), ("trace", "0"), ("trace", "-3")])
def test_bad_dpi(bad_files, tmp_path, capsys, command, dpi):
    argv = detect(bad_files, tmp_path / "o", extra=["--dpi", dpi]) if command == "detect" else \
        ["trace", bad_files.images.good, "--weights", bad_files.weights.good, "--dpi", dpi,
         "--out", tmp_path / "o"]
    code, err = run(argv, capsys)
    assert_clean_failure(code, err, ["--dpi", "must be in 1..1200", f"got {dpi}"], [tmp_path])


@pytest.mark.parametrize("argv_tail,expect", [
    (["--dpi", "abc"], ["--dpi", "invalid int value"]),
    (["--frobnicate"], ["unrecognized arguments", "--frobnicate"]),
])
def test_argparse_errors_are_one_line(bad_files, tmp_path, capsys, argv_tail, expect):
    code, err = run(detect(bad_files, tmp_path / "o", extra=argv_tail), capsys)
    assert_clean_failure(code, err, expect, code_wanted=2)


def test_detect_without_weights_or_image(bad_files, tmp_path, capsys):
    code, err = run(["detect", bad_files.images.good, "--out", tmp_path], capsys)
    assert_clean_failure(code, err, ["--weights", "required"], code_wanted=2)
    code, err = run(["detect", "--weights", bad_files.weights.good, "--out", tmp_path], capsys)
    assert_clean_failure(code, err, ["IMAGE", "required"], code_wanted=2)


@pytest.mark.parametrize("name,expect", [
    ("missing", ["nope.txt", "does not exist"]),
    ("directory", ["is a directory"]),
    ("classes_bad_json", ["classes.json", "not a valid JSON list"]),
])
def test_bad_class_names_file(bad_files, tmp_path, capsys, name, expect):
    path = {"missing": bad_files.root / "nope.txt", "directory": bad_files.root}.get(name) or \
        getattr(bad_files, name)
    code, err = run(detect(bad_files, tmp_path / "o", extra=["--class-names", path]), capsys)
    assert_clean_failure(code, err, ["--class-names|class names"] + expect, [tmp_path])


def test_wrong_class_name_count(bad_files, tmp_path, capsys):
    code, err = run(detect(bad_files, tmp_path / "o",
                           extra=["--class-names", bad_files.classes_two]), capsys)
    assert_clean_failure(code, err, ["two_classes.txt", "2 class names for NUM_CLASSES=4",
                                     "expected 3"], [tmp_path])
    assert not (tmp_path / "o").exists()


def test_trace_unknown_activation_layer(bad_files, tmp_path, capsys):
    code, err = run(["trace", bad_files.images.good, "--weights", bad_files.weights.good,
                     "--config", bad_files.weights.config, "--activations", "no_such_layer",
                     "--out", tmp_path / "t"], capsys)
    assert_clean_failure(code, err, ["no_such_layer"], [tmp_path])


# ---- accepted inputs: must succeed ----------------------------------------------------------------

@pytest.fixture(scope="module")
def accepted_run(bad_files, shared_models, tmp_path_factory):
    """Detect over the accepted image kinds (gray+alpha on its own): {image path: record}."""
    out = tmp_path_factory.mktemp("accepted")
    accepted = dict(bad_files.images.accepted)
    groups = [[p for n, p in accepted.items() if n != "gray_alpha"], [accepted["gray_alpha"]]]
    results = {}
    for index, group in enumerate(groups):
        folder = out / str(index)
        if cli.main([str(a) for a in detect(bad_files, folder, group)]) == 0:
            document = json.loads((folder / "detections.json").read_text())
            results.update({r["image"]: r for r in document["images"]})
    return results


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["rgb16", "gray16", "rgba", "gray", "float", "palette", "jpeg",
                                  "gray_alpha"])
def test_accepted_image_kinds_succeed(bad_files, accepted_run, kind):
    path = str(bad_files.images.accepted[kind])
    assert path in accepted_run, f"detect failed on an accepted {kind} image"
    record = accepted_run[path]
    assert (record["height"], record["width"]) == (64, 80)
