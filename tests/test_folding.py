"""FoldedGraph: Conv2D -> BatchNorm pairs run as one convolution at inference, same numbers."""

import keras
import numpy as np
import pytest

from mrcnn.backbone import BatchNorm
from mrcnn.folding import FoldedGraph, conv_bn_pairs


def randomize_batchnorms(model, seed=0):
    """Non-trivial moving statistics, so a wrong fold shows (identity BN folds trivially)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.2, 3, n)])


def small_model():
    """conv+bn+relu (folds), conv(stride 2, no bias)+bn (folds), conv used twice (no fold),
    conv with its own relu + bn (no fold), conv whose output is a model output (no fold)."""
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="a")(x)
    x = keras.layers.Activation("relu")(BatchNorm(name="bn_a")(x))
    x = BatchNorm(name="bn_b")(keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="b")(x))
    shared = keras.layers.Conv2D(8, 1, name="c")(x)
    x = keras.layers.Add()([BatchNorm(name="bn_c")(shared), shared])
    x = BatchNorm(name="bn_d")(keras.layers.Conv2D(8, 1, activation="relu", name="d")(x))
    e = keras.layers.Conv2D(4, 1, name="e")(x)
    model = keras.Model(inputs, [BatchNorm(name="bn_e")(e), e])
    randomize_batchnorms(model)
    return model


def test_only_plain_conv_bn_pairs_fold():
    model = small_model()
    folded = {conv.name: bn.name for conv, bn in conv_bn_pairs(model).values()}
    assert folded == {"a": "bn_a", "b": "bn_b"}
    assert {conv.name for conv, _ in conv_bn_pairs(model, {"a"}).values()} == {"b"}


def test_folded_outputs_equal_the_unfolded_model():
    model = small_model()
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
    expected = [np.asarray(v) for v in model(x, training=False)]
    graph = FoldedGraph(model)
    assert graph.folded_count == 2
    for got, want in zip(graph(x), expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_fold_of_a_1x1_conv_matches_numpy():
    x = inputs = keras.Input((4, 5, 3))
    model = keras.Model(inputs, BatchNorm(name="bn")(keras.layers.Conv2D(2, 1, name="conv")(x)))
    randomize_batchnorms(model, seed=2)
    kernel, bias = model.get_layer("conv").get_weights()
    gamma, beta, mean, variance = model.get_layer("bn").get_weights()
    image = np.random.default_rng(3).normal(size=(1, 4, 5, 3)).astype(np.float32)
    conv = image @ kernel[0, 0] + bias  # (1, 4, 5, 2)
    expected = (conv - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    graph = FoldedGraph(model)
    assert graph.folded_count == 1
    np.testing.assert_allclose(np.asarray(graph(image)), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_model():
    from tiny_config import TinyConfig

    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", TinyConfig())
    randomize_batchnorms(model.keras_model, seed=4)
    return model


def test_every_backbone_batchnorm_of_the_model_folds(tiny_model):
    # If a Keras upgrade changes the graph internals FoldedGraph uses, it falls back to the plain
    # call; this makes that visible instead of silently slower.
    graph = tiny_model.keras_model
    backbone_bns = [layer for layer in graph.layers if isinstance(layer, BatchNorm)]
    assert len(backbone_bns) > 10
    assert FoldedGraph(graph).folded_count == len(backbone_bns)


def test_folded_pyramid_equals_the_unfolded_one(tiny_model):
    graph = tiny_model.keras_model
    levels = keras.Model(graph.inputs[0], [graph.get_layer(f"fpn_p{i}").output for i in range(2, 7)])
    image = np.random.default_rng(5).normal(size=(1, 128, 128, 3)).astype(np.float32) * 50
    expected = [np.asarray(v) for v in levels(image, training=False)]
    for got, want in zip(FoldedGraph(levels)(image), expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(np.asarray(got) / scale, want / scale, atol=1e-5)
