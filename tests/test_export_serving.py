"""`mrcnn export` end to end: the exported model, run where mrcnn is not importable, gives
detect()'s results (same class ids, boxes within 1 px, masks >= 99.5% equal pixels).

The demo model (resources/demo, trained on shapes at 128 px) finds real objects, so boxes and
masks are non-trivial; the three images are upscaled, downscaled wide and downscaled tall.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"
CLIENT = Path(__file__).resolve().parent / "serve_client.py"
SIZES = ((50, 50), (100, 160), (200, 90))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_model():
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    config = Config.from_json(str(DEMO / "config.json"))
    model = MaskRCNN("inference", config)
    model.load_weights(str(DEMO / "mask_rcnn_shapes_demo.h5"))
    return model


@pytest.fixture(scope="module")
def images_and_reference(demo_model, tmp_path_factory):
    from mrcnn.data.shapes import ShapesDataset

    images = []
    for index, (height, width) in enumerate(SIZES):
        dataset = ShapesDataset()
        dataset.load_shapes(1, height, width, seed=11 + index)
        dataset.prepare()
        images.append(dataset.load_image(0))
    path = tmp_path_factory.mktemp("images") / "images.npz"
    np.savez(path, **{f"image_{i}": image for i, image in enumerate(images)})
    reference = demo_model.detect(images)
    counts = [len(r["class_ids"]) for r in reference]
    assert min(counts) >= 1 and sum(counts) >= 5, f"detections too trivial to compare: {counts}"
    return images, path, reference


def _export(out_dir, *extra):
    command = [sys.executable, "-m", "mrcnn", "export", "--weights",
               str(DEMO / "mask_rcnn_shapes_demo.h5"), "--out", str(out_dir), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _run_client(kind, model_path, images_path, out_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(CLIENT), kind, str(model_path), str(images_path),
                           str(out_path)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=out_path.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(out_path)
    assert list(out["mrcnn_modules"]) == [], "the client imported mrcnn"
    return [{key: out[f"{key}_{i}"] for key in ("rois", "class_ids", "scores", "masks")}
            for i in range(len(SIZES))]


def assert_same_detections(got, reference):
    for image_index, (g, r) in enumerate(zip(got, reference)):
        where = f"image {image_index} {SIZES[image_index]}"
        np.testing.assert_array_equal(g["class_ids"], r["class_ids"], err_msg=where)
        assert g["rois"].dtype == np.int32 and g["rois"].shape == r["rois"].shape, where
        assert np.abs(g["rois"] - r["rois"]).max() <= 1, where
        np.testing.assert_allclose(g["scores"], r["scores"], atol=1e-4, err_msg=where)
        assert g["masks"].dtype == bool and g["masks"].shape == r["masks"].shape, where
        for k in range(r["masks"].shape[-1]):
            assert r["masks"][:, :, k].sum() > 0, where
            equal = (g["masks"][:, :, k] == r["masks"][:, :, k]).mean()
            assert equal >= 0.995, f"{where} mask {k}: {equal:.4f} of pixels equal"


def test_savedmodel_in_fresh_process_equals_detect(images_and_reference, tmp_path):
    images, images_path, reference = images_and_reference
    done = _export(tmp_path / "served")
    assert done.returncode == 0, done.stderr[-3000:]
    version = tmp_path / "served" / "1"
    assert (version / "saved_model.pb").is_file()  # TF Serving layout: DIR/<version>/
    assert "signature 'serving_default'" in done.stdout
    for line in ("image: uint8 [?, ?, 3]", "rois: int32 [?, 4]", "class_ids: int32 [?]",
                 "scores: float32 [?]", "masks: bool [?, ?, ?]"):
        assert line in done.stdout, done.stdout
    got = _run_client("savedmodel", version, images_path, tmp_path / "out.npz")
    assert_same_detections(got, reference)


def test_small_masks_paste_to_detect_masks(demo_model, images_and_reference):
    import tensorflow as tf

    from mrcnn.export import serving_function
    from mrcnn.imaging import unmold_mask

    images, _, reference = images_and_reference
    serve = serving_function(demo_model, small_masks=True)
    assert serve.get_concrete_function().structured_outputs["masks"].shape.as_list() == \
        [None, 28, 28]
    for image, ref in zip(images, reference):
        out = {k: v.numpy() for k, v in serve(tf.constant(image)).items()}
        assert out["masks"].shape == (len(ref["class_ids"]), 28, 28)
        assert out["masks"].dtype == np.float32
        assert 0 <= out["masks"].min() <= out["masks"].max() <= 1
        np.testing.assert_array_equal(out["rois"], ref["rois"])
        for k in range(len(ref["class_ids"])):
            pasted = unmold_mask(out["masks"][k], out["rois"][k], image.shape)
            assert (pasted == ref["masks"][:, :, k]).mean() >= 0.995


def test_onnx_under_onnxruntime_equals_detect(images_and_reference, tmp_path):
    pytest.importorskip("tf2onnx", reason="the 'onnx' extra (tf2onnx) is not installed")
    pytest.importorskip("onnxruntime", reason="the 'onnx' extra (onnxruntime) is not installed")
    images, images_path, reference = images_and_reference
    done = _export(tmp_path / "onnx", "--format", "onnx")
    assert done.returncode == 0, done.stderr[-3000:]
    model_path = tmp_path / "onnx" / "model.onnx"
    assert model_path.is_file()
    got = _run_client("onnx", model_path, images_path, tmp_path / "out.npz")
    assert_same_detections(got, reference)
