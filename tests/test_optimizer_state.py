"""Optimizer state beside checkpoints: a resumed optimizer takes exactly the uninterrupted steps."""

import keras
import numpy as np
import pytest

from mrcnn.optimizer_state import optimizer_state_path, restore_optimizer_state, save_optimizer_state

GRADIENTS = [np.array([[0.5, -1.0, 2.0]], np.float32), np.array([[-0.25, 0.75, 0.1]], np.float32),
             np.array([[1.5, 0.5, -2.0]], np.float32)]


def variables(name="w"):
    return [keras.Variable(np.array([[1.0, 2.0, 3.0]], np.float32), name=name)]


def step(optimizer, variable_list, gradient):
    optimizer.apply([keras.ops.convert_to_tensor(gradient)], variable_list)


@pytest.mark.parametrize("make", [lambda lr: keras.optimizers.Adam(lr, beta_1=0.9),
                                  lambda lr: keras.optimizers.SGD(lr, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_a_restored_optimizer_continues_exactly(tmp_path, make):
    uninterrupted, weights = make(0.01), variables()
    for gradient in GRADIENTS:
        step(uninterrupted, weights, gradient)

    first, resumed_weights = make(0.01), variables()
    for gradient in GRADIENTS[:2]:
        step(first, resumed_weights, gradient)
    path = save_optimizer_state(first, resumed_weights, tmp_path / "epoch_0002.optimizer.npz")
    resumed = make(0.01)
    report = restore_optimizer_state(resumed, resumed_weights, path)
    assert "restored" in report and "step 2" in report
    step(resumed, resumed_weights, GRADIENTS[2])
    np.testing.assert_array_equal(resumed_weights[0].numpy(), weights[0].numpy())

    # What a fresh optimizer would have done instead: a different step (so the test can fail).
    fresh_weights = variables()
    for gradient in GRADIENTS[:2]:
        step(make(0.01), fresh_weights, gradient)  # (state thrown away each time)
    assert not np.allclose(fresh_weights[0].numpy(), resumed_weights[0].numpy())


def one_step_state(tmp_path, optimizer):
    """(weights, state file) after one step of ``optimizer``."""
    weights = variables()
    step(optimizer, weights, GRADIENTS[0])
    return weights, save_optimizer_state(optimizer, weights, tmp_path / "s.optimizer.npz")


def test_the_resumes_learning_rate_wins(tmp_path):
    weights, path = one_step_state(tmp_path, keras.optimizers.Adam(0.01))
    resumed = keras.optimizers.Adam(0.5)
    restore_optimizer_state(resumed, weights, path)
    assert float(resumed.learning_rate.numpy()) == pytest.approx(0.5)
    assert int(resumed.iterations.numpy()) == 1


def test_a_state_that_does_not_fit_is_not_applied(tmp_path):
    weights, path = one_step_state(tmp_path, keras.optimizers.Adam(0.01))

    other_layers = keras.optimizers.Adam(0.01)
    report = restore_optimizer_state(other_layers, variables("other"), path)
    assert "other --layers" in report and "afresh" in report and not other_layers.built
    other_kind = keras.optimizers.SGD(0.01, momentum=0.9)
    assert "Adam's, the run uses SGD" in restore_optimizer_state(other_kind, weights, path)
    missing = restore_optimizer_state(keras.optimizers.Adam(0.01), weights, tmp_path / "none.npz")
    assert missing.startswith("no optimizer state")
    (tmp_path / "bad.optimizer.npz").write_bytes(b"not a zip")
    bad = restore_optimizer_state(keras.optimizers.Adam(0.01), weights, tmp_path / "bad.optimizer.npz")
    assert "unreadable" in bad and "afresh" in bad


def test_state_file_sits_beside_its_checkpoint():
    assert str(optimizer_state_path("runs/x/checkpoints/epoch_0007_step_0012.h5")) == \
        "runs/x/checkpoints/epoch_0007_step_0012.optimizer.npz"


def test_mixed_precision_loss_scale_optimizer_round_trips(tmp_path):
    saved = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    weights, path = one_step_state(tmp_path, saved)
    resumed = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    assert "restored" in restore_optimizer_state(resumed, weights, path)
    for a, b in zip(saved.variables, resumed.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
