"""Acceptance test: matterport's ``mask_rcnn_coco.h5`` layout loads into the full ResNet-101 model.

The weights file is written here with raw h5py in exactly the Keras-2 ``save_weights`` layout
matterport's file has, from a layer list built from matterport's architecture (not from our
model), so the test checks name-for-name and shape-for-shape compatibility. Values are random.
"""

import os
import re

import h5py
import keras
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.weights import WeightsFileError, WeightsMismatchError

# ---- matterport's Mask R-CNN (ResNet-101, COCO) as a list of HDF5 groups --------------------

R101_BLOCKS = (3, 4, 23, 3)
BOTTLENECK_FILTERS = ((64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048))
COCO_CLASSES = 81
PYRAMID = 256          # TOP_DOWN_PYRAMID_SIZE
FC_SIZE = 1024         # FPN_CLASSIF_FC_LAYERS_SIZE
POOL = 7               # POOL_SIZE
ANCHORS_PER_LOCATION = 3
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")  # Keras-2 order
CLASS_COUNT_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")


class Coco101Config(Config):
    NAME = "coco101"
    BACKBONE = "resnet101"
    NUM_CLASSES = COCO_CLASSES
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    POST_NMS_ROIS_INFERENCE = 100
    PRE_NMS_LIMIT = 1000
    DETECTION_MIN_CONFIDENCE = 0.0
    # Fewer detections keep the mask head and mask pasting cheap; 20 still compare plenty.
    DETECTION_MAX_INSTANCES = 20


class Four101Config(Coco101Config):
    NAME = "four101"
    NUM_CLASSES = 4


def _conv(name, kernel_shape):
    """A Keras-2 conv/dense group's weights: '<name>/kernel:0', '<name>/bias:0'."""
    return [(f"{name}/kernel:0", kernel_shape), (f"{name}/bias:0", (kernel_shape[-1],))]


def _bn(name, channels):
    return [(f"{name}/{w}:0", (channels,)) for w in BN_WEIGHTS]


class _Spec:
    """Ordered [(group name, [(weight name, shape)])], weightless layers with auto names too."""

    def __init__(self):
        self.groups = []
        self.counters = {}

    def add(self, name, weights=()):
        self.groups.append((name, list(weights)))

    def auto(self, kind):
        # Keras 2 named unnamed layers activation_1, add_1, ...
        self.counters[kind] = self.counters.get(kind, 0) + 1
        self.add(f"{kind}_{self.counters[kind]}")

    def conv(self, name, kernel_shape):
        self.add(name, _conv(name, kernel_shape))

    def conv_bn(self, suffix, kernel_shape, relu=True):
        self.conv(f"res{suffix}", kernel_shape)
        self.add(f"bn{suffix}", _bn(f"bn{suffix}", kernel_shape[-1]))
        if relu:
            self.auto("activation")


def _backbone(spec):
    spec.add("input_image")
    spec.auto("zero_padding2d")
    spec.conv("conv1", (7, 7, 3, 64))
    spec.add("bn_conv1", _bn("bn_conv1", 64))
    spec.auto("activation")
    spec.auto("max_pooling2d")
    channels = 64
    for stage, (count, (f1, f2, f3)) in enumerate(zip(R101_BLOCKS, BOTTLENECK_FILTERS), start=2):
        for index in range(count):
            block = f"{stage}{chr(ord('a') + index)}"
            spec.conv_bn(f"{block}_branch2a", (1, 1, channels, f1))
            spec.conv_bn(f"{block}_branch2b", (3, 3, f1, f2))
            spec.conv_bn(f"{block}_branch2c", (1, 1, f2, f3), relu=False)
            if index == 0:  # conv_block: projection shortcut
                spec.conv_bn(f"{block}_branch1", (1, 1, channels, f3), relu=False)
            spec.auto("add")
            spec.add(f"res{block}_out")
            channels = f3


def _fpn_and_rpn(spec):
    spec.conv("fpn_c5p5", (1, 1, 2048, PYRAMID))
    for level, channels in ((4, 1024), (3, 512), (2, 256)):
        spec.add(f"fpn_p{level + 1}upsampled")
        spec.conv(f"fpn_c{level}p{level}", (1, 1, channels, PYRAMID))
        spec.add(f"fpn_p{level}add")
    for level in (2, 3, 4, 5):
        spec.conv(f"fpn_p{level}", (3, 3, PYRAMID, PYRAMID))
    spec.add("fpn_p6")
    # The RPN is a nested Keras model: one group, weight names prefixed by its sub-layers.
    spec.add("rpn_model", _conv("rpn_conv_shared", (3, 3, PYRAMID, 512))
             + _conv("rpn_class_raw", (1, 1, 512, 2 * ANCHORS_PER_LOCATION))
             + _conv("rpn_bbox_pred", (1, 1, 512, 4 * ANCHORS_PER_LOCATION)))
    for name in ("rpn_class_logits", "rpn_class", "rpn_bbox", "input_anchors", "ROI",
                 "input_image_meta"):
        spec.add(name)


def _heads(spec):
    spec.add("roi_align_classifier")
    spec.conv("mrcnn_class_conv1", (POOL, POOL, PYRAMID, FC_SIZE))
    spec.add("mrcnn_class_bn1", _bn("mrcnn_class_bn1", FC_SIZE))
    spec.auto("activation")
    spec.conv("mrcnn_class_conv2", (1, 1, FC_SIZE, FC_SIZE))
    spec.add("mrcnn_class_bn2", _bn("mrcnn_class_bn2", FC_SIZE))
    spec.auto("activation")
    spec.add("pool_squeeze")
    spec.conv("mrcnn_class_logits", (FC_SIZE, COCO_CLASSES))
    spec.add("mrcnn_class")
    spec.conv("mrcnn_bbox_fc", (FC_SIZE, 4 * COCO_CLASSES))
    spec.add("mrcnn_bbox")
    spec.add("mrcnn_detection")
    spec.auto("lambda")
    spec.add("roi_align_mask")
    for index in range(1, 5):
        spec.conv(f"mrcnn_mask_conv{index}", (3, 3, PYRAMID, PYRAMID))
        spec.add(f"mrcnn_mask_bn{index}", _bn(f"mrcnn_mask_bn{index}", PYRAMID))
        spec.auto("activation")
    # Conv2DTranspose kernels are (h, w, out, in).
    spec.conv("mrcnn_mask_deconv", (2, 2, PYRAMID, PYRAMID))
    spec.conv("mrcnn_mask", (1, 1, PYRAMID, COCO_CLASSES))


def matterport_layers():
    """[(group, [(weight name, shape)])] of matterport's R101 COCO inference model, in order."""
    spec = _Spec()
    _backbone(spec)
    _fpn_and_rpn(spec)
    _heads(spec)
    return spec.groups


def _weighted(groups):
    return {name: weights for name, weights in groups if weights}


# Random weights need tempered scales for detections that look like detections (varied boxes,
# classes, scores, partial masks) rather than saturated ones: prediction layers get small gains.
OUTPUT_GAINS = {"rpn_class_raw": 0.1, "rpn_bbox_pred": 0.05, "mrcnn_class_logits": 0.1,
                "mrcnn_bbox_fc": 0.05, "mrcnn_mask": 0.3}
# bn_conv1's moving variance ~ conv1's output variance on mean-subtracted pixels (std ~50).
STEM_VARIANCE = 2500.0


def _random_value(weight_name, shape, rng):
    """Seeded values of a plausible scale, so activations stay tame through 101 layers."""
    layer, short = weight_name.split("/")[0], weight_name.split("/")[-1].split(":")[0]
    if short == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        scale = OUTPUT_GAINS.get(layer, 1.0) / np.sqrt(fan_in)
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
    if short == "gamma":
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    if short == "moving_variance":
        variance = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return variance * np.float32(STEM_VARIANCE) if layer == "bn_conv1" else variance
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)  # bias, beta, mean


def _write_keras2_file(path, groups, arrays, wrapped=False):
    """What Keras 2.1.6 ``save_weights`` (or ``save`` when ``wrapped``) wrote with h5py 2."""
    def name_array(names):
        return np.array([n.encode("utf8") for n in names], dtype=bytes)

    with h5py.File(path, "w") as f:
        root = f
        if wrapped:
            f.attrs["keras_version"] = np.bytes_(b"2.1.6")
            f.attrs["backend"] = np.bytes_(b"tensorflow")
            f.attrs["model_config"] = np.bytes_(b'{"class_name": "Model", "config": {}}')
            root = f.create_group("model_weights")
        root.attrs["layer_names"] = name_array([name for name, _ in groups])
        root.attrs["backend"] = np.bytes_(b"tensorflow")
        root.attrs["keras_version"] = np.bytes_(b"2.1.6")
        for name, weights in groups:
            group = root.create_group(name)
            # Keras 2 stored the plain list; an empty one becomes an empty float array.
            group.attrs["weight_names"] = name_array([w for w, _ in weights]) if weights else []
            for weight_name, _ in weights:
                group.create_dataset(weight_name, data=arrays[name][weight_name])


# ---- model-side helpers ---------------------------------------------------------------------

def _model_weight_groups(keras_model):
    """{group: [(weight key, variable)]} the way a Keras-2 file names them ('<layer>/<short>')."""
    groups = {}
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        # A nested model (rpn_model) names weights by its sub-layers; a TimeDistributed head by
        # the wrapper (its inner layer's own name is an auto name).
        leaves = layer.layers if isinstance(layer, keras.Model) else [layer]
        groups[layer.name] = [(f"{leaf.name}/{v.path.split('/')[-1]}", v)
                              for leaf in leaves for v in leaf.weights]
    return groups


def _file_key(weight_name):
    return weight_name.split(":")[0]


def _assert_models_equal(model_a, model_b):
    groups_b = _model_weight_groups(model_b)
    for group, entries in _model_weight_groups(model_a).items():
        for (key, variable), (key_b, variable_b) in zip(entries, groups_b[group], strict=True):
            assert key == key_b
            np.testing.assert_array_equal(variable_b.numpy(), variable.numpy(), err_msg=key)


def _assert_model_equals(keras_model, arrays, skip=()):
    for group, entries in _model_weight_groups(keras_model).items():
        if group in skip:
            continue
        file_arrays = {_file_key(w): a for w, a in arrays[group].items()}
        for key, variable in entries:
            np.testing.assert_array_equal(variable.numpy(), file_arrays[key], err_msg=key)


def _scramble(keras_model, value=-3.0):
    """Overwrite every variable, so a later load has to really assign each one."""
    for variable in keras_model.weights:
        variable.assign(np.full(variable.shape, value, dtype=variable.dtype))


def _snapshot(keras_model):
    return {v.path: v.numpy().copy() for v in keras_model.weights}


def _test_image():
    """A fixed 192x256 'scene': gradient sky/ground, a few solid objects, sensor noise."""
    rng = np.random.default_rng(2024)
    height, width = 192, 256
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([90 + 80 * rows / height, 120 + 40 * cols / width, 200 - 120 * rows / height],
                     axis=-1)
    for color, (y1, x1, y2, x2) in (((200, 40, 30), (100, 20, 170, 90)),
                                    ((30, 160, 60), (60, 150, 150, 230)),
                                    ((240, 230, 90), (20, 100, 70, 140))):
        image[y1:y2, x1:x2] = color
    ellipse = ((rows - 140) / 25.0) ** 2 + ((cols - 130) / 40.0) ** 2 <= 1
    image[ellipse] = (40, 40, 160)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _assert_same_detections(result, expected):
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(result[key], expected[key], err_msg=key)


# ---- fixtures (each R101 model is built once per module) ------------------------------------

@pytest.fixture(scope="module")
def file_arrays():
    """{group: {weight name: array}} for every weighted group, seeded."""
    rng = np.random.default_rng(81)
    return {name: {w: _random_value(w, shape, rng) for w, shape in weights}
            for name, weights in _weighted(matterport_layers()).items()}


@pytest.fixture(scope="module")
def coco_h5(tmp_path_factory, file_arrays):
    path = tmp_path_factory.mktemp("weights") / "mask_rcnn_coco.h5"
    _write_keras2_file(path, matterport_layers(), file_arrays)
    return path


@pytest.fixture(scope="module")
def coco_h5_full_model(tmp_path_factory, file_arrays):
    path = tmp_path_factory.mktemp("weights") / "mask_rcnn_coco_full.h5"
    _write_keras2_file(path, matterport_layers(), file_arrays, wrapped=True)
    return path


@pytest.fixture(scope="module")
def coco_model(coco_h5):
    """81-class R101 model with the matterport file loaded."""
    model = MaskRCNN("inference", Coco101Config())
    model.load_weights(coco_h5, by_name=True)
    return model


@pytest.fixture(scope="module")
def reference_model(file_arrays):
    """A second 81-class R101 model whose weights are set directly with ``layer.set_weights``."""
    model = MaskRCNN("inference", Coco101Config())
    for layer in model.keras_model.layers:
        if not layer.weights:
            continue
        if layer.name == "rpn_model":
            for sub in RPN_LAYERS:
                layer.get_layer(sub).set_weights(
                    [file_arrays["rpn_model"][f"{sub}/{w}:0"] for w in ("kernel", "bias")])
        else:
            layer.set_weights(list(file_arrays[layer.name].values()))
    return model


@pytest.fixture(scope="module")
def four_class_model():
    return MaskRCNN("inference", Four101Config())


@pytest.fixture(scope="module")
def coco_detections(coco_model):
    return coco_model.detect([_test_image()])[0]


# ---- the layer list itself -------------------------------------------------------------------

def test_matterport_layer_list_has_known_shapes():
    weighted = _weighted(matterport_layers())
    shapes = {w: shape for weights in weighted.values() for w, shape in weights}
    assert shapes["conv1/kernel:0"] == (7, 7, 3, 64)
    assert shapes["mrcnn_bbox_fc/kernel:0"] == (1024, 324)
    assert shapes["mrcnn_mask/kernel:0"] == (1, 1, 256, 81)
    assert shapes["mrcnn_class_logits/kernel:0"] == (1024, 81)
    assert shapes["rpn_class_raw/kernel:0"] == (1, 1, 512, 6)
    assert shapes["fpn_c5p5/kernel:0"] == (1, 1, 2048, 256)
    assert shapes["res4w_branch2c/kernel:0"] == (1, 1, 256, 1024)  # last block of R101 stage 4
    assert shapes["res5a_branch1/kernel:0"] == (1, 1, 1024, 2048)
    # 33 blocks x 3 convs + 4 projections + conv1 = 104 conv/BN pairs; 8 FPN; rpn_model; 16 heads.
    assert len(weighted) == 2 * 104 + 8 + 1 + 16
    assert sum(int(np.prod(s)) for s in shapes.values()) > 60_000_000


def test_file_has_keras2_layout(coco_h5, coco_h5_full_model):
    with h5py.File(coco_h5, "r") as f:
        layer_names = f.attrs["layer_names"]
        assert layer_names.dtype.kind == "S" and b"activation_1" in list(layer_names)
        assert f.attrs["keras_version"] == b"2.1.6" and f.attrs["backend"] == b"tensorflow"
        assert list(f["rpn_model"].attrs["weight_names"][:2]) == [b"rpn_conv_shared/kernel:0",
                                                                  b"rpn_conv_shared/bias:0"]
        assert f["rpn_model/rpn_class_raw/kernel:0"].shape == (1, 1, 512, 6)
        assert f["mrcnn_class_conv1/mrcnn_class_conv1/kernel:0"].shape == (7, 7, 256, 1024)
        assert list(f["bn2a_branch2a"].attrs["weight_names"]) == [
            f"bn2a_branch2a/{w}:0".encode() for w in BN_WEIGHTS]
        assert len(f["add_1"].attrs["weight_names"]) == 0
    with h5py.File(coco_h5_full_model, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names" in f["model_weights"].attrs


# ---- loading matterport's layout ---------------------------------------------------------------

def test_model_has_exactly_matterports_weighted_layers(coco_model):
    expected = _weighted(matterport_layers())
    ours = _model_weight_groups(coco_model.keras_model)
    assert sorted(ours) == sorted(expected), (
        f"missing {sorted(set(expected) - set(ours))}, extra {sorted(set(ours) - set(expected))}")
    for group, weights in expected.items():
        expected_weights = [(_file_key(w), shape) for w, shape in weights]
        our_weights = [(key, tuple(v.shape)) for key, v in ours[group]]
        assert our_weights == expected_weights, group


@pytest.mark.parametrize("layout", ["save_weights", "full_model"])
def test_load_matterport_file_assigns_every_variable(coco_model, coco_h5, coco_h5_full_model,
                                                     file_arrays, layout):
    path = coco_h5 if layout == "save_weights" else coco_h5_full_model
    _scramble(coco_model.keras_model)
    report = coco_model.load_weights(path, by_name=True)
    _assert_model_equals(coco_model.keras_model, file_arrays)
    assert sorted(report.loaded) == sorted(file_arrays)
    assert len(report.loaded) == len(file_arrays)
    assert report.mismatched == [] and report.excluded == []
    assert report.skipped_not_in_file == [] and report.skipped_not_in_model == []
    assert report.path == os.fspath(path)


@pytest.mark.slow
def test_detect_equals_model_with_directly_set_weights(coco_detections, reference_model):
    # The comparison means something only if the detections are not degenerate.
    rois, masks = coco_detections["rois"], coco_detections["masks"]
    assert len(coco_detections["class_ids"]) >= 5, "random weights gave too few detections"
    assert len(set(coco_detections["class_ids"].tolist())) >= 3
    assert np.all(np.isfinite(coco_detections["scores"]))
    assert len(np.unique(coco_detections["scores"])) == len(coco_detections["scores"])
    assert np.all(rois[:, 2:] - rois[:, :2] >= 8), "degenerate boxes"
    pixels = masks.sum(axis=(0, 1))
    assert masks.shape[:2] == (192, 256) and np.all(pixels > 0) and len(np.unique(pixels)) > 3
    _assert_same_detections(reference_model.detect([_test_image()])[0], coco_detections)


# ---- another class count -------------------------------------------------------------------------

def test_exclude_loads_coco_weights_into_four_class_model(four_class_model, coco_h5, file_arrays):
    keras_model = four_class_model.keras_model
    before = _snapshot(keras_model)
    report = four_class_model.load_weights(coco_h5, exclude=CLASS_COUNT_LAYERS)
    weighted_heads = {"mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"}
    # mrcnn_bbox is a weightless Reshape in both models: nothing to exclude.
    assert weighted_heads <= set(report.excluded) <= set(CLASS_COUNT_LAYERS)
    assert sorted(report.loaded) == sorted(set(file_arrays) - weighted_heads)
    assert report.mismatched == [] and report.skipped_not_in_file == []
    _assert_model_equals(keras_model, file_arrays, skip=weighted_heads)
    for name in weighted_heads:
        for variable in keras_model.get_layer(name).weights:
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])


def test_class_count_mismatch_names_layer_shapes_and_exclude(four_class_model, coco_h5):
    keras_model = four_class_model.keras_model
    _scramble(keras_model, value=0.25)
    before = _snapshot(keras_model)
    with pytest.raises(WeightsMismatchError) as excinfo:
        four_class_model.load_weights(coco_h5)
    message = str(excinfo.value)
    assert "mrcnn_bbox_fc" in message and str(coco_h5) in message
    assert "(1024, 16)" in message and "(1024, 324)" in message
    assert "exclude=" in message and all(name in message for name in CLASS_COUNT_LAYERS)
    mismatched = {(layer, model, file) for layer, _, model, file in excinfo.value.report.mismatched}
    assert ("mrcnn_bbox_fc", (1024, 16), (1024, 324)) in mismatched
    after = _snapshot(keras_model)
    assert after.keys() == before.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


# ---- broken files ------------------------------------------------------------------------------

def test_truncated_file_is_a_weights_file_error(coco_model, coco_h5, tmp_path):
    truncated = tmp_path / "truncated.h5"
    with open(coco_h5, "rb") as source, open(truncated, "wb") as target:
        target.write(source.read(os.path.getsize(coco_h5) // 2))
    conv1 = coco_model.keras_model.get_layer("conv1").weights[0].numpy().copy()
    with pytest.raises(WeightsFileError, match=re.escape(str(truncated))):
        coco_model.load_weights(truncated)
    np.testing.assert_array_equal(coco_model.keras_model.get_layer("conv1").weights[0].numpy(),
                                  conv1)


def test_non_hdf5_and_missing_files(coco_model, tmp_path):
    from skimage import io

    png = tmp_path / "photo.png"
    io.imsave(png, _test_image(), check_contrast=False)
    text = tmp_path / "notes.h5"
    text.write_text("these are not weights\n")
    for path in (png, text):
        with pytest.raises(WeightsFileError, match=re.escape(str(path))):
            coco_model.load_weights(path)
    missing = tmp_path / "nope" / "mask_rcnn_coco.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        coco_model.load_weights(missing)


# ---- our own format ----------------------------------------------------------------------------

@pytest.mark.slow
def test_own_format_round_trips_exactly(coco_model, reference_model, coco_detections, file_arrays,
                                        tmp_path):
    _assert_model_equals(coco_model.keras_model, file_arrays)  # what coco_detections came from
    path = tmp_path / "ours" / "round_trip.h5"
    coco_model.save_weights(path)
    _scramble(reference_model.keras_model, value=0.5)
    report = reference_model.load_weights(path)
    assert report.mismatched == [] and report.skipped_not_in_file == []
    assert report.skipped_not_in_model == [] and len(report.loaded) == len(file_arrays)
    _assert_models_equal(coco_model.keras_model, reference_model.keras_model)
    _assert_same_detections(reference_model.detect([_test_image()])[0], coco_detections)
