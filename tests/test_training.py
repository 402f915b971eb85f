"""Training graph: layer selection, frozen BatchNorm, weight decay, one optimisation step."""

import numpy as np
import pytest

from mrcnn.model import MaskRCNN
from mrcnn.training import LAYER_REGEX, LOSS_NAMES, iter_layers, set_trainable


@pytest.fixture(scope="module")
def model():
    from tiny_config import TinyConfig

    return MaskRCNN("training", TinyConfig())


def _weighted_layers(graph):
    return [layer for layer in iter_layers(graph) if layer.weights]


def _is_bn(layer):
    import keras

    return isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization)


def test_heads_trains_only_heads_rpn_and_fpn(model):
    names = set_trainable(model.keras_model, "heads", train_bn=False)
    assert names, "some layers are trainable"
    for layer in _weighted_layers(model.keras_model):
        is_head = layer.name.startswith(("mrcnn_", "rpn_", "fpn_"))
        expected = is_head and not _is_bn(layer)
        assert layer.trainable == expected, layer.name
    # Every trainable variable belongs to a head layer; the backbone contributes none.
    paths = [v.path for v in model.trainer.trainable_variables]
    assert paths and not any(p.startswith(("res", "conv1", "bn")) for p in paths)
    assert any("rpn_conv_shared" in p for p in paths), "the nested rpn_model's layers train"


@pytest.mark.parametrize("layers, first_trainable_stage", [("3+", 3), ("4+", 4), ("5+", 5)])
def test_stage_selection_freezes_earlier_stages(model, layers, first_trainable_stage):
    set_trainable(model.keras_model, layers, train_bn=False)
    for layer in _weighted_layers(model.keras_model):
        if layer.name.startswith("res") and not _is_bn(layer):
            stage = int(layer.name[3])
            assert layer.trainable == (stage >= first_trainable_stage), layer.name
        if layer.name == "conv1":
            assert not layer.trainable


def test_all_trains_every_layer_but_batchnorm_unless_train_bn(model):
    set_trainable(model.keras_model, "all", train_bn=False)
    layers = _weighted_layers(model.keras_model)
    assert all(layer.trainable != _is_bn(layer) for layer in layers)
    set_trainable(model.keras_model, "all", train_bn=True)
    assert all(layer.trainable for layer in layers)


def test_bad_layer_selection_is_a_clear_error(model):
    with pytest.raises(ValueError, match="neither one of"):
        set_trainable(model.keras_model, "res[", train_bn=False)
    with pytest.raises(ValueError, match="matches no layer"):
        set_trainable(model.keras_model, "nothing_is_called_this", train_bn=False)
    assert set(LAYER_REGEX) == {"heads", "3+", "4+", "5+", "all"}


def test_weight_decay_is_matterports_l2_without_gamma_and_beta(model):
    set_trainable(model.keras_model, "all", train_bn=True)
    expected = 0.0
    for v in model.trainer.trainable_weights:
        if v.path.endswith(("gamma", "beta")):
            continue
        w = np.asarray(v.numpy(), np.float64)
        expected += np.sum(w ** 2) / w.size
    expected *= model.config.WEIGHT_DECAY
    assert expected > 0
    np.testing.assert_allclose(float(model.trainer.weight_decay()), expected, rtol=1e-4)


def test_one_step_changes_only_trainable_weights(model):
    from mrcnn.data.pipeline import build_training_inputs
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.training import make_optimizer

    dataset = ShapesDataset()
    dataset.load_shapes(2, 128, 128, seed=3)
    dataset.prepare()
    rng = np.random.default_rng(0)
    sample = build_training_inputs(dataset, model.config, 0, rng=rng)
    batch = {k: v[None] for k, v in sample.items()}
    set_trainable(model.keras_model, "heads", train_bn=False)
    model.trainer.compile(optimizer=make_optimizer(model.config, 0.01))
    before = {v.path: v.numpy().copy() for v in model.keras_model.weights}
    metrics = model.trainer.train_on_batch(batch, return_dict=True)
    for name in LOSS_NAMES + ("loss",):
        assert np.isfinite(metrics[name]), name
    total = sum(metrics[name] for name in LOSS_NAMES) + metrics["weight_decay"]
    np.testing.assert_allclose(metrics["loss"], total, rtol=1e-4)
    trainable = {v.path for v in model.trainer.trainable_variables}
    for v in model.keras_model.weights:
        changed = not np.array_equal(before[v.path], v.numpy())
        if v.path not in trainable:
            assert not changed, f"frozen weight {v.path} changed"
    assert any(not np.array_equal(before[p], v.numpy())
               for v in model.keras_model.weights for p in [v.path] if p in trainable)
