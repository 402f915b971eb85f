"""Dataset API (matterport utils.Dataset behaviour), image reading, a matterport-style subclass."""

import json
import logging
import os
import warnings

import numpy as np
import pytest
import skimage.draw
import skimage.io

from mrcnn.data.dataset import Dataset, DatasetError, _to_rgb_uint8, read_image_rgb, to_rgb_uint8


def _two_source_dataset():
    dataset = Dataset()
    dataset.add_class("zoo", 1, "lion")
    dataset.add_class("zoo", 2, "zebra, striped horse")
    dataset.add_class("zoo", 1, "duplicate ignored")
    dataset.add_class("farm", 7, "cow")
    dataset.add_image("zoo", image_id="z1", path="/nope/z1.png", height=10, width=12)
    dataset.add_image("farm", image_id=42, path="/nope/f.png", height=5, width=6, note="x")
    dataset.prepare()
    return dataset


def test_prepare_builds_matterport_tables():
    dataset = _two_source_dataset()
    assert dataset.num_classes == 4
    assert dataset.class_names == ["BG", "lion", "zebra", "cow"]
    np.testing.assert_array_equal(dataset.class_ids, [0, 1, 2, 3])
    assert dataset.num_images == 2
    np.testing.assert_array_equal(dataset.image_ids, [0, 1])
    assert dataset.class_from_source_map == {".0": 0, "zoo.1": 1, "zoo.2": 2, "farm.7": 3}
    assert dataset.image_from_source_map == {"zoo.z1": 0, "farm.42": 1}
    assert dataset.sources == ["", "farm", "zoo"]
    assert dataset.source_class_ids == {"": [0], "farm": [0, 3], "zoo": [0, 1, 2]}
    assert dataset.map_source_class_id("farm.7") == 3
    assert dataset.get_source_class_id(3, "farm") == 7
    assert dataset.source_image_link(0) == "/nope/z1.png"
    assert dataset.image_info[1]["note"] == "x" and dataset.image_info[1]["id"] == 42
    assert dataset.image_reference(0) == ""


def test_id_mapping_errors():
    dataset = _two_source_dataset()
    with pytest.raises(ValueError, match="belongs to source 'farm', not 'zoo'"):
        dataset.get_source_class_id(3, "zoo")
    with pytest.raises(KeyError):
        dataset.map_source_class_id("zoo.99")
    with pytest.raises(ValueError, match="cannot contain a dot"):
        Dataset().add_class("a.b", 1, "x")


def test_empty_dataset_prepares():
    dataset = Dataset()
    assert len(dataset.image_ids) == 0
    dataset.prepare()
    assert dataset.num_classes == 1 and dataset.num_images == 0
    assert dataset.class_names == ["BG"]


def test_base_load_mask_is_empty_and_silent(tmp_path, caplog):
    dataset = _two_source_dataset()
    path = tmp_path / "img.png"
    skimage.io.imsave(path, np.zeros((7, 9, 3), np.uint8), check_contrast=False)
    dataset.add_image("zoo", image_id="no_size", path=str(path))
    dataset.prepare()
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        masks, class_ids = dataset.load_mask(0)
        masks_from_image, _ = dataset.load_mask(2)  # no height/width: read from the image
    assert not caplog.records
    assert masks.shape == (10, 12, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    assert masks_from_image.shape == (7, 9, 0)


@pytest.mark.parametrize("case", ["rgb", "gray", "gray1", "rgba", "uint16", "gray16", "float"])
def test_load_image_converts_to_rgb_uint8(tmp_path, case):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
    gray = rgb[..., 0]
    source, expected = {
        "rgb": (rgb, rgb),
        "gray": (gray, np.stack([gray] * 3, -1)),
        "gray1": (gray[..., None], np.stack([gray] * 3, -1)),
        "rgba": (np.concatenate([rgb, np.full((6, 5, 1), 9, np.uint8)], -1), rgb),
        "uint16": (rgb.astype(np.uint16) * 257, rgb),
        "gray16": (gray.astype(np.uint16) * 257, np.stack([gray] * 3, -1)),
        "float": (rgb / 255.0, rgb),
    }[case]
    np.testing.assert_array_equal(to_rgb_uint8(source), expected)
    np.testing.assert_array_equal(_to_rgb_uint8(source, "x"), expected)
    if case in ("rgb", "gray", "rgba", "gray16"):  # formats PNG stores as they are
        path = tmp_path / f"{case}.png"
        skimage.io.imsave(path, source, check_contrast=False)
        dataset = Dataset()
        dataset.add_image("files", image_id=case, path=str(path))
        dataset.prepare()
        image = dataset.load_image(0)
        assert image.dtype == np.uint8 and image.shape == (6, 5, 3)
        np.testing.assert_array_equal(image, expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio tries its plugins in turn
def test_load_image_errors_name_the_file(tmp_path):
    dataset = Dataset()
    dataset.add_image("files", image_id=1, path=str(tmp_path / "missing.png"))
    broken = tmp_path / "broken.png"
    broken.write_text("this is not a png")
    dataset.add_image("files", image_id=2, path=str(broken))
    dataset.prepare()
    with pytest.raises(FileNotFoundError, match="missing.png"):
        dataset.load_image(0)
    with pytest.raises(DatasetError, match="broken.png"):
        dataset.load_image(1)
    with pytest.raises(DatasetError, match=r"expected a gray, gray\+alpha, RGB or RGBA image"):
        _to_rgb_uint8(np.zeros((4, 4, 5), np.uint8), "x")
    with pytest.raises(FileNotFoundError, match="nothing.jpg"):
        read_image_rgb(str(tmp_path / "nothing.jpg"))


# ---------------------------------------------------------------------------------------------
# A subclass written exactly like matterport's samples/balloon: it must work unchanged.
# ---------------------------------------------------------------------------------------------


class BalloonDataset(Dataset):

    def load_balloon(self, dataset_dir):
        self.add_class("balloon", 1, "balloon")
        annotations = json.load(open(os.path.join(dataset_dir, "via_region_data.json")))
        for a in annotations.values():
            polygons = [r["shape_attributes"] for r in a["regions"]]
            image_path = os.path.join(dataset_dir, a["filename"])
            image = skimage.io.imread(image_path)
            height, width = image.shape[:2]
            self.add_image("balloon", image_id=a["filename"], path=image_path,
                           width=width, height=height, polygons=polygons)

    def load_mask(self, image_id):
        image_info = self.image_info[image_id]
        if image_info["source"] != "balloon":
            return super(self.__class__, self).load_mask(image_id)
        info = self.image_info[image_id]
        mask = np.zeros([info["height"], info["width"], len(info["polygons"])], dtype=np.uint8)
        for i, p in enumerate(info["polygons"]):
            rr, cc = skimage.draw.polygon(p["all_points_y"], p["all_points_x"])
            mask[rr, cc, i] = 1
        return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if info["source"] == "balloon":
            return info["path"]
        super(self.__class__, self).image_reference(image_id)


def _write_balloons(directory):
    regions = {
        "a.png": [{"all_points_x": [2, 10, 10, 2], "all_points_y": [3, 3, 8, 8]}],
        "b.png": [{"all_points_x": [1, 5, 5, 1], "all_points_y": [1, 1, 4, 4]},
                  {"all_points_x": [12, 18, 15], "all_points_y": [10, 10, 16]}],
    }
    via = {}
    for name, polys in regions.items():
        skimage.io.imsave(directory / name, np.full((20, 24, 3), 100, np.uint8),
                          check_contrast=False)
        via[name] = {"filename": name, "regions": [{"shape_attributes": p} for p in polys]}
    (directory / "via_region_data.json").write_text(json.dumps(via))


def test_matterport_style_subclass_works_unchanged(tmp_path):
    _write_balloons(tmp_path)
    dataset = BalloonDataset()
    dataset.load_balloon(str(tmp_path))
    dataset.prepare()
    assert dataset.class_names == ["BG", "balloon"]
    assert dataset.num_images == 2
    assert dataset.image_reference(0).endswith("a.png")
    assert dataset.image_from_source_map["balloon.b.png"] == 1
    image = dataset.load_image(1)
    assert image.shape == (20, 24, 3) and image.dtype == np.uint8
    masks, class_ids = dataset.load_mask(1)
    assert masks.shape == (20, 24, 2) and masks.dtype == bool
    np.testing.assert_array_equal(class_ids, [1, 1])
    rr, cc = skimage.draw.polygon([1, 1, 4, 4], [1, 5, 5, 1])
    reference = np.zeros((20, 24), bool)
    reference[rr, cc] = True
    np.testing.assert_array_equal(masks[:, :, 0], reference)
    assert masks[:, :, 1].sum() > 0 and not (masks[:, :, 0] & masks[:, :, 1]).any()


def test_image_plugins_are_imported_before_any_loader_thread_runs():
    """make_dataset imports imageio's plugins on the calling thread: a first read on tf.data's
    worker threads importing them while the main thread imports TensorFlow deadlocked a run."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from mrcnn.data.shapes import ShapesDataset
        from mrcnn.data.pipeline import make_dataset
        from tiny_config import TinyConfig
        before = {m for m in sys.modules if m.startswith("imageio.plugins")}
        dataset = ShapesDataset(); dataset.load_shapes(2, 128, 128, seed=0); dataset.prepare()
        make_dataset(dataset, TinyConfig())
        after = {m for m in sys.modules if m.startswith("imageio.plugins")}
        print(len(before), len(after), "PIL.PngImagePlugin" in sys.modules)
    """)
    tests_dir = str(__import__("pathlib").Path(__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "PYTHONPATH": tests_dir})
    assert out.returncode == 0, out.stderr[-2000:]
    before, after, pil = out.stdout.split()
    assert before == "0" and int(after) >= 3 and pil == "True"
