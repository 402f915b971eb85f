"""Training graph: layer selection, frozen BatchNorm, weight decay, one optimisation step."""

import numpy as np
import pytest

from mrcnn.model import MaskRCNN
from mrcnn.trainer import LAYER_REGEX, LOSS_NAMES, iter_layers, set_trainable


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
    from mrcnn.trainer import make_optimizer

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


def test_head_batchnorm_follows_train_head_bn_not_train_bn(model):
    set_trainable(model.keras_model, "all", train_bn=True, head_train_bn=False)
    for layer in _weighted_layers(model.keras_model):
        if _is_bn(layer):
            assert layer.trainable == (not layer.name.startswith("mrcnn_")), layer.name
    # None (the default) means "same as train_bn": matterport's behaviour.
    set_trainable(model.keras_model, "all", train_bn=True, head_train_bn=None)
    assert all(layer.trainable for layer in _weighted_layers(model.keras_model))


def test_config_head_train_bn_defaults_to_train_bn():
    from tiny_config import TinyConfig

    config = TinyConfig()
    config.TRAIN_BN, config.TRAIN_HEAD_BN = True, None
    assert config.head_train_bn is True
    config.TRAIN_HEAD_BN = False
    assert config.head_train_bn is False
    config.TRAIN_BN, config.TRAIN_HEAD_BN = False, None
    assert config.head_train_bn is False


def test_make_optimizer_sgd_or_adam_with_clipping():
    import keras

    from mrcnn.config import Config, ConfigError
    from mrcnn.trainer import make_optimizer

    config = Config()
    sgd = make_optimizer(config, 0.02)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert sgd.momentum == pytest.approx(0.9) and sgd.global_clipnorm == 5.0
    config.OPTIMIZER, config.LEARNING_MOMENTUM = "adam", 0.8
    adam = make_optimizer(config, 0.001)
    assert isinstance(adam, keras.optimizers.Adam)
    assert adam.beta_1 == pytest.approx(0.8) and adam.global_clipnorm == 5.0
    assert float(adam.learning_rate.numpy()) == pytest.approx(0.001)
    config.OPTIMIZER = "rmsprop"
    with pytest.raises(ConfigError, match="OPTIMIZER"):
        config.validate()


class _BnTrainer:
    """The two attributes recompute_batchnorm_statistics uses, around a one-BN graph."""

    def __init__(self, train_bn):
        import keras

        from mrcnn.backbone import BatchNorm

        inputs = keras.Input((3,))
        self.bn = BatchNorm(train_bn=train_bn, name="bn_probe")
        self.graph = keras.Model(inputs, self.bn(inputs))

    def _graph_inputs(self, batch):
        return batch


def test_precise_bn_sets_moving_stats_to_the_average_of_batch_stats():
    from mrcnn.trainer import recompute_batchnorm_statistics

    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, size=(6, 3)).astype(np.float32)
               for loc, scale in ((5.0, 2.0), (-1.0, 0.5), (3.0, 4.0), (0.0, 1.0))]
    trainer = _BnTrainer(train_bn=True)
    assert recompute_batchnorm_statistics(trainer, batches) == 4
    mean, variance = (np.asarray(v) for v in (trainer.bn.moving_mean, trainer.bn.moving_variance))
    # Keras BN uses the biased batch variance.
    np.testing.assert_allclose(mean, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(variance, np.mean([b.var(0) for b in batches], axis=0), rtol=1e-5)
    assert trainer.bn.momentum == pytest.approx(0.99)  # restored


def test_precise_bn_leaves_frozen_batchnorm_alone():
    from mrcnn.trainer import recompute_batchnorm_statistics

    trainer = _BnTrainer(train_bn=False)
    batch = np.full((4, 3), 7.0, np.float32)
    assert recompute_batchnorm_statistics(trainer, [batch]) == 0
    np.testing.assert_array_equal(np.asarray(trainer.bn.moving_mean), np.zeros(3))
