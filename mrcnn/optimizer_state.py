"""The optimizer's state (step count, momentum / Adam moments) saved beside each checkpoint.

A resumed run that restarts its optimizer from zero loses SGD's momentum and, worse, Adam's
moment estimates and bias correction: the first steps after a resume then take steps of a
different size than the run was taking. ``epoch_0007.h5`` gets ``epoch_0007.optimizer.npz``
next to it; ``--resume`` restores it when the optimizer and the trainable variables are the
same as when it was saved (a resume with other ``--layers`` trains other variables, and starts
its optimizer afresh, saying so). The learning rate is not part of the state: the resume's
``--learning-rate`` applies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SUFFIX = ".optimizer.npz"


def optimizer_state_path(weights_path) -> Path:
    """``runs/x/checkpoints/epoch_0007.h5`` -> ``runs/x/checkpoints/epoch_0007.optimizer.npz``."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.stem + SUFFIX)


def _state_variables(optimizer):
    """The optimizer's variables except the learning rate (which the run's arguments set)."""
    return [v for v in optimizer.variables if not v.path.endswith("learning_rate")]


def _slot_name(variable) -> str:
    """``adam_3/conv1_kernel_momentum`` -> ``conv1_kernel_momentum``: the optimizers' own names
    (numbered per instance, nested under a loss-scale optimizer) are not part of what a slot is;
    order and shapes are checked too."""
    return variable.path.rsplit("/", 1)[-1]


def save_optimizer_state(optimizer, trainable_variables, path) -> Path:
    """Write the state of a built ``optimizer`` for ``trainable_variables`` to ``path``
    (temp file + rename, so a crash leaves the old file or none, never half of one)."""
    path = Path(path)
    variables = _state_variables(optimizer)
    header = {"optimizer": type(optimizer).__name__,
              "trainable": [v.path for v in trainable_variables],
              "slots": [_slot_name(v) for v in variables]}
    arrays = {f"slot_{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    from mrcnn.atomic import atomic_write

    return atomic_write(path, lambda f: np.savez(f, header=np.array(json.dumps(header)), **arrays))


def restore_optimizer_state(optimizer, trainable_variables, path) -> str:
    """Set ``optimizer``'s state from ``path`` if it fits; returns what happened, in words.

    Builds the optimizer for ``trainable_variables`` first (as the first training step would).
    Nothing is changed unless the optimizer class, the trainable variables (paths, in order)
    and every slot's name and shape match the file.
    """
    path = Path(path)
    if not path.is_file():
        return f"no optimizer state at {path}; the optimizer starts afresh"
    try:
        with np.load(path) as data:
            header = json.loads(str(data["header"]))
            arrays = [data[f"slot_{i}"] for i in range(len(header["slots"]))]
    except (OSError, ValueError, KeyError) as error:
        return f"optimizer state {path} unreadable ({error}); the optimizer starts afresh"
    if header["optimizer"] != type(optimizer).__name__:
        return (f"optimizer state {path} is {header['optimizer']}'s, the run uses "
                f"{type(optimizer).__name__}; the optimizer starts afresh")
    trainable = [v.path for v in trainable_variables]
    if header["trainable"] != trainable:
        return (f"optimizer state {path} was saved for {len(header['trainable'])} trainable "
                f"variables, this run trains {len(trainable)} others (other --layers?); "
                "the optimizer starts afresh")
    if not optimizer.built:
        optimizer.build(trainable_variables)
    variables = _state_variables(optimizer)
    names = [_slot_name(v) for v in variables]
    shapes_match = len(variables) == len(arrays) and all(
        tuple(v.shape) == a.shape for v, a in zip(variables, arrays))
    if names != header["slots"] or not shapes_match:
        return f"optimizer state {path} does not fit this optimizer's slots; it starts afresh"
    for variable, value in zip(variables, arrays):
        variable.assign(value)
    return f"optimizer state restored from {path} (its step {int(optimizer.iterations.numpy())})"
