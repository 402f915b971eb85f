"""HDF5 weight I/O in matterport's Keras-2 layout: load by name, report, errors, round trip."""

import os

import h5py
import keras
import numpy as np
import pytest

from mrcnn.backbone import BatchNorm
from mrcnn.rpn import apply_rpn, build_rpn_model
from mrcnn.weights import (WeightsFileError, WeightsMismatchError, WeightsReport, load_weights,
                           save_weights)

NUM_CLASSES = 5
RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")
BN_NAMES = ("gamma", "beta", "moving_mean", "moving_variance")


def _small_model():
    """conv + BN + nested rpn_model + TimeDistributed heads + a plain Dense head."""
    image = keras.Input((8, 8, 3), name="input_image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(image)
    x = BatchNorm(name="bn_conv1")(x)
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=2, depth=4)
    _, _, rpn_bbox = apply_rpn(rpn, [x])  # (B, 128, 4)
    logits = keras.layers.TimeDistributed(keras.layers.Dense(NUM_CLASSES),
                                          name="mrcnn_class_logits")(rpn_bbox)
    normed = keras.layers.TimeDistributed(BatchNorm(), name="mrcnn_class_bn1")(logits)
    bbox = keras.layers.Dense(NUM_CLASSES * 4, name="mrcnn_bbox_fc")(normed)
    return keras.Model(image, [logits, bbox], name="small")


@pytest.fixture(scope="module")
def model_factory():
    return _small_model


def _snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def _random_file_layers(model, rng, skip=()):
    """[(layer name, [(weight name, array)])] in matterport's naming, random values."""
    layers = [("input_image", [])]
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        if isinstance(layer, keras.Model):  # nested rpn_model: names of its sub-layers
            weights = [(f"{sub}/{w.name}:0", rng.normal(size=w.shape).astype("float32"))
                       for sub in RPN_LAYERS for w in layer.get_layer(sub).weights]
        else:
            weights = [(f"{layer.name}/{w.name}:0", rng.normal(size=w.shape).astype("float32"))
                       for w in layer.weights]
        layers.append((layer.name, weights))
    return layers


def _write_matterport_file(path, file_layers, wrapper=False, as_str=False, chunked=False):
    """Write exactly what Keras 2 ``save_weights`` wrote (optionally inside ``model_weights``)."""
    def names(values):
        if as_str:
            return np.array(values, dtype=h5py.string_dtype())
        return np.array([v.encode("utf8") for v in values], dtype=bytes) if values else np.array([], "S1")

    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrapper else f
        layer_names = [name for name, _ in file_layers]
        if chunked:
            half = len(layer_names) // 2
            root.attrs["layer_names0"] = names(layer_names[:half])
            root.attrs["layer_names1"] = names(layer_names[half:])
        else:
            root.attrs["layer_names"] = names(layer_names)
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.0.8"
        for layer_name, weights in file_layers:
            group = root.create_group(layer_name)
            group.attrs["weight_names"] = names([w for w, _ in weights])
            for weight_name, array in weights:
                group.create_dataset(weight_name, data=array)
        if wrapper:
            f.attrs["model_config"] = b"{}"


def _assert_model_matches_file(model, file_layers, skip=()):
    for layer_name, weights in file_layers:
        if not weights or layer_name in skip:
            continue
        for weight_name, array in weights:
            sub, short = weight_name.split("/")[0], weight_name.split("/")[-1][:-2]
            layer = model.get_layer("rpn_model").get_layer(sub) if layer_name == "rpn_model" \
                else model.get_layer(layer_name)
            [variable] = [v for v in layer.weights if v.name == short]
            np.testing.assert_array_equal(variable.numpy(), array, err_msg=weight_name)


@pytest.mark.parametrize("wrapper,as_str,chunked", [(False, False, False), (True, False, False),
                                                    (False, True, False), (False, False, True)])
def test_load_matterport_layout(tmp_path, model_factory, wrapper, as_str, chunked):
    model = model_factory()
    file_layers = _random_file_layers(model, np.random.default_rng(0))
    file_layers.append(("fpn_c5p5", [("fpn_c5p5/kernel:0", np.ones((1, 1, 8, 4), "float32"))]))
    path = tmp_path / "mask_rcnn_small.h5"
    _write_matterport_file(path, file_layers, wrapper=wrapper, as_str=as_str, chunked=chunked)

    report = load_weights(model, path)

    _assert_model_matches_file(model, file_layers, skip=("fpn_c5p5",))
    assert report.loaded == ["conv1", "bn_conv1", "rpn_model", "mrcnn_class_logits",
                             "mrcnn_class_bn1", "mrcnn_bbox_fc"]
    assert report.skipped_not_in_model == ["fpn_c5p5"]
    assert report.skipped_not_in_file == [] and report.excluded == [] and report.mismatched == []
    text = str(report)
    assert "6 layers loaded" in text and "fpn_c5p5" in text


def test_weights_matched_by_short_name_then_by_order(tmp_path, model_factory):
    model = model_factory()
    rng = np.random.default_rng(1)
    bn_arrays = {n: rng.normal(size=(4,)).astype("float32") for n in BN_NAMES}
    # The file lists BN weights in another order, and names conv weights in a way we cannot
    # read (only their order tells which is which).
    bn_weights = [(f"bn_conv1/{n}:0", bn_arrays[n]) for n in reversed(BN_NAMES)]
    conv_kernel = rng.normal(size=(3, 3, 3, 4)).astype("float32")
    conv_bias = rng.normal(size=(4,)).astype("float32")
    conv_weights = [("conv2d_7/W:0", conv_kernel), ("conv2d_7/b:0", conv_bias)]
    _write_matterport_file(tmp_path / "w.h5", [("conv1", conv_weights), ("bn_conv1", bn_weights)])

    report = load_weights(model, tmp_path / "w.h5")

    bn = model.get_layer("bn_conv1")
    for variable in bn.weights:
        np.testing.assert_array_equal(variable.numpy(), bn_arrays[variable.name])
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), conv_kernel)
    np.testing.assert_array_equal(model.get_layer("conv1").bias.numpy(), conv_bias)
    assert report.loaded == ["conv1", "bn_conv1"]
    assert report.skipped_not_in_file == ["rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred",
                                          "mrcnn_class_logits", "mrcnn_class_bn1", "mrcnn_bbox_fc"]


def test_exclude_leaves_layers_untouched(tmp_path, model_factory):
    model = model_factory()
    file_layers = _random_file_layers(model, np.random.default_rng(2))
    _write_matterport_file(tmp_path / "w.h5", file_layers)
    before = _snapshot(model)

    report = load_weights(model, tmp_path / "w.h5", exclude=["mrcnn_bbox_fc", "rpn_bbox_pred"])

    assert sorted(report.excluded) == ["mrcnn_bbox_fc", "rpn_bbox_pred"]
    assert report.skipped_not_in_file == []
    for layer in (model.get_layer("mrcnn_bbox_fc"), model.get_layer("rpn_model").get_layer("rpn_bbox_pred")):
        for variable in layer.weights:
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
    _assert_model_matches_file(model, [(n, [w for w in ws if not w[0].startswith("rpn_bbox_pred")])
                                       for n, ws in file_layers], skip=("mrcnn_bbox_fc",))
    assert "excluded: 2" in str(report)


def _file_with_81_classes(model, rng):
    file_layers = _random_file_layers(model, rng)
    for i, (name, weights) in enumerate(file_layers):
        if name == "mrcnn_class_logits":
            file_layers[i] = (name, [("mrcnn_class_logits/kernel:0", np.zeros((4, 81), "float32")),
                                     ("mrcnn_class_logits/bias:0", np.zeros((81,), "float32"))])
    return file_layers


def test_shape_mismatch_names_layer_and_shapes_and_changes_nothing(tmp_path, model_factory):
    model = model_factory()
    _write_matterport_file(tmp_path / "coco.h5", _file_with_81_classes(model, np.random.default_rng(3)))
    before = _snapshot(model)

    with pytest.raises(WeightsMismatchError) as info:
        load_weights(model, tmp_path / "coco.h5")

    message = str(info.value)
    assert "mrcnn_class_logits: kernel shape in model (4, 5) vs in file (4, 81)" in message
    assert "mrcnn_class_logits: bias shape in model (5,) vs in file (81,)" in message
    assert "exclude=['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask']" in message
    assert info.value.report.mismatched[0] == ("mrcnn_class_logits", "kernel", (4, 5), (4, 81))
    after = _snapshot(model)
    for path, value in before.items():  # conv1 came first in the file and still was not assigned
        np.testing.assert_array_equal(after[path], value, err_msg=path)

    report = load_weights(model, tmp_path / "coco.h5", exclude=["mrcnn_class_logits"])
    assert report.excluded == ["mrcnn_class_logits"] and "conv1" in report.loaded


def test_weight_count_mismatch_is_reported(tmp_path, model_factory):
    model = model_factory()
    _write_matterport_file(tmp_path / "w.h5", [("conv1", [("conv1/kernel:0", np.zeros((3, 3, 3, 4), "float32"))])])
    with pytest.raises(WeightsMismatchError, match=r"conv1: weights in model \['kernel', 'bias'\] "
                                                   r"vs in file \['kernel'\]"):
        load_weights(model, tmp_path / "w.h5")


def test_file_errors(tmp_path, model_factory):
    model = model_factory()
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_weights(model, missing)

    text_file = tmp_path / "notes.h5"
    text_file.write_text("these are not weights\n")
    with pytest.raises(WeightsFileError, match=r"notes\.h5.*not a readable HDF5 weights file"):
        load_weights(model, text_file)

    full = tmp_path / "full.h5"
    save_weights(model, full)
    data = full.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match=r"truncated\.h5.*not a readable HDF5 weights file"):
        load_weights(model, truncated)

    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsFileError, match=r"bare\.h5.*layer_names"):
        load_weights(model, bare)


def test_keras3_weights_file_gets_a_hint(tmp_path, model_factory):
    model = model_factory()
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    with pytest.raises(WeightsFileError, match="Keras 3"):
        load_weights(model, path)


def test_save_writes_matterport_layout_and_round_trips(tmp_path, model_factory):
    source = model_factory()
    rng = np.random.default_rng(4)
    for variable in source.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    path = tmp_path / "ours.h5"
    save_weights(source, path)
    assert not os.path.exists(str(path) + ".tmp")

    with h5py.File(path, "r") as f:
        layer_names = list(f.attrs["layer_names"])
        assert layer_names[0] == b"input_image" and b"rpn_model" in layer_names
        assert f.attrs["backend"] == b"tensorflow" and f.attrs["keras_version"]
        assert list(f["rpn_model"].attrs["weight_names"]) == [
            f"{sub}/{w}:0".encode() for sub in RPN_LAYERS for w in ("kernel", "bias")]
        assert list(f["mrcnn_class_bn1"].attrs["weight_names"]) == [
            f"mrcnn_class_bn1/{w}:0".encode() for w in BN_NAMES]
        assert f["conv1/conv1/kernel:0"].shape == (3, 3, 3, 4)
        assert f["rpn_model/rpn_conv_shared/kernel:0"].shape == (3, 3, 4, 512)
        assert len(f["input_image"].attrs["weight_names"]) == 0

    target = model_factory()
    report = load_weights(target, path)
    assert report.skipped_not_in_file == [] and report.skipped_not_in_model == []
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    ordered = model_factory()
    load_weights(ordered, path, by_name=False)
    for a, b in zip(source.weights, ordered.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_failed_save_keeps_previous_file(tmp_path, model_factory, monkeypatch):
    model = model_factory()
    path = tmp_path / "ckpt.h5"
    save_weights(model, path)
    original = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        save_weights(model, path)
    assert path.read_bytes() == original
    assert not os.path.exists(str(path) + ".tmp")


def test_report_str_lists_mismatches():
    report = WeightsReport(path="x.h5", loaded=["conv1"], skipped_not_in_file=["a", "b"],
                           mismatched=[("mrcnn_bbox_fc", "kernel", (1024, 16), (1024, 324))])
    text = str(report)
    assert "x.h5" in text and "1 layers loaded" in text and "not in file" in text
    assert "mrcnn_bbox_fc: kernel shape in model (1024, 16) vs in file (1024, 324)" in text


def test_interoperates_with_keras_legacy_h5_code(tmp_path, model_factory):
    """Keras' own Keras-2 HDF5 reader/writer (kept in keras.src.legacy) agrees with our layout."""
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    source = model_factory()
    rng = np.random.default_rng(5)
    for variable in source.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))

    save_weights(source, tmp_path / "ours.h5")
    by_keras = model_factory()
    with h5py.File(tmp_path / "ours.h5", "r") as f:
        legacy.load_weights_from_hdf5_group_by_name(f, by_keras)

    with h5py.File(tmp_path / "keras.h5", "w") as f:
        legacy.save_weights_to_hdf5_group(f, source)
    by_us = model_factory()
    report = load_weights(by_us, tmp_path / "keras.h5")

    assert report.skipped_not_in_file == [] and report.skipped_not_in_model == []
    for a, b, c in zip(source.weights, by_keras.weights, by_us.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
        np.testing.assert_array_equal(a.numpy(), c.numpy(), err_msg=a.path)
