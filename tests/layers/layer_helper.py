"""Shared checks for every custom layer: build, call, output shapes, config round-trip."""

from __future__ import annotations

import keras
import numpy as np


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _shapes_match(actual, expected):
    """True when ``actual`` equals ``expected``, where None in ``expected`` matches any size."""
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected))


def check_layer(layer, inputs, expected_shapes):
    """Call ``layer`` on numpy ``inputs`` (one array, or a list) and check it; returns its
    outputs as numpy arrays.

    Checks: every output's shape equals ``expected_shapes`` (a list, one shape per output) and
    ``compute_output_shape`` (None there matches any size); a symbolic call gives the same
    static shapes and dtypes; ``get_config -> from_config`` and
    ``serialize_keras_object -> deserialize_keras_object`` clones give equal outputs.
    """
    outputs = [np.asarray(o) for o in _as_list(layer(inputs))]
    assert len(outputs) == len(expected_shapes), (
        f"{layer.name}: {len(outputs)} outputs, expected {len(expected_shapes)}")
    single_input = not isinstance(inputs, (list, tuple))
    input_list = [inputs] if single_input else list(inputs)
    input_shapes = [np.shape(x) for x in input_list]
    declared = _as_list(layer.compute_output_shape(input_shapes[0] if single_input else input_shapes))
    if len(expected_shapes) == 1 and not isinstance(declared[0], (tuple, list)):
        declared = [tuple(declared)]
    for index, (output, expected, shape) in enumerate(zip(outputs, expected_shapes, declared)):
        assert output.shape == tuple(expected), (
            f"{layer.name} output {index}: shape {output.shape}, expected {tuple(expected)}")
        assert _shapes_match(output.shape, tuple(shape)), (
            f"{layer.name} output {index}: shape {output.shape}, compute_output_shape {shape}")

    symbolic_inputs = [keras.KerasTensor(np.shape(x), dtype=_dtype(x)) for x in input_list]
    symbolic = _as_list(layer(symbolic_inputs[0] if single_input else symbolic_inputs))
    for index, (tensor, output) in enumerate(zip(symbolic, outputs)):
        assert _shapes_match(output.shape, tuple(tensor.shape)), (
            f"{layer.name} output {index}: symbolic shape {tensor.shape} vs {output.shape}")
        assert keras.backend.standardize_dtype(tensor.dtype) == str(output.dtype), (
            f"{layer.name} output {index}: symbolic dtype {tensor.dtype} vs {output.dtype}")

    clones = {
        "from_config": layer.__class__.from_config(layer.get_config()),
        "serialize": keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer)),
    }
    for how, clone in clones.items():
        assert type(clone) is type(layer), f"{layer.name} {how}: got {type(clone)}"
        assert clone.get_config() == layer.get_config(), f"{layer.name} {how}: config differs"
        if layer.weights:
            clone(inputs)
            clone.set_weights(layer.get_weights())
        for index, (a, b) in enumerate(zip(outputs, _as_list(clone(inputs)))):
            np.testing.assert_array_equal(a, np.asarray(b),
                                          err_msg=f"{layer.name} {how} output {index}")
    return outputs


def _dtype(array):
    return keras.backend.standardize_dtype(np.asarray(array).dtype)
