"""The bad (and the accepted) input files of the bad-input table, generated once per session.

``bad_files`` is a session fixture: a tiny model's weights and config, then every broken
variant the table needs (images, weights files, configs, COCO JSON sets, traces). Import the
fixture into a test module with ``from bad_input_files import bad_files  # noqa: F401``.
``assert_clean_failure`` is the table's one assertion: non-zero exit, a line naming what was
expected, no traceback, nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

TRACEBACK = "Traceback (most recent call last)"
# (mode, config JSON) -> MaskRCNN: one built model per config for the whole session.
MODEL_CACHE: dict = {}


def _config_key(mode, config):
    return mode, json.dumps(config.to_dict(), sort_keys=True, default=str)


@pytest.fixture(scope="module")
def shared_models():
    """``mrcnn.model.MaskRCNN`` answers from MODEL_CACHE while the module runs: each case loads
    its weights file into the one model of its config (every case loads a whole file or is
    refused, so no case sees another's weights)."""
    import mrcnn.model as model_module

    original = model_module.MaskRCNN

    def cached(mode, config, *args, **kwargs):
        key = _config_key(mode, config)
        if key not in MODEL_CACHE or args or kwargs:
            MODEL_CACHE[key] = original(mode, config, *args, **kwargs)
        return MODEL_CACHE[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_module, "MaskRCNN", cached)
        yield MODEL_CACHE


# ---- assertions ------------------------------------------------------------------------------

def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def assert_clean_failure(code, stderr, expect, folders=(), code_wanted=None):
    """Non-zero exit (or ``code_wanted``), one stderr line holding every text in ``expect``,
    no traceback, and no temp / half-written file in ``folders``."""
    assert code != 0, f"exit 0 for bad input; stderr: {stderr[-2000:]}"
    if code_wanted is not None:
        assert code == code_wanted, stderr[-2000:]
    assert TRACEBACK not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines()
             if all(re.search(e, line, re.IGNORECASE) for e in expect)]
    assert lines, f"no single stderr line matches all of {expect}:\n{stderr[-3000:]}"
    assert_no_leftovers(folders)


def assert_no_leftovers(folders):
    for folder in folders:
        folder = Path(folder)
        if folder.exists():
            left = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
            assert not left, f"temp files left behind in {folder}: {left}"


# ---- images ----------------------------------------------------------------------------------

def _save(path, array, **kwargs):
    import skimage.io

    skimage.io.imsave(path, array, check_contrast=False, **kwargs)
    return path


def make_images(root: Path) -> SimpleNamespace:
    from PIL import Image

    rng = np.random.default_rng(7)
    images = root / "images"
    images.mkdir()
    good = _save(images / "good.png", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    f = SimpleNamespace(good=good, dir=images)
    f.zero = images / "zero.png"
    f.zero.write_bytes(b"")
    f.text = images / "text.png"
    f.text.write_text("this is not an image\n")
    f.truncated = images / "truncated.png"
    f.truncated.write_bytes(good.read_bytes()[:200])
    f.noise_jpg = images / "noise.jpg"
    f.noise_jpg.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    f.one = _save(images / "one.png", np.full((1, 1, 3), 200, np.uint8))
    f.wide = _save(images / "wide.png", np.full((1, 5000, 3), 90, np.uint8))
    f.tall = _save(images / "tall.png", np.full((5000, 1, 3), 90, np.uint8))
    f.tiny4 = _save(images / "tiny4.png", np.full((4, 4, 3), 90, np.uint8))
    f.five_channels = images / "five.tif"
    import tifffile

    tifffile.imwrite(f.five_channels, rng.integers(0, 256, (32, 32, 5), dtype=np.uint8))
    f.npy = images / "array.png.npy"
    np.save(f.npy, np.zeros((8, 8)))
    # Accepted (README): 16-bit, RGBA, gray, gray+alpha, float, palette, JPEG.
    f.accepted = {
        "rgb16": images / "rgb16.tif",
        "gray16": _save(images / "gray16.png", rng.integers(0, 65536, (64, 80), dtype=np.uint16)),
        "rgba": _save(images / "rgba.png", rng.integers(0, 256, (64, 80, 4), dtype=np.uint8)),
        "gray": _save(images / "gray.png", rng.integers(0, 256, (64, 80), dtype=np.uint8)),
        "float": images / "float.tif",
        "gray_alpha": images / "gray_alpha.png",
        "palette": images / "palette.png",
        "jpeg": _save(images / "photo.jpg", rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)),
    }
    tifffile.imwrite(f.accepted["float"], rng.random((64, 80, 3), dtype=np.float32))
    # Pillow cannot write 16-bit RGB PNGs; TIFF carries 16-bit RGB the same way.
    tifffile.imwrite(f.accepted["rgb16"], rng.integers(0, 65536, (64, 80, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 256, (64, 80, 2), dtype=np.uint8), "LA").save(
        f.accepted["gray_alpha"])
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE).save(f.accepted["palette"])
    return f


# ---- weights ---------------------------------------------------------------------------------

def make_weights(root: Path) -> SimpleNamespace:
    import h5py
    import keras
    from tiny_config import TinyConfig

    from mrcnn.model import MaskRCNN
    from mrcnn.weights import save_weights

    folder = root / "weights"
    folder.mkdir()
    config = TinyConfig()
    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", config)
    model.keras_model.get_layer("mrcnn_class_logits").weights[1].assign(
        np.array([-3.0, 0.0, 0.0, 0.0], np.float32))
    w = SimpleNamespace(dir=folder, good=folder / "tiny.h5", config=folder / "tiny.json")
    model.save_weights(w.good)
    config.to_json(w.config)
    from mrcnn.config import Config

    cli_config = Config.from_json(str(w.config))  # what `mrcnn detect --config` builds
    cli_config.IMAGES_PER_GPU, cli_config.GPU_COUNT, cli_config.BATCH_SIZE = 1, 1, 1
    MODEL_CACHE[_config_key("inference", cli_config.validate())] = model
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_a"),
                                keras.layers.Dense(2, name="dense_b")])
    w.foreign = folder / "foreign.h5"
    save_weights(foreign, w.foreign)
    w.empty_hdf5 = folder / "empty.h5"
    h5py.File(w.empty_hdf5, "w").close()
    w.no_layers = folder / "no_layers.h5"
    with h5py.File(w.no_layers, "w") as f:
        f.attrs["layer_names"] = np.array([], "S1")
    w.keras3 = folder / "model.weights.h5"
    with h5py.File(w.keras3, "w") as f:
        f.create_group("layers")
        f.create_group("vars")
    w.zero = folder / "zero.h5"
    w.zero.write_bytes(b"")
    w.text = folder / "text.h5"
    w.text.write_text("not hdf5\n")
    w.truncated = folder / "truncated.h5"
    w.truncated.write_bytes(w.good.read_bytes()[:4096])
    w.nan = _poisoned(w.good, folder / "nan.h5", "mrcnn_class_logits", "kernel", np.nan)
    w.inf = _poisoned(w.good, folder / "inf.h5", "mrcnn_mask", "bias", np.inf)
    w.partial = folder / "partial.h5"
    with h5py.File(w.good, "r") as src, h5py.File(w.partial, "w") as dst:
        keep = ["conv1", "bn_conv1"]
        dst.attrs["layer_names"] = np.array([k.encode() for k in keep])
        for key in keep:
            src.copy(src[key], dst, name=key)
    return w


def _poisoned(source, target, layer, weight, value):
    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        def poison(name, obj):
            if hasattr(obj, "shape") and name.split("/")[-1].startswith(weight):
                data = obj[()]
                data.flat[0] = value
                obj[...] = data
        f[layer].visititems(poison)
    return target


# ---- configs ---------------------------------------------------------------------------------

CONFIG_VARIANTS = {
    # name: (changes to the tiny config, text the error names)
    "max_dim_string": ({"IMAGE_MAX_DIM": "big"}, ["IMAGE_MAX_DIM", "number"]),
    "classes_string": ({"NUM_CLASSES": "four"}, ["NUM_CLASSES", "number"]),
    "mean_pixel_strings": ({"MEAN_PIXEL": ["a", "b", "c"]}, ["MEAN_PIXEL", "list of numbers"]),
    "unknown_field": ({"IMAGE_MAX_DIMM": 128}, ["unknown config field", "IMAGE_MAX_DIMM"]),
    "max_dim_100": ({"IMAGE_MAX_DIM": 100, "IMAGE_MIN_DIM": 64}, ["IMAGE_MAX_DIM", "64"]),
    "zero_classes": ({"NUM_CLASSES": 0}, ["NUM_CLASSES", ">= 1"]),
    "backbone_unknown": ({"BACKBONE": "resnet9"}, ["BACKBONE", "resnet9"]),
    "confidence_2": ({"DETECTION_MIN_CONFIDENCE": 2.0}, ["DETECTION_MIN_CONFIDENCE", r"\[0, 1\]"]),
    "three_scales": ({"RPN_ANCHOR_SCALES": [8, 16, 32]}, ["RPN_ANCHOR_SCALES", "scale"]),
    "min_over_max": ({"IMAGE_MIN_DIM": 256}, ["IMAGE_MIN_DIM", "IMAGE_MAX_DIM"]),
    "rate_string": ({"LEARNING_RATE": "fast"}, ["LEARNING_RATE", "number"]),
    "strides_string": ({"BACKBONE_STRIDES": "abc"}, ["BACKBONE_STRIDES", "list"]),
    "null_max_dim": ({"IMAGE_MAX_DIM": None}, ["IMAGE_MAX_DIM", "null"]),
    "five_classes": ({"NUM_CLASSES": 5}, ["mrcnn_class_logits", "shape"]),
}


def make_configs(root: Path, base_config: Path) -> SimpleNamespace:
    folder = root / "configs"
    folder.mkdir()
    base = json.loads(base_config.read_text())
    base = {k: v for k, v in base.items()
            if k not in ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")}
    c = SimpleNamespace(dir=folder, variants={})
    for name, (changes, _) in CONFIG_VARIANTS.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps({**base, **changes}))
        c.variants[name] = path
    c.not_json = folder / "not_json.json"
    c.not_json.write_text("{IMAGE_MAX_DIM: 128,")
    c.a_list = folder / "list.json"
    c.a_list.write_text("[1, 2, 3]")
    c.empty = folder / "empty.json"
    c.empty.write_text("")
    return c


# ---- COCO sets ---------------------------------------------------------------------------------

def square_polygon(x, y, side):
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def coco_set(folder: Path, name: str, images=3, edit=None) -> Path:
    """A valid 64x64 COCO set (one square per image) in ``folder``, then ``edit(data, dir)``."""
    image_dir = folder / name
    image_dir.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    data = {"images": [], "annotations": [],
            "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]}
    for i in range(1, images + 1):
        file_name = f"{i:03d}.png"
        _save(image_dir / file_name, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        data["images"].append({"id": i, "file_name": file_name, "height": 64, "width": 64})
        data["annotations"].append({"id": 10 + i, "image_id": i, "category_id": 1, "iscrowd": 0,
                                    "segmentation": [square_polygon(8, 8, 20)],
                                    "bbox": [8, 8, 20, 20], "area": 400})
    if edit is not None:
        edit(data, image_dir)
    path = image_dir / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def _missing_image(data, image_dir):
    os.remove(image_dir / data["images"][0]["file_name"])


def _unreadable_image(data, image_dir):
    (image_dir / data["images"][1]["file_name"]).write_text("broken")


def _wrong_size(data, image_dir):
    data["images"][0]["height"] = 80


def _two_point_polygons(data, image_dir):
    for annotation in data["annotations"]:
        annotation["segmentation"] = [[8, 8, 30, 30]]


def _box_outside(data, image_dir):
    data["annotations"][0]["bbox"] = [50, 50, 40, 40]


def _unknown_category(data, image_dir):
    data["annotations"][1]["category_id"] = 99


def _unknown_image(data, image_dir):
    data["annotations"][2]["image_id"] = 77


def _no_annotations(data, image_dir):
    data["annotations"] = []


def _no_images(data, image_dir):
    data["images"], data["annotations"] = [], []


def _one_pixel(data, image_dir):
    _save(image_dir / data["images"][0]["file_name"], np.zeros((1, 1, 3), np.uint8))
    data["images"][0].update(height=1, width=1)
    data["annotations"][0].update(segmentation=[[0, 0, 1, 0, 1, 1]], bbox=[0, 0, 1, 1])


def _many(data, image_dir):
    _missing_image(data, image_dir)
    _two_point_polygons(data, image_dir)
    data["annotations"][2]["category_id"] = 42


COCO_VARIANTS = {
    # name: (edit, texts the error names)
    "missing_image": (_missing_image, ["1 missing image", "image ids 1", "001.png"]),
    "unreadable_image": (_unreadable_image, ["1 unreadable image", "image ids 2"]),
    "wrong_size": (_wrong_size, ["wrong image size", "64x64", "80x64"]),
    "two_point_polygons": (_two_point_polygons, ["3 polygon < 3 points", "annotation ids 11, 12, 13"]),
    "box_outside": (_box_outside, ["box outside image", "annotation ids 11"]),
    "unknown_category": (_unknown_category, ["unknown category id", "category_id 99"]),
    "unknown_image": (_unknown_image, ["unknown image id", "image_id 77"]),
    "no_annotations": (_no_annotations, ["no instances"]),
    "no_images": (_no_images, ["no images"]),
    "one_pixel": (_one_pixel, ["unusable image size", "1x1"]),
    "many_problems": (_many, ["5 problem", "1 missing image", "3 polygon < 3 points",
                              "1 unknown category id"]),
}


def make_coco(root: Path) -> SimpleNamespace:
    folder = root / "coco"
    sets = SimpleNamespace(good=coco_set(folder, "good"), variants={})
    for name, (edit, _) in COCO_VARIANTS.items():
        sets.variants[name] = coco_set(folder, name, edit=edit)
    sets.not_json = folder / "not_json.json"
    sets.not_json.write_text('{"images": [')
    sets.a_list = folder / "list.json"
    sets.a_list.write_text("[]")
    sets.no_key = folder / "no_key.json"
    sets.no_key.write_text(json.dumps({"images": [], "annotations": []}))
    return sets


# ---- traces ----------------------------------------------------------------------------------

def make_traces(root: Path) -> SimpleNamespace:
    from mrcnn.synthetic_trace import make_fake_trace

    folder = root / "traces"
    folder.mkdir()
    t = SimpleNamespace(good=make_fake_trace().save(folder / "good.npz"))
    t.text = folder / "text.npz"
    t.text.write_text("not a zip")
    t.truncated = folder / "truncated.npz"
    t.truncated.write_bytes(t.good.read_bytes()[:300])
    t.no_meta = folder / "no_meta.npz"
    np.savez(t.no_meta, x=np.zeros(3))
    t.zero = folder / "zero.npz"
    t.zero.write_bytes(b"")
    return t


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory):
    """Everything above, under one temp folder (treat as read-only)."""
    root = tmp_path_factory.mktemp("bad_input")
    files = SimpleNamespace(root=root, images=make_images(root), weights=make_weights(root),
                            coco=make_coco(root), traces=make_traces(root))
    files.configs = make_configs(root, files.weights.config)
    files.plain_file = root / "plain.txt"
    files.plain_file.write_text("a file\n")
    files.classes = root / "classes.txt"
    files.classes.write_text("square\ncircle\ntriangle\n")
    files.classes_two = root / "two_classes.txt"
    files.classes_two.write_text("square\ncircle\n")
    files.classes_bad_json = root / "classes.json"
    files.classes_bad_json.write_text('["square", ')
    return files
