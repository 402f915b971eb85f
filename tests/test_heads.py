"""Classifier and mask heads: matterport layer names, weight shapes, output shapes, numbers."""

import keras
import numpy as np
import pytest

from mrcnn.heads import RoiTimeDistributed, build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.imaging import compose_image_meta

META_SIZE = 12 + 81


def symbolic_inputs(num_rois, channels=256, sides=(32, 16, 8, 4), meta_size=META_SIZE):
    rois = keras.Input((num_rois, 4), name="rois")
    image_meta = keras.Input((meta_size,), name="image_meta")
    feature_maps = [keras.Input((s, s, channels), name=f"p{i + 2}") for i, s in enumerate(sides)]
    return rois, image_meta, feature_maps


def numeric_inputs(num_rois, channels, sides=(32, 16, 8, 4), num_classes=81, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 0.6, (batch, num_rois, 2))
    rois = np.concatenate([corner, corner + rng.uniform(0.05, 0.4, (batch, num_rois, 2))], -1)
    image_meta = np.stack([compose_image_meta(0, (128, 128, 3), (128, 128, 3), (0, 0, 128, 128),
                                              1.0, np.ones(num_classes))] * batch)
    feature_maps = [rng.normal(size=(batch, s, s, channels)) for s in sides]
    return [np.float32(a) for a in (rois, image_meta, *feature_maps)]


def weight_shapes(model, name):
    return [tuple(w.shape) for w in model.get_layer(name).weights]


def test_classifier_names_and_weight_shapes_coco():
    rois, image_meta, feature_maps = symbolic_inputs(num_rois=None)
    logits, probs, bbox = fpn_classifier_graph(rois, feature_maps, image_meta, 7, 81)
    model = keras.Model([rois, image_meta, *feature_maps], [logits, probs, bbox])
    assert weight_shapes(model, "mrcnn_class_conv1") == [(7, 7, 256, 1024), (1024,)]
    assert weight_shapes(model, "mrcnn_class_conv2") == [(1, 1, 1024, 1024), (1024,)]
    for bn in ("mrcnn_class_bn1", "mrcnn_class_bn2"):
        assert weight_shapes(model, bn) == [(1024,)] * 4  # gamma, beta, moving mean, variance
    assert weight_shapes(model, "mrcnn_class_logits") == [(1024, 81), (81,)]
    assert weight_shapes(model, "mrcnn_bbox_fc") == [(1024, 324), (324,)]
    for name in ("roi_align_classifier", "pool_squeeze", "mrcnn_class", "mrcnn_bbox"):
        assert model.get_layer(name).weights == []
    assert isinstance(model.get_layer("mrcnn_class_conv1"), keras.layers.TimeDistributed)
    assert [tuple(t.shape) for t in (logits, probs, bbox)] == [
        (None, None, 81), (None, None, 81), (None, None, 81, 4)]


def test_mask_names_and_weight_shapes_coco():
    rois, image_meta, feature_maps = symbolic_inputs(num_rois=100)
    mask = build_fpn_mask_graph(rois, feature_maps, image_meta, 14, 81)
    model = keras.Model([rois, image_meta, *feature_maps], mask)
    for i in range(1, 5):
        assert weight_shapes(model, f"mrcnn_mask_conv{i}") == [(3, 3, 256, 256), (256,)]
        assert weight_shapes(model, f"mrcnn_mask_bn{i}") == [(256,)] * 4
    assert weight_shapes(model, "mrcnn_mask_deconv") == [(2, 2, 256, 256), (256,)]
    assert weight_shapes(model, "mrcnn_mask") == [(1, 1, 256, 81), (81,)]
    assert model.get_layer("roi_align_mask").weights == []
    assert tuple(mask.shape) == (None, 100, 28, 28, 81)


@pytest.fixture(scope="module")
def tiny_heads():
    """Classifier (pool 3, fc 16) and mask (pool 4) heads for 4 classes on 8-channel features."""
    rois, image_meta, feature_maps = symbolic_inputs(5, channels=8, meta_size=12 + 4)
    heads = fpn_classifier_graph(rois, feature_maps, image_meta, 3, 4, fc_layers_size=16)
    mask = build_fpn_mask_graph(rois, feature_maps, image_meta, 4, 4)
    return keras.Model([rois, image_meta, *feature_maps], [*heads, mask])


def test_tiny_output_shapes_and_values(tiny_heads):
    logits, probs, bbox, mask = tiny_heads(numeric_inputs(5, 8, num_classes=4, batch=2))
    assert logits.shape == (2, 5, 4) and probs.shape == (2, 5, 4)
    assert bbox.shape == (2, 5, 4, 4) and mask.shape == (2, 5, 8, 8, 4)
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, keras.ops.softmax(logits), atol=1e-6)
    assert np.all((np.asarray(mask) >= 0) & (np.asarray(mask) <= 1))


def test_frozen_batch_norm_ignores_training_flag(tiny_heads):
    inputs = numeric_inputs(5, 8, num_classes=4, batch=2, seed=1)
    inference = tiny_heads(inputs, training=False)
    training = tiny_heads(inputs, training=True)
    for a, b in zip(inference, training):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_model_config_round_trip(tiny_heads):
    clone = keras.Model.from_config(tiny_heads.get_config())
    clone.set_weights(tiny_heads.get_weights())
    inputs = numeric_inputs(5, 8, num_classes=4, seed=2)
    for a, b in zip(tiny_heads(inputs), clone(inputs)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: keras.layers.Conv2D(6, (3, 3), padding="same"), (2, 3, 4, 4, 5)),
    (lambda: keras.layers.Conv2DTranspose(6, (2, 2), strides=2, activation="relu"),
     (2, 3, 4, 4, 5)),
    (lambda: keras.layers.Dense(7), (2, 3, 5)),
])
def test_roi_time_distributed_equals_keras_time_distributed(make_layer, shape):
    x = np.float32(np.random.default_rng(3).normal(size=shape))
    folded, stock = RoiTimeDistributed(make_layer()), keras.layers.TimeDistributed(make_layer())
    folded(x)
    stock(x)
    stock.set_weights(folded.get_weights())
    np.testing.assert_allclose(folded(x), stock(x), atol=1e-5)
    assert folded.compute_output_shape(x.shape) == tuple(folded(x).shape)
