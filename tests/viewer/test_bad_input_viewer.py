"""Bad input to the viewer: each case shows one error (title + a message naming the file and
what to do), prints no traceback, and leaves the window up and usable. ``--quit-after-trace``
exits (0 or 1) on every input instead of hanging: those cases spawn ``mrcnn-viewer``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_files import TRACEBACK, bad_files  # noqa: F401

from viewer.datasets import DatasetSpec
from viewer.workers import ModelSpec

pytestmark = pytest.mark.timeout(300)
VIEWER = Path(sys.executable).parent / "mrcnn-viewer"


def assert_error_shown(qtbot, window, dialogs, capfd, expect, title=None):
    """One dialog naming ``expect``; no traceback on stderr; the window still up."""
    qtbot.waitUntil(lambda: len(dialogs) >= 1, timeout=60_000)
    shown_title, message = dialogs[0]
    if title:
        assert shown_title == title
    first_line = message.splitlines()[0]
    for text in expect:
        assert text.lower() in first_line.lower(), (shown_title, message)
    assert "What to do" in message
    assert TRACEBACK not in capfd.readouterr().err
    assert window.isVisible() and not window.document.runner.is_busy()


TRACE_CASES = {
    "missing": (lambda t: t.good.parent / "nope.npz", ["nope.npz", "not found"]),
    "text": (lambda t: t.text, ["text.npz", "not a readable trace"]),
    "truncated": (lambda t: t.truncated, ["truncated.npz", "not a readable trace"]),
    "no_meta": (lambda t: t.no_meta, ["no_meta.npz", "no trace metadata"]),
    "zero_bytes": (lambda t: t.zero, ["zero.npz", "not a readable trace"]),
    "directory": (lambda t: t.good.parent, ["traces"]),
}


@pytest.mark.parametrize("name", list(TRACE_CASES))
def test_bad_trace_file(qtbot, window, dialogs, capfd, bad_files, name):
    path, expect = TRACE_CASES[name]
    assert window.open_trace(path(bad_files.traces)) is False
    assert_error_shown(qtbot, window, dialogs, capfd, expect, "Cannot open trace")
    assert window.session.trace is None


IMAGE_CASES = {
    "missing": (lambda i: i.dir / "nope.png", ["nope.png", "does not exist"]),
    "directory": (lambda i: i.dir, ["is a directory"]),
    "truncated": (lambda i: i.truncated, ["truncated.png", "cannot read"]),
    "text": (lambda i: i.text, ["text.png", "cannot read"]),
    "one_pixel": (lambda i: i.one, ["one.png", "1x1"]),
    "1x5000": (lambda i: i.wide, ["wide.png", "1x5000"]),
}


@pytest.mark.parametrize("name", list(IMAGE_CASES))
def test_bad_image(qtbot, window, dialogs, capfd, bad_files, name):
    path, expect = IMAGE_CASES[name]
    window.open_image(str(path(bad_files.images)))
    assert_error_shown(qtbot, window, dialogs, capfd, expect, "Cannot open image")


MODEL_CASES = {
    "foreign": (lambda w, c: ModelSpec(weights=str(w.foreign)), ["foreign.h5", "dense_a"]),
    "missing": (lambda w, c: ModelSpec(weights=str(w.dir / "nope.h5")), ["nope.h5"]),
    "directory": (lambda w, c: ModelSpec(weights=str(w.dir)), ["is a directory"]),
    "text": (lambda w, c: ModelSpec(weights=str(w.text)), ["text.h5", "HDF5"]),
    "empty_hdf5": (lambda w, c: ModelSpec(weights=str(w.empty_hdf5)), ["empty.h5"]),
    "config_string_field": (lambda w, c: ModelSpec(weights=str(w.good), config=str(
        c.variants["max_dim_string"])), ["IMAGE_MAX_DIM", "expected a number"]),
    "config_not_json": (lambda w, c: ModelSpec(weights=str(w.good), config=str(c.not_json)),
                        ["not_json.json", "not valid JSON"]),
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_bad_model(qtbot, window, dialogs, capfd, bad_files, name):
    spec, expect = MODEL_CASES[name]
    window.set_model(spec(bad_files.weights, bad_files.configs))
    assert_error_shown(qtbot, window, dialogs, capfd, expect)
    assert window.document.model is None


@pytest.mark.parametrize("name,expect", [
    ("not_json", ["not_json.json", "malformed JSON"]),
    ("no_key", ["no_key.json", "missing required key"]),
    ("missing", ["nope.json", "not found"]),
])
def test_bad_dataset(qtbot, window, dialogs, capfd, bad_files, name, expect):
    coco = bad_files.coco
    path = coco.good.parent / "nope.json" if name == "missing" else getattr(coco, name)
    window.open_dataset(DatasetSpec("coco", annotations=str(path),
                                    image_dir=str(coco.good.parent)))
    qtbot.waitUntil(lambda: len(dialogs) >= 1, timeout=60_000)
    assert dialogs[0][0] == "Cannot open dataset"
    assert all(e.lower() in dialogs[0][1].lower() for e in expect), dialogs
    assert TRACEBACK not in capfd.readouterr().err and window.isVisible()


def test_window_still_works_after_errors(qtbot, window, dialogs, bad_files):
    window.open_trace(bad_files.traces.text)
    assert window.open_trace(bad_files.traces.good) is True
    assert window.session.trace is not None and len(dialogs) == 1


# ---- --quit-after-trace: exits on every input -------------------------------------------------------

def _viewer(args, tmp_path, timeout=240):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "cfg"), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("MRCNN_DEBUG", None)
    return subprocess.run([str(VIEWER), "--quit-after-trace", *map(str, args)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name,code,expect", [
    ("good_trace", 0, None),
    ("bad_trace", 1, "text.npz"),
    ("missing_trace", 1, "nope.npz"),
    ("foreign_weights", 1, "foreign.h5"),
    ("one_pixel_image", 1, "one.png"),
])
def test_quit_after_trace_exits(bad_files, tmp_path, name, code, expect):
    f = bad_files
    args = {"good_trace": ["--trace", f.traces.good], "bad_trace": ["--trace", f.traces.text],
            "missing_trace": ["--trace", tmp_path / "nope.npz"],
            "foreign_weights": ["--weights", f.weights.foreign],
            "one_pixel_image": [f.images.one]}[name]
    done = _viewer(args, tmp_path)
    assert done.returncode == code, done.stderr[-3000:]
    assert TRACEBACK not in done.stderr
    if expect:
        lines = [line for line in done.stderr.splitlines() if line.startswith("mrcnn-viewer:")]
        assert lines and expect in lines[0], done.stderr[-3000:]


@pytest.mark.slow
def test_quit_after_trace_with_weights_and_no_image_exits_once_loaded(bad_files, tmp_path):
    done = _viewer(["--weights", bad_files.weights.good, "--config", bad_files.weights.config],
                   tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert TRACEBACK not in done.stderr
