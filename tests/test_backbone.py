"""Backbone, FPN and RPN graphs: matterport's layer names, weight shapes, output shapes."""

import keras
import numpy as np
import pytest

from mrcnn.backbone import BatchNorm, backbone_layer_names, build_backbone, resnet_graph
from mrcnn.fpn import build_fpn
from mrcnn.rpn import apply_rpn, build_rpn_model

SIDE = 128


def _trunk(architecture):
    image = keras.Input((SIDE, SIDE, 3), name="input_image")
    c1, c2, c3, c4, c5 = resnet_graph(image, architecture, stage5=True)
    return keras.Model(image, [c2, c3, c4, c5], name=architecture)


@pytest.fixture(scope="module")
def resnet50():
    return _trunk("resnet50")


@pytest.fixture(scope="module")
def resnet101():
    return _trunk("resnet101")


def _weight_shapes(model, layer_name):
    return [tuple(w.shape) for w in model.get_layer(layer_name).weights]


# ---- independent parameter count ------------------------------------------------------------

def _conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out  # every matterport conv has a bias


def _bn_params(c):
    return 4 * c  # gamma, beta, moving_mean, moving_variance


def _bottleneck_resnet_params(blocks_per_stage):
    total = _conv_params(7, 3, 64) + _bn_params(64)
    c_in = 64
    for (f1, f2, f3), blocks in zip([(64, 64, 256), (128, 128, 512), (256, 256, 1024),
                                     (512, 512, 2048)], blocks_per_stage):
        for block in range(blocks):
            total += _conv_params(1, c_in, f1) + _conv_params(3, f1, f2) + _conv_params(1, f2, f3)
            total += _bn_params(f1) + _bn_params(f2) + _bn_params(f3)
            if block == 0:
                total += _conv_params(1, c_in, f3) + _bn_params(f3)
            c_in = f3
    return total


def test_resnet50_parameter_count_matches_arithmetic(resnet50):
    expected = _bottleneck_resnet_params((3, 4, 6, 3))
    # Also Keras' ResNet50(include_top=False), which has the same convolutions with biases.
    assert expected == 23_587_712
    assert resnet50.count_params() == expected


def test_resnet101_parameter_count_matches_arithmetic(resnet101):
    assert resnet101.count_params() == _bottleneck_resnet_params((3, 4, 23, 3)) == 42_658_176


# ---- shapes and names -----------------------------------------------------------------------

@pytest.mark.parametrize("architecture", ["resnet50", "resnet101"])
def test_bottleneck_feature_map_shapes(architecture, resnet50, resnet101):
    model = resnet50 if architecture == "resnet50" else resnet101
    shapes = [tuple(o.shape) for o in model.outputs]
    assert shapes == [(None, 32, 32, 256), (None, 16, 16, 512), (None, 8, 8, 1024),
                      (None, 4, 4, 2048)]


def test_resnet50_matterport_weight_shapes(resnet50):
    assert _weight_shapes(resnet50, "conv1") == [(7, 7, 3, 64), (64,)]
    assert _weight_shapes(resnet50, "bn_conv1") == [(64,)] * 4
    assert _weight_shapes(resnet50, "res2a_branch2a") == [(1, 1, 64, 64), (64,)]
    assert _weight_shapes(resnet50, "res2a_branch1") == [(1, 1, 64, 256), (256,)]
    assert _weight_shapes(resnet50, "res3a_branch2b") == [(3, 3, 128, 128), (128,)]
    assert _weight_shapes(resnet50, "res4f_branch2c") == [(1, 1, 256, 1024), (1024,)]
    assert _weight_shapes(resnet50, "res5c_branch2c") == [(1, 1, 512, 2048), (2048,)]
    bn = resnet50.get_layer("bn5c_branch2c")
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert _weight_shapes(resnet50, "bn5c_branch2c") == [(2048,)] * 4
    names = {layer.name for layer in resnet50.layers}
    assert "res4g_branch2a" not in names and "res4w_branch2c" not in names
    assert {"res2c_out", "res3d_out", "res4f_out", "res5c_out"} <= names


def test_resnet101_has_stage4_blocks_b_to_w(resnet101):
    names = {layer.name for layer in resnet101.layers}
    for letter in "abcdefghijklmnopqrstuvw":
        assert f"res4{letter}_branch2a" in names and f"bn4{letter}_branch2c" in names
    assert "res4x_branch2a" not in names
    assert "res4b_branch1" not in names  # only conv blocks ("a") have a projection shortcut
    assert _weight_shapes(resnet101, "res4w_branch2c") == [(1, 1, 256, 1024), (1024,)]


def test_strides_are_on_branch2a_and_branch1(resnet50):
    assert resnet50.get_layer("res2a_branch2a").strides == (1, 1)
    for stage in (3, 4, 5):
        assert resnet50.get_layer(f"res{stage}a_branch2a").strides == (2, 2)
        assert resnet50.get_layer(f"res{stage}a_branch1").strides == (2, 2)
        assert resnet50.get_layer(f"res{stage}a_branch2b").strides == (1, 1)
    assert all(layer.use_bias for layer in resnet50.layers if isinstance(layer, keras.layers.Conv2D))


def test_layer_names_point_at_the_outputs(resnet50, resnet101, tiny_config):
    for model, arch in ((resnet50, "resnet50"), (resnet101, "resnet101")):
        tiny_config.BACKBONE = arch
        names = backbone_layer_names(tiny_config)
        assert [model.get_layer(names[k]).output for k in ("C2", "C3", "C4", "C5")] == model.outputs
    tiny_config.BACKBONE = "resnet101"
    assert backbone_layer_names(tiny_config) == {
        "C2": "res2c_out", "C3": "res3d_out", "C4": "res4w_out", "C5": "res5c_out"}


@pytest.mark.parametrize("architecture,last_blocks", [("resnet18", "bbbb"), ("resnet34", "cdfc")])
def test_basic_block_backbones(architecture, last_blocks, tiny_config):
    tiny_config.BACKBONE = architecture
    image = keras.Input((SIDE, SIDE, 3))
    features = build_backbone(image, tiny_config)
    assert [tuple(f.shape) for f in features] == [
        (None, 32, 32, 64), (None, 16, 16, 128), (None, 8, 8, 256), (None, 4, 4, 512)]
    model = keras.Model(image, features)
    names = backbone_layer_names(tiny_config)
    assert [names[f"C{s}"] for s in (2, 3, 4, 5)] == [
        f"res{s}{b}_out" for s, b in zip((2, 3, 4, 5), last_blocks)]
    assert [model.get_layer(names[f"C{s}"]).output for s in (2, 3, 4, 5)] == model.outputs
    assert _weight_shapes(model, "res2a_branch2a") == [(3, 3, 64, 64), (64,)]
    assert "res2a_branch1" not in {layer.name for layer in model.layers}  # 64 -> 64, no projection
    assert _weight_shapes(model, "res3a_branch1") == [(1, 1, 64, 128), (128,)]
    assert _weight_shapes(model, "bn5a_branch2b") == [(512,)] * 4


def test_build_backbone_callable_and_unknown(tiny_config):
    calls = []

    def tiny_backbone(image, config):
        calls.append(config)
        x = keras.layers.Conv2D(8, 3, strides=4, padding="same")(image)
        maps = [x]
        for _ in range(3):
            x = keras.layers.MaxPooling2D(2)(x)
            maps.append(x)
        return maps

    tiny_config.BACKBONE = tiny_backbone
    features = build_backbone(keras.Input((64, 64, 3)), tiny_config)
    assert calls == [tiny_config] and [f.shape[1] for f in features] == [16, 8, 4, 2]
    assert backbone_layer_names(tiny_config) == {}
    tiny_config.BACKBONE = "resnet7"
    with pytest.raises(ValueError, match="resnet7"):
        build_backbone(keras.Input((64, 64, 3)), tiny_config)


# ---- BatchNorm ------------------------------------------------------------------------------

def _prepared_bn(train_bn):
    bn = BatchNorm(train_bn=train_bn, name="bn_test")
    bn.build((None, 4, 4, 3))
    bn.moving_mean.assign(np.array([1.0, -2.0, 0.5], "float32"))
    bn.moving_variance.assign(np.array([4.0, 0.25, 1.0], "float32"))
    bn.gamma.assign(np.array([2.0, 1.0, 0.5], "float32"))
    bn.beta.assign(np.array([0.0, 1.0, -1.0], "float32"))
    return bn


def test_batchnorm_frozen_by_default():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(2, 4, 4, 3)).astype("float32")
    bn = _prepared_bn(train_bn=False)
    expected = (x - [1.0, -2.0, 0.5]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-3) \
        * [2.0, 1.0, 0.5] + [0.0, 1.0, -1.0]
    out_train = keras.ops.convert_to_numpy(bn(x, training=True))
    out_infer = keras.ops.convert_to_numpy(bn(x, training=False))
    np.testing.assert_allclose(out_train, out_infer, rtol=1e-6)
    np.testing.assert_allclose(out_infer, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.0, -2.0, 0.5])


def test_batchnorm_trains_when_asked():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(2, 4, 4, 3)).astype("float32")
    bn = _prepared_bn(train_bn=True)
    out_infer = keras.ops.convert_to_numpy(bn(x, training=False))
    out_train = keras.ops.convert_to_numpy(bn(x, training=True))
    assert not np.allclose(out_train, out_infer)
    # Training mode normalises with the batch statistics.
    centred = (out_train - [0.0, 1.0, -1.0]) / [2.0, 1.0, 0.5]
    np.testing.assert_allclose(centred.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    moving_mean = bn.moving_mean.numpy()
    np.testing.assert_allclose(moving_mean, 0.99 * np.array([1.0, -2.0, 0.5])
                               + 0.01 * x.mean(axis=(0, 1, 2)), rtol=1e-4)


def test_batchnorm_config_round_trip():
    bn = BatchNorm(train_bn=True, name="bn_x")
    assert bn.epsilon == 1e-3 and bn.momentum == 0.99
    config = bn.get_config()
    assert config["train_bn"] is True
    clone = keras.layers.deserialize(keras.layers.serialize(bn))
    assert isinstance(clone, BatchNorm) and clone.train_bn is True and clone.name == "bn_x"
    assert clone.compute_output_shape((None, 5, 5, 3)) == (None, 5, 5, 3)


# ---- FPN ------------------------------------------------------------------------------------

def test_fpn_shapes_and_names():
    c_maps = [keras.Input((SIDE // s, SIDE // s, c)) for s, c in
              ((4, 256), (8, 512), (16, 1024), (32, 2048))]
    pyramid = build_fpn(*c_maps, pyramid_size=32)
    assert [tuple(p.shape) for p in pyramid] == [
        (None, 32, 32, 32), (None, 16, 16, 32), (None, 8, 8, 32), (None, 4, 4, 32), (None, 2, 2, 32)]
    model = keras.Model(c_maps, pyramid)
    names = {layer.name for layer in model.layers}
    assert {"fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2", "fpn_p5upsampled", "fpn_p4upsampled",
            "fpn_p3upsampled", "fpn_p4add", "fpn_p3add", "fpn_p2add",
            "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"} <= names
    assert _weight_shapes(model, "fpn_c5p5") == [(1, 1, 2048, 32), (32,)]
    assert _weight_shapes(model, "fpn_p2") == [(3, 3, 32, 32), (32,)]
    # P6 takes every other cell of P5.
    values = [np.random.default_rng(i).normal(size=(1,) + tuple(c.shape[1:])).astype("float32")
              for i, c in enumerate(c_maps)]
    p5, p6 = [keras.ops.convert_to_numpy(t) for t in model(values)[3:]]
    np.testing.assert_allclose(p6, p5[:, ::2, ::2, :])


# ---- RPN ------------------------------------------------------------------------------------

def test_rpn_model_names_shapes_and_values():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=16)
    assert rpn.name == "rpn_model"
    assert rpn.inputs[0].name == "input_rpn_feature_map"
    assert [tuple(w.shape) for w in rpn.get_layer("rpn_conv_shared").weights] == [(3, 3, 16, 512), (512,)]
    assert [tuple(w.shape) for w in rpn.get_layer("rpn_class_raw").weights] == [(1, 1, 512, 6), (6,)]
    assert [tuple(w.shape) for w in rpn.get_layer("rpn_bbox_pred").weights] == [(1, 1, 512, 12), (12,)]

    feature_map = np.random.default_rng(0).normal(size=(2, 5, 4, 16)).astype("float32")
    logits, probs, deltas = [keras.ops.convert_to_numpy(t) for t in rpn(feature_map)]
    assert logits.shape == (2, 60, 2) and probs.shape == (2, 60, 2) and deltas.shape == (2, 60, 4)
    # Reference: the raw 1x1 conv outputs reshaped row-major, as matterport's tf.reshape.
    probe = keras.Model(rpn.inputs[0], [rpn.get_layer("rpn_class_raw").output,
                                     rpn.get_layer("rpn_bbox_pred").output])
    class_raw, bbox_raw = [keras.ops.convert_to_numpy(t) for t in probe(feature_map)]
    np.testing.assert_allclose(logits, class_raw.reshape(2, -1, 2), rtol=1e-6)
    np.testing.assert_allclose(deltas, bbox_raw.reshape(2, -1, 4), rtol=1e-6)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, softmax, rtol=1e-5, atol=1e-6)


def test_rpn_anchor_stride_2_and_apply_over_levels():
    rpn = build_rpn_model(anchor_stride=2, anchors_per_location=3, depth=8)
    levels = [keras.Input((side, side, 8)) for side in (16, 8, 4, 2, 1)]
    logits, probs, deltas = apply_rpn(rpn, levels)
    model = keras.Model(levels, [logits, probs, deltas])
    assert {"rpn_class_logits", "rpn_class", "rpn_bbox"} <= {layer.name for layer in model.layers}
    values = [np.ones((1, s, s, 8), "float32") * (i + 1) for i, s in enumerate((16, 8, 4, 2, 1))]
    out_logits, out_probs, out_deltas = [keras.ops.convert_to_numpy(t) for t in model(values)]
    # Stride 2 keeps ceil(side / 2)**2 locations per level: 64 + 16 + 4 + 1 + 1, times 3 anchors.
    assert out_logits.shape == (1, 258, 2) and out_deltas.shape == (1, 258, 4)
    per_level = [keras.ops.convert_to_numpy(rpn(v)[0]) for v in values]
    np.testing.assert_allclose(out_logits, np.concatenate(per_level, axis=1), rtol=1e-6)
    np.testing.assert_allclose(out_probs.sum(-1), 1.0, rtol=1e-6)
