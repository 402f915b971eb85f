"""``mrcnn evaluate`` (mrcnn.evaluate_cli): numbers valid, table printed, JSON written."""

import argparse
import json

import numpy as np
import pytest

from mrcnn import evaluate_cli


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Untrained tiny weights + their config.json, like a run's checkpoint directory."""
    import keras

    from tiny_config import TinyConfig
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("model")
    config = TinyConfig()
    MaskRCNN("inference", config).save_weights(folder / "checkpoints" / "weights.h5")
    config.to_json(folder / "config.json")
    return folder


def _check_results(results, images):
    assert results["images"] == images and len(results["per_image_ap50"]) == images
    assert 0.0 <= results["mAP50"] <= 1.0
    for kind in ("bbox", "segm"):
        stats = results["coco"][kind]
        assert list(stats) == ["AP", "AP50", "AP75", "APs", "APm", "APl",
                               "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
        # pycocotools reports -1 for an area range without ground truth.
        assert all(v == -1.0 or 0.0 <= v <= 1.0 for v in stats.values()), stats
        assert 0.0 <= stats["AP"] <= 1.0 and 0.0 <= stats["AP50"] <= 1.0


def test_evaluate_shapes_finds_the_run_config(weights_dir, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = evaluate_cli.main(["--weights", str(weights_dir / "checkpoints" / "weights.h5"),
                              "--dataset", "shapes", "--shapes-count", "3", "--limit", "2",
                              "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("Average Precision  (AP) @[") == 12  # bbox + segm, 6 each
    assert printed.count("Average Recall     (AR) @[") == 12
    assert "mAP@0.5" in printed
    _check_results(json.loads(out.read_text()), images=2)


def test_evaluate_coco_json(weights_dir, tmp_path):
    from mrcnn.data.dataset import export_coco
    from mrcnn.data.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(2, 128, 128, seed=9)
    dataset.prepare()
    export_coco(dataset, dataset.image_ids, tmp_path / "gt.json", tmp_path / "images")
    out = tmp_path / "results.json"
    code = evaluate_cli.main(["--weights", str(weights_dir / "checkpoints" / "weights.h5"),
                              "--config", str(weights_dir / "config.json"),
                              "--json", str(tmp_path / "gt.json"),
                              "--images", str(tmp_path / "images"),
                              "--min-confidence", "0", "--out", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    _check_results(results, images=2)
    assert results["detections"] > 0  # confidence 0 keeps the untrained model's guesses


def test_missing_config_and_images_are_reported(weights_dir, tmp_path, capsys):
    lone = tmp_path / "lone.h5"
    lone.write_bytes((weights_dir / "checkpoints" / "weights.h5").read_bytes())
    code = evaluate_cli.main(["--weights", str(lone), "--out", str(tmp_path / "r.json")])
    assert code == 1 and "config.json" in capsys.readouterr().err
    code = evaluate_cli.main(["--weights", str(lone), "--config",
                              str(weights_dir / "config.json"), "--json", "x.json",
                              "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert code == 1 and "nope" in capsys.readouterr().err


def test_add_parser_registers_evaluate():
    parser = argparse.ArgumentParser(prog="mrcnn")
    evaluate_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--weights", "w.h5", "--out", "r.json",
                              "--dataset", "shapes", "--shapes-count", "5"])
    assert args.command == "evaluate" and args.func is evaluate_cli.run
    assert args.shapes_count == 5 and args.limit is None
    assert np.isclose(evaluate_cli.SHAPES_EVAL_SEED, 20_000_003)
