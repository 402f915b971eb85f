"""HDF5 weight I/O by layer name, in the Keras-2 layout of matterport's ``mask_rcnn_coco.h5``.

File layout (what Keras 2 ``save_weights`` wrote, and what ``save_weights`` here writes)::

    /                      attrs: layer_names [bytes...], backend, keras_version
    /model_weights/...     (optional wrapper when a whole model was saved)
    /<layer>               attrs: weight_names ["<layer>/kernel:0", "<layer>/bias:0"]
    /<layer>/<layer>/kernel:0      dataset
    /rpn_model             attrs: weight_names ["rpn_conv_shared/kernel:0", ...]  (nested model)

TimeDistributed heads are stored under the wrapper's name (``mrcnn_class_conv1``). Weights
within a layer are matched by their short name (kernel, bias, gamma, beta, moving_mean,
moving_variance), falling back to order. Nothing is assigned unless the whole file checks out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import keras
import numpy as np

from mrcnn.errors import WeightsError, WeightsFileError, WeightsMismatchError  # noqa: F401

# Layers whose shapes depend on NUM_CLASSES: exclude them to fine-tune COCO weights on new classes.
CLASS_COUNT_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
# Keras 2 split attributes larger than the HDF5 object header limit into name0, name1, ...
HDF5_OBJECT_HEADER_LIMIT = 64512


@dataclass
class WeightsReport:
    """What ``load_weights`` did, layer by layer."""

    path: str = ""
    loaded: list = field(default_factory=list)               # file layers assigned
    skipped_not_in_file: list = field(default_factory=list)  # model layers with weights, absent from file
    skipped_not_in_model: list = field(default_factory=list)  # file layers with weights, absent from model
    excluded: list = field(default_factory=list)             # layers left alone on request
    mismatched: list = field(default_factory=list)           # (layer, weight, model_shape, file_shape)

    def __str__(self) -> str:
        lines = [f"weights from {self.path}: {len(self.loaded)} layers loaded"]
        for title, names in (("not in file (kept their values)", self.skipped_not_in_file),
                             ("in file but not in model (ignored)", self.skipped_not_in_model),
                             ("excluded", self.excluded)):
            if names:
                lines.append(f"  {title}: {len(names)}: {_abbreviate(names)}")
        for layer, weight, model_shape, file_shape in self.mismatched:
            lines.append(f"  mismatch {_describe_mismatch(layer, weight, model_shape, file_shape)}")
        return "\n".join(lines)


def _abbreviate(names, limit=12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _describe_mismatch(layer, weight, model_shape, file_shape) -> str:
    if weight == "weight names":
        return f"{layer}: weights in model {list(model_shape)} vs in file {list(file_shape)}"
    return f"{layer}: {weight} shape in model {tuple(model_shape)} vs in file {tuple(file_shape)}"


# ---- model side ------------------------------------------------------------------------------

def _short_name(name: str) -> str:
    """'res2a_branch2a/res2a_branch2a/kernel:0' -> 'kernel'."""
    last = name.split("/")[-1]
    return last.split(":")[0]


def _is_nested_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def _layer_index(model) -> dict:
    """{name: layer} over the model and its nested models; outer names win on a clash."""
    index = {}
    pending = [model]
    while pending:
        current = pending.pop(0)
        for layer in current.layers:
            index.setdefault(layer.name, layer)
            if _is_nested_model(layer):
                pending.append(layer)
    return index


def _leaf_layers_with_weights(model):
    """Non-model layers that own weights, depth first through nested models."""
    for layer in model.layers:
        if _is_nested_model(layer):
            yield from _leaf_layers_with_weights(layer)
        elif layer.weights:
            yield layer


def _covered_leaves(layer) -> list:
    """The leaf layers a file group for ``layer`` covers: itself, or a nested model's leaves."""
    return list(_leaf_layers_with_weights(layer)) if _is_nested_model(layer) else [layer]


def _variable_short_name(variable) -> str:
    return _short_name(getattr(variable, "path", None) or variable.name)


# ---- file side -------------------------------------------------------------------------------

def _decode(value) -> str:
    # h5py >= 3 returns str for variable-length strings and bytes for fixed-length ones.
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _read_name_list(group, name) -> list:
    """A list-of-names attribute, joining Keras 2's chunked ``name0``, ``name1``... form."""
    if name in group.attrs:
        values = group.attrs[name]
    elif f"{name}0" in group.attrs:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    else:
        return None
    return [_decode(v) for v in np.atleast_1d(values)]


def _write_name_list(group, name, names) -> None:
    """Store names as fixed-length bytes like Keras 2, chunked when over the header limit."""
    data = np.array([n.encode("utf8") for n in names], dtype=bytes) if names else np.array([], "S1")
    chunks = max(1, int(np.ceil(data.nbytes / HDF5_OBJECT_HEADER_LIMIT)))
    if chunks == 1:
        group.attrs[name] = data
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = part


def _open_weights_file(path):
    """Open ``path`` read-only and return (h5py.File, group holding ``layer_names``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if not h5py.is_hdf5(path):
            raise OSError("no HDF5 signature")
        handle = h5py.File(path, "r")
    except OSError as e:
        raise WeightsFileError(f"{path}: not a readable HDF5 weights file ({e})") from None
    root = handle
    if "layer_names" not in _attr_names(root) and "model_weights" in root:
        root = root["model_weights"]  # a whole-model save wraps the weights
    if "layer_names" not in _attr_names(root):
        hint = (" It looks like a Keras 3 '.weights.h5' file; load it with keras_model.load_weights."
                if "layers" in root and "vars" in root else "")
        handle.close()
        raise WeightsFileError(f"{path}: HDF5 file has no 'layer_names' attribute, so it is not a "
                               f"Keras-2 (matterport) weights file.{hint}")
    return handle, root


def _attr_names(group) -> set:
    names = set(group.attrs.keys())
    return names | {n.rstrip("0123456789") for n in names}


def _read_file_layers(path, root) -> list:
    """[(layer name, [(weight name, array), ...])] for file layers that hold weights."""
    layers = []
    try:
        for layer_name in _read_name_list(root, "layer_names"):
            group = root[layer_name]
            weight_names = _read_name_list(group, "weight_names") or []
            if weight_names:
                layers.append((layer_name, [(w, np.asarray(group[w])) for w in weight_names]))
    except (OSError, KeyError, RuntimeError, ValueError) as e:
        raise WeightsFileError(f"{path}: not a readable HDF5 weights file; reading failed ({e})") \
            from None
    return layers


# ---- matching --------------------------------------------------------------------------------

def _match_layer(layer_name, variables, file_weights, plan, report):
    """Pair one layer's variables with file arrays (short name, else order); queue or report."""
    model_names = [_variable_short_name(v) for v in variables]
    file_names = [_short_name(w) for w, _ in file_weights]
    if len(model_names) != len(file_names):
        report.mismatched.append((layer_name, "weight names", model_names, file_names))
        return
    by_name = len(set(model_names)) == len(model_names) and set(model_names) == set(file_names)
    if by_name:
        arrays = dict(zip(file_names, (a for _, a in file_weights)))
        pairs = [(v, n, arrays[n]) for v, n in zip(variables, model_names)]
    else:
        pairs = [(v, n, a) for v, n, (_, a) in zip(variables, model_names, file_weights)]
    ok = True
    for variable, name, array in pairs:
        if tuple(variable.shape) != tuple(array.shape):
            report.mismatched.append((layer_name, name, tuple(variable.shape), tuple(array.shape)))
            ok = False
    if ok:
        plan.extend((v, a) for v, _, a in pairs)


def _match_nested(model, group_name, file_weights, exclude, plan, report, assigned):
    """Map a nested model's file weights ('<sub layer>/<short>:0') onto its sub-layers."""
    index = _layer_index(model)
    by_layer: dict = {}
    for weight_name, array in file_weights:
        prefix = weight_name.split("/")[0] if "/" in weight_name else ""
        by_layer.setdefault(prefix, []).append((weight_name, array))
    if all(prefix in index for prefix in by_layer):
        for prefix, weights in by_layer.items():
            if prefix in exclude:
                report.excluded.append(prefix)
                assigned.add(id(index[prefix]))
                continue
            _match_layer(prefix, index[prefix].weights, weights, plan, report)
            assigned.add(id(index[prefix]))
        return
    # Sub-layer names differ (e.g. auto-named layers): fall back to the order of all weights.
    leaves = _covered_leaves(model)
    variables = [v for leaf in leaves for v in leaf.weights]
    _match_layer(group_name, variables, file_weights, plan, report)
    assigned.update(id(leaf) for leaf in leaves)


def _plan_by_name(keras_model, file_layers, exclude, report):
    """[(variable, array)] to assign, filling ``report``; ``assigned`` = ids of covered layers."""
    index = _layer_index(keras_model)
    plan, assigned = [], set()
    for layer_name, file_weights in file_layers:
        layer = index.get(layer_name)
        if layer_name in exclude:
            report.excluded.append(layer_name)
            if layer is not None:
                assigned.update(id(leaf) for leaf in _covered_leaves(layer))
            continue
        if layer is None:
            report.skipped_not_in_model.append(layer_name)
            continue
        before = len(report.mismatched)
        if _is_nested_model(layer):
            _match_nested(layer, layer_name, file_weights, exclude, plan, report, assigned)
        else:
            _match_layer(layer_name, layer.weights, file_weights, plan, report)
            assigned.add(id(layer))
        if len(report.mismatched) == before:
            report.loaded.append(layer_name)
    return plan, assigned


def _plan_by_order(keras_model, file_layers, report):
    """Keras-2 ``by_name=False``: the i-th file layer with weights -> the i-th model layer."""
    model_layers = [layer for layer in keras_model.layers if layer.weights]
    if len(model_layers) != len(file_layers):
        raise WeightsMismatchError(
            f"{report.path}: file has {len(file_layers)} layers with weights but the model has "
            f"{len(model_layers)}; load with by_name=True to match layers by name", report)
    plan, assigned = [], set()
    for layer, (_, file_weights) in zip(model_layers, file_layers):
        leaves = _covered_leaves(layer)
        variables = [v for leaf in leaves for v in leaf.weights]
        _match_layer(layer.name, variables, file_weights, plan, report)
        assigned.update(id(leaf) for leaf in leaves)
        report.loaded.append(layer.name)
    return plan, assigned


def _mismatch_message(report) -> str:
    details = "; ".join(_describe_mismatch(*m) for m in report.mismatched)
    message = f"{report.path}: weights do not fit the model: {details}"
    layers = {m[0] for m in report.mismatched}
    if layers & set(CLASS_COUNT_LAYERS):
        message += (". These layers depend on the number of classes; to fine-tune on another "
                    f"class count load with exclude={CLASS_COUNT_LAYERS!r}")
    return message


# ---- public API ------------------------------------------------------------------------------

def load_weights(keras_model, path, by_name: bool = True, exclude=None) -> WeightsReport:
    """Load a Keras-2 HDF5 weights file (matterport's or ours) into ``keras_model``.

    Layers are matched by name (nested models such as ``rpn_model`` are searched too); names in
    ``exclude`` are left untouched. Raises WeightsMismatchError (naming layer and both shapes)
    before assigning anything if a shape differs; returns a WeightsReport otherwise.
    """
    exclude = set(exclude or [])
    report = WeightsReport(path=os.fspath(path))
    handle, root = _open_weights_file(path)
    with handle:
        file_layers = _read_file_layers(report.path, root)
    if by_name:
        plan, assigned = _plan_by_name(keras_model, file_layers, exclude, report)
    else:
        plan, assigned = _plan_by_order(keras_model, file_layers, report)
    if report.mismatched:
        raise WeightsMismatchError(_mismatch_message(report), report)
    for layer in _leaf_layers_with_weights(keras_model):
        if id(layer) in assigned:
            continue
        if layer.name in exclude:
            if layer.name not in report.excluded:
                report.excluded.append(layer.name)
        else:
            report.skipped_not_in_file.append(layer.name)
    for variable, array in plan:
        variable.assign(array.astype(variable.dtype, copy=False))
    return report


def _file_weights(layer) -> list:
    """[(Keras-2 style name '<leaf layer>/<short>:0', variable)] for one top-level layer."""
    named = []
    for leaf in _covered_leaves(layer):
        seen = {}
        for variable in leaf.weights:
            short = _variable_short_name(variable)
            count = seen.get(short, 0)
            seen[short] = count + 1
            # A repeated short name would collide in HDF5; number the repeats.
            named.append((f"{leaf.name}/{short if count == 0 else f'{short}_{count}'}:0", variable))
    return named


def _file_array(values):
    """float32 for every floating weight whatever the compute precision (matterport's files are
    float32; a bfloat16 array would not even be readable without ml_dtypes)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" or values.dtype.name == "bfloat16":
        return values.astype(np.float32)
    return values


def save_weights(keras_model, path) -> None:
    """Write every layer's weights in matterport's Keras-2 HDF5 layout, atomically
    (mrcnn.atomic: a full disk names the file and the space it needed)."""
    from mrcnn.atomic import atomic_write

    def write(buffer):
        with h5py.File(buffer, "w") as f:
            _write_name_list(f, "layer_names", [layer.name for layer in keras_model.layers])
            # Fixed-length bytes (np.bytes_), which Keras 2 loaders call .decode() on.
            f.attrs["backend"] = np.bytes_(b"tensorflow")
            f.attrs["keras_version"] = np.bytes_(keras.__version__.encode("utf8"))
            for layer in keras_model.layers:
                group = f.create_group(layer.name)
                named = _file_weights(layer) if layer.weights else []
                _write_name_list(group, "weight_names", [name for name, _ in named])
                for name, variable in named:
                    group.create_dataset(name, data=_file_array(variable.numpy()))

    atomic_write(path, write)
