"""``mrcnn explain``: overlay PNG + raw .npy for a demo-model detection; bad input exits 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrcnn.cli import main
from mrcnn.evaluate_cli import SHAPES_EVAL_SEED
from mrcnn.explain_metrics import mass_in_box
from mrcnn.explain_render import overlay

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"
MODEL_ARGS = ["--weights", str(DEMO / "mask_rcnn_shapes_demo.h5"),
              "--config", str(DEMO / "config.json"),
              "--class-names", str(DEMO / "class_names.txt")]


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.explain_render import save_png

    dataset = ShapesDataset()
    dataset.load_shapes(1, 128, 128, seed=SHAPES_EVAL_SEED)
    dataset.prepare()
    return save_png(tmp_path_factory.mktemp("explain") / "shapes.png", dataset.load_image(0))


def test_explain_writes_overlay_and_raw_map(image_path, tmp_path, capsys):
    from matplotlib.image import imread

    out, raw = tmp_path / "map.png", tmp_path / "map.npy"
    code = main(["explain", *MODEL_ARGS, str(image_path), "--detection", "0",
                 "--layer", "fpn_p2", "--target", "mask", "--out", str(out), "--npy", str(raw)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "detection 0 (circle" in printed
    box = json.loads(re.search(r"box (\[[^]]*\])", printed).group(1))
    pixels = np.round(imread(out)[..., :3] * 255).astype(np.uint8)
    saliency = np.load(raw)
    assert saliency.shape == (128, 128) and saliency.max() == pytest.approx(1.0)
    assert mass_in_box(saliency, box) > 0.6
    original = np.round(imread(image_path)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels, overlay(original, saliency, 0.5, box=box))
    assert (pixels[saliency == 0] == original[saliency == 0]).mean() > 0.95  # box outline aside


@pytest.mark.parametrize("extra, message", [
    (["--detection", "7"], "detection 7 is out of range; the image has"),
    (["--detection", "0", "--layer", "fpn_p4"], "feeds P4 only"),
    (["--detection", "0", "--layer", "mrcnn_mask_conv2"], "does not feed"),
    (["--detection", "0", "--opacity", "2"], "--opacity must be in"),
])
def test_bad_input_exits_2_with_one_line(image_path, tmp_path, capsys, extra, message):
    code = main(["explain", *MODEL_ARGS, str(image_path), *extra, "--out",
                 str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("mrcnn explain: error:")
    assert not (tmp_path / "x.png").exists()


def test_missing_image_names_the_file(tmp_path, capsys):
    code = main(["explain", *MODEL_ARGS, str(tmp_path / "nope.png"), "--detection", "0",
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and "nope.png" in capsys.readouterr().err


def test_help_lists_the_command_and_options():
    listed = subprocess.run([sys.executable, "-m", "mrcnn.cli", "--help"], capture_output=True,
                            text=True, check=True).stdout
    assert "explain" in listed
    usage = subprocess.run([sys.executable, "-m", "mrcnn.cli", "explain", "--help"],
                           capture_output=True, text=True, check=True).stdout
    for option in ("--detection", "--method", "--layer", "--target", "--npy", "--masks"):
        assert option in usage
