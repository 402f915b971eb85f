"""The mrcnn command line on a tiny model whose weights and config the test writes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.io

from mrcnn import cli, model_files
from mrcnn.errors import ClassNamesError
from mrcnn.trace_data import Trace


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny weights (.h5), config JSON, two images and a class-names file."""
    from tiny_config import TinyConfig

    from mrcnn.model import MaskRCNN

    root = tmp_path_factory.mktemp("cli")
    import keras

    config = TinyConfig()
    keras.utils.set_random_seed(0)  # unseeded random weights sometimes detected nothing
    model = MaskRCNN("inference", config)
    # A foreground bias so that the random model detects something to draw and encode.
    model.keras_model.get_layer("mrcnn_class_logits").weights[1].assign(
        np.array([-3.0, 0.0, 0.0, 0.0], np.float32))
    model.save_weights(root / "tiny.h5")
    config.to_json(root / "tiny.json")
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (96, 128, 3)), ("b.png", (128, 128, 3))):
        skimage.io.imsave(root / name, rng.integers(0, 256, shape).astype(np.uint8),
                          check_contrast=False)
    (root / "classes.txt").write_text("square\ncircle\ntriangle\n")
    return root


@pytest.mark.slow
def test_detect_writes_overlays_and_json(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["detect", str(files / "a.png"), str(files / "b.png"),
                     "--weights", str(files / "tiny.h5"), "--config", str(files / "tiny.json"),
                     "--class-names", str(files / "classes.txt"), "--out", str(out), "--dpi", "40"])
    assert code == 0
    assert (out / "a.png").stat().st_size > 0 and (out / "b.png").stat().st_size > 0
    document = json.loads((out / "detections.json").read_text())
    assert document["class_names"] == ["BG", "square", "circle", "triangle"]
    assert [r["image"] for r in document["images"]] == [str(files / "a.png"), str(files / "b.png")]
    first = document["images"][0]
    assert (first["height"], first["width"]) == (96, 128)
    assert first["detections"], "the biased tiny model detects something"
    import pycocotools.mask as mask_utils

    for det in first["detections"]:
        y1, x1, y2, x2 = det["box"]
        assert 0 <= y1 < y2 <= 96 and 0 <= x1 < x2 <= 128
        assert det["class_name"] == document["class_names"][det["class_id"]]
        rle = dict(det["mask_rle"], counts=det["mask_rle"]["counts"].encode())
        assert int(mask_utils.area(rle)) == det["mask_area"]
        assert det["mask_rle"]["size"] == [96, 128]


@pytest.mark.slow
def test_trace_writes_npz_and_stage_pngs(files, tmp_path):
    out = tmp_path / "trace"
    code = cli.main(["trace", str(files / "b.png"), "--weights", str(files / "tiny.h5"),
                     "--config", str(files / "tiny.json"), "--out", str(out),
                     "--activations", "fpn_p3", "--dpi", "30"])
    assert code == 0
    trace = Trace.load(out / "trace.npz")
    assert trace.activation_layers() == ["fpn_p3"]
    assert trace.meta["image_path"] == str(files / "b.png")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == len(trace.stages)
    assert pngs[0] == "00_input.png" and "03_rpn_deltas.png" in pngs
    assert all((out / p).stat().st_size > 0 for p in pngs)


def test_trace_bad_activation_is_a_clean_error(files, tmp_path, capsys):
    code = cli.main(["trace", str(files / "b.png"), "--weights", str(files / "tiny.h5"),
                     "--config", str(files / "tiny.json"), "--out", str(tmp_path),
                     "--activations", "fpn_p7"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "fpn_p7" in err and "fpn_p" in err and len(err.splitlines()) == 1


def test_inspect_weights_table_and_json(files, capsys):
    assert cli.main(["inspect-weights", str(files / "tiny.h5")]) == 0
    table = capsys.readouterr().out
    assert "conv1/kernel" in table and "rpn_conv_shared/kernel" in table
    assert "0 flagged" in table.splitlines()[-1]
    assert cli.main(["inspect-weights", str(files / "tiny.h5"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {"layer", "name", "shape", "hist_counts", "bin_edges", "dead"} <= set(stats[0])


def test_inspect_weights_flags_anomalies(tmp_path, capsys):
    import h5py

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv"])
        group = f.create_group("conv")
        group.attrs["weight_names"] = np.array([b"conv/kernel:0", b"conv/bias:0"])
        group.create_dataset("conv/kernel:0", data=np.zeros((3, 3, 1, 1), np.float32))
        group.create_dataset("conv/bias:0", data=np.array([np.nan], np.float32))
    assert cli.main(["inspect-weights", str(path)]) == 0
    captured = capsys.readouterr()
    assert "dead" in captured.out and "exploding" in captured.out
    assert "conv/kernel: dead" in captured.err and "conv/bias: exploding" in captured.err


@pytest.mark.parametrize("command", ["detect", "trace"])
def test_missing_image(files, tmp_path, capsys, command):
    code = cli.main([command, str(tmp_path / "nope.png"), "--weights", str(files / "tiny.h5"),
                     "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.png" in err


def test_unreadable_image(files, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert cli.main(["detect", str(bad), "--weights", str(files / "tiny.h5"),
                     "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.png" in err


@pytest.mark.parametrize("command", ["detect", "trace", "inspect-weights"])
def test_missing_and_unreadable_weights(files, tmp_path, capsys, command):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00" * 64)
    for weights in (tmp_path / "missing.h5", garbage):
        argv = ([command, str(weights)] if command == "inspect-weights" else
                [command, str(files / "a.png"), "--weights", str(weights), "--out", str(tmp_path)])
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and weights.name in err


def test_bad_config_file(files, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"NUM_CLASSES": 4, "NOT_A_FIELD": 1}')
    assert cli.main(["detect", str(files / "a.png"), "--weights", str(files / "tiny.h5"),
                     "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "NOT_A_FIELD" in err


def test_config_inferred_from_weights(files, capsys):
    values = model_files.infer_config_values(model_files.read_weight_shapes(files / "tiny.h5"))
    assert values == {"NUM_CLASSES": 4, "BACKBONE": "resnet18", "POOL_SIZE": 7,
                      "FPN_CLASSIF_FC_LAYERS_SIZE": 64, "TOP_DOWN_PYRAMID_SIZE": 32}
    config = model_files.load_config(None, files / "tiny.h5", "detect")
    assert config.NUM_CLASSES == 4 and config.BACKBONE == "resnet18"
    assert "inferred from" in capsys.readouterr().err


@pytest.mark.parametrize("present, expected", [
    ({"res2a_branch2a", "res4b_branch2a"}, "resnet18"),
    ({"res2a_branch2a", "res4c_branch2a", "res4f_branch2a"}, "resnet34"),
    ({"res2a_branch2a", "res2a_branch2c", "res4f_branch2c"}, "resnet50"),
    ({"res2a_branch2a", "res2a_branch2c", "res4w_branch2c"}, "resnet101"),
])
def test_backbone_inference(present, expected):
    assert model_files.infer_config_values({name: {"kernel": (1,)} for name in present})["BACKBONE"] == expected


def test_class_names_file(tmp_path):
    path = tmp_path / "names.json"
    path.write_text('["BG", "a", "b"]')
    assert model_files.read_class_names(path, 3) == ["BG", "a", "b"]
    with pytest.raises(ClassNamesError, match="names.json"):
        model_files.read_class_names(path, 5)


def test_train_and_evaluate_hooks_delegate(monkeypatch, capsys):
    import types

    seen = {}
    fake = types.ModuleType("mrcnn.train")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "mrcnn.train", fake)
    assert cli.main(["train", "--dataset", "shapes", "--epochs", "1"]) == 0
    assert seen["argv"] == ["--dataset", "shapes", "--epochs", "1"]
    monkeypatch.setitem(sys.modules, "mrcnn.train", None)  # not importable
    assert cli.main(["train"]) == 2
    assert "mrcnn.train" in capsys.readouterr().err
    fake_eval = types.ModuleType("mrcnn.evaluate_cli")
    fake_eval.main = lambda argv: 0 if argv == ["--weights", "w.h5"] else 3
    monkeypatch.setitem(sys.modules, "mrcnn.evaluate_cli", fake_eval)
    assert cli.main(["evaluate", "--weights", "w.h5"]) == 0


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "mrcnn", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("detect", "trace", "inspect-weights", "train", "evaluate"):
        assert command in out.stdout


def test_default_class_names_are_cocos_for_81_classes():
    names = model_files.default_class_names(81)
    assert len(names) == 81 and names[0] == "BG"
    assert names[1] == "person" and names[80] == "toothbrush" and names[16] == "cat"
    assert model_files.default_class_names(4) == ["BG", "class 1", "class 2", "class 3"]


def test_resources_coco_names_match_the_package_list():
    from pathlib import Path

    from mrcnn.data.coco_names import COCO_CLASS_NAMES

    path = Path(__file__).resolve().parent.parent / "resources" / "coco_class_names.txt"
    assert path.read_text().splitlines() == COCO_CLASS_NAMES
    assert model_files.read_class_names(path, 81) == COCO_CLASS_NAMES


def test_81_class_weights_infer_matterports_coco_config(tmp_path, capsys):
    import h5py

    path = tmp_path / "coco_like.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"mrcnn_class_logits", b"res2a_branch2c"]
        for layer, shape in (("mrcnn_class_logits", (1024, 81)), ("res2a_branch2c", (1, 1, 64, 256))):
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/kernel:0".encode()]
            group.create_dataset(f"{layer}/kernel:0", data=np.zeros(shape, np.float32))
    config = model_files.load_config(None, path, "detect")
    assert config.NAME == "coco" and config.NUM_CLASSES == 81
    assert config.BACKBONE == "resnet50" and config.DETECTION_MIN_CONFIDENCE == 0.7


@pytest.mark.slow
def test_detect_and_trace_use_the_class_names_of_the_checkpoints_run(files, tmp_path):
    """A run's checkpoint without --class-names: the names recorded in the run's run.json."""
    import shutil

    run = tmp_path / "runs" / "shapes_1"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = shutil.copy(files / "tiny.h5", run / "checkpoints" / "epoch_0001.h5")
    shutil.copy(files / "tiny.json", run / "config.json")
    names = ["BG", "circle", "triangle", "square"]
    (run / "run.json").write_text(json.dumps({"status": "finished", "class_names": names}))
    out = tmp_path / "detect"
    assert cli.main(["detect", str(files / "a.png"), "--weights", str(checkpoint),
                     "--out", str(out), "--dpi", "30"]) == 0
    document = json.loads((out / "detections.json").read_text())
    assert document["class_names"] == names
    detections = document["images"][0]["detections"]
    assert detections and all(d["class_name"] == names[d["class_id"]] for d in detections)
    assert cli.main(["trace", str(files / "b.png"), "--weights", str(checkpoint),
                     "--out", str(tmp_path / "trace"), "--activations", "fpn_p3",
                     "--dpi", "30"]) == 0
    assert Trace.load(tmp_path / "trace" / "trace.npz").class_names == names
