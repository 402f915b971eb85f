"""matterport's ``modellib`` functions, and the helpers behind MaskRCNN's matterport methods.

``import mrcnn.model as modellib`` gives every name below (``mrcnn.model`` re-exports them), so
code written for matterport's ``mrcnn/model.py`` and its inspect notebooks runs unchanged.
Each function is the project's own (``imaging``, ``boxes``, ``anchors``, ``targets``,
``data.pipeline``) behind matterport's signature; the run-directory helpers reproduce
matterport's ``logs/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<epoch:04d>.h5`` layout so
``find_last()`` works as there. Boxes are ``[y1, x1, y2, x2]``; pixel boxes of the molded image
unless said otherwise.
"""

from __future__ import annotations

import copy
import datetime
import os
import re
import warnings
from pathlib import Path

import numpy as np

from mrcnn.anchors import feature_shapes
from mrcnn.boxes import denorm_boxes_tf as denorm_boxes_graph
from mrcnn.boxes import norm_boxes_tf as norm_boxes_graph
from mrcnn.imaging import compose_image_meta, mold_image, parse_image_meta, unmold_image
from mrcnn.imaging import parse_image_meta_tf as parse_image_meta_graph

__all__ = [
    "log", "compute_backbone_shapes", "load_image_gt", "build_rpn_targets", "data_generator",
    "mold_image", "unmold_image", "compose_image_meta", "parse_image_meta",
    "parse_image_meta_graph", "norm_boxes_graph", "denorm_boxes_graph",
]

# Environment variable naming a local ResNet-50 ImageNet weights file (get_imagenet_weights).
IMAGENET_WEIGHTS_ENV = "MRCNN_IMAGENET_WEIGHTS"
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


def log(text, array=None):
    """Print ``text``, and for a numpy ``array`` its shape, min, max and dtype (matterport's)."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25) + f"shape: {str(array.shape):20}  "
        if array.size:
            text += f"min: {float(array.min()):10.5f}  max: {float(array.max()):10.5f}"
        else:
            text += f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    print(text)


def compute_backbone_shapes(config, image_shape):
    """[levels, 2] feature-map (h, w) of P2..P6 for a molded image of ``image_shape``."""
    return feature_shapes(config, image_shape)


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False):
    """(image, image_meta, class_ids, bbox, mask) of one image, as matterport's load_image_gt.

    ``use_mini_mask`` (default False, as matterport's signature) overrides config.USE_MINI_MASK;
    ``augment=True`` is matterport's deprecated random left-right flip; ``augmentation`` is an
    ``Augmentation`` or an albumentations pipeline. bbox: [N, 4] int32 molded pixels; mask:
    [H, W, N] bool, or [mh, mw, N] mini-masks.
    """
    from mrcnn.data.albumentations_aug import as_augmentation
    from mrcnn.data.augment import Augmentation
    from mrcnn.data.pipeline import load_image_gt as project_load_image_gt

    if augment:
        warnings.warn("load_image_gt: 'augment' is deprecated (as in matterport); use "
                      "augmentation=", DeprecationWarning, stacklevel=2)
        augmentation = augmentation or Augmentation(hflip=0.5)
    if bool(use_mini_mask) != bool(config.USE_MINI_MASK):
        config = copy.copy(config)
        config.USE_MINI_MASK = bool(use_mini_mask)
    return tuple(project_load_image_gt(dataset, config, image_id,
                                       augmentation=as_augmentation(augmentation)))


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config):
    """(rpn_match [A] int32, rpn_bbox [RPN_TRAIN_ANCHORS_PER_IMAGE, 4]) for [A, 4] pixel anchors
    (matterport's signature; ``image_shape`` is unused there too)."""
    from mrcnn.targets import build_rpn_targets as project_build_rpn_targets

    return project_build_rpn_targets(anchors, gt_class_ids, gt_boxes, config)


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None,
                   random_rois=0, batch_size=1, detection_targets=False,
                   no_augmentation_sources=None):
    """Endless generator of ``(inputs, [])`` batches in matterport's order: [images (molded),
    image_metas, rpn_match [B, A, 1], rpn_bbox, gt_class_ids, gt_boxes, gt_masks].

    The same examples as ``make_dataset`` (``build_training_inputs``), in plain Python for code
    that drives a model by hand. ``random_rois`` / ``detection_targets`` (matterport's
    debugging extras) are not supported.
    """
    from mrcnn.data.albumentations_aug import as_augmentation
    from mrcnn.data.augment import Augmentation
    from mrcnn.data.pipeline import INPUT_NAMES, build_training_inputs

    if random_rois or detection_targets:
        raise NotImplementedError("data_generator: random_rois and detection_targets are not "
                                  "supported; the trace (mrcnn.trace) shows the ROI targets")
    augmentation = as_augmentation(augmentation) or (Augmentation(hflip=0.5) if augment else None)
    unaugmented = set(no_augmentation_sources or ())
    image_ids = np.copy(dataset.image_ids)
    rng = np.random.default_rng()
    batch = []
    while True:
        order = rng.permutation(image_ids) if shuffle else image_ids
        for image_id in order:
            source = dataset.image_info[image_id]["source"]
            example = build_training_inputs(
                dataset, config, int(image_id),
                None if source in unaugmented else augmentation, rng)
            batch.append(example)
            if len(batch) == batch_size:
                yield [np.stack([e[name] for e in batch]) for name in INPUT_NAMES], []
                batch = []


# ---------------------------------------------------------------------------------------------
# helpers of MaskRCNN's matterport methods
# ---------------------------------------------------------------------------------------------

_CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask\_rcnn\_[\w-]+(\d{4})\.h5$")


def log_dir_paths(model_dir, name, model_path=None):
    """(log_dir, checkpoint_path pattern with ``{epoch:04d}``, epoch) as matterport's
    set_log_dir: a checkpoint written by it continues its directory and epoch."""
    now, epoch = datetime.datetime.now(), 0
    match = _CHECKPOINT_RE.match(str(model_path)) if model_path else None
    if match:
        now = datetime.datetime(*(int(match.group(i)) for i in range(1, 6)))
        epoch = int(match.group(6))  # the file's epoch is the number of epochs completed
    key = str(name).lower()
    log_dir = os.path.join(str(model_dir), f"{key}{now:%Y%m%dT%H%M}")
    return log_dir, os.path.join(log_dir, f"mask_rcnn_{key}_{{epoch:04d}}.h5"), epoch


def find_last(model_dir, name) -> str:
    """Path of the last checkpoint of the last ``<name>*`` run under ``model_dir``."""
    key = str(name).lower()
    model_dir = Path(model_dir)
    runs = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and p.name.startswith(key)) \
        if model_dir.is_dir() else []
    if not runs:
        raise FileNotFoundError(f"find_last: no run directory starting with {key!r} under "
                                f"{str(model_dir)!r} (train() writes logs/<name><timestamp>/)")
    run = model_dir / runs[-1]
    checkpoints = sorted(p.name for p in run.iterdir()
                         if p.is_file() and p.name.startswith("mask_rcnn") and p.suffix == ".h5")
    if not checkpoints:
        raise FileNotFoundError(f"find_last: no mask_rcnn*.h5 weight files in {str(run)!r}")
    return str(run / checkpoints[-1])


def imagenet_weights_path() -> str:
    """A local ResNet-50 ImageNet weights file (nothing is downloaded), or FileNotFoundError."""
    candidates = [os.environ.get(IMAGENET_WEIGHTS_ENV),
                  os.path.join(os.path.expanduser("~"), ".keras", "models", IMAGENET_WEIGHTS_FILE)]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"get_imagenet_weights: nothing is downloaded at run time; put {IMAGENET_WEIGHTS_FILE} "
        f"(Keras' ResNet-50 ImageNet weights, no top) at {candidates[1]} or set "
        f"{IMAGENET_WEIGHTS_ENV}=/path/to/it")


def writes_checkpoints(save_checkpoints, train_dataset) -> bool:
    """Whether train() writes matterport-style checkpoints: as asked, else when it was given an
    mrcnn Dataset (matterport's usage) rather than a ready tf.data pipeline (whose caller, such
    as ``mrcnn train``, keeps its own run directory)."""
    if save_checkpoints is not None:
        return bool(save_checkpoints)
    import tensorflow as tf

    return not isinstance(train_dataset, tf.data.Dataset)


def checkpoint_callback(save_weights, checkpoint_path):
    """Keras callback: ``save_weights(checkpoint_path.format(epoch=n))`` after epoch n (1-based)."""
    import keras

    class MatterportCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            save_weights(checkpoint_path.format(epoch=epoch + 1))

    return MatterportCheckpoint()


# ---------------------------------------------------------------------------------------------
# graph inspection (find_trainable_layer, get_trainable_layers, ancestor)
# ---------------------------------------------------------------------------------------------


def find_trainable_layer(layer):
    """The layer that owns the weights: the inner layer of a (Roi)TimeDistributed wrapper."""
    import keras

    while isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        layer = layer.layer
    return layer


def trainable_layers(keras_model) -> list:
    """Top-level layers of ``keras_model`` (wrappers unwrapped) that hold weights."""
    layers = (find_trainable_layer(layer) for layer in keras_model.layers)
    return [layer for layer in layers if layer.weights]


def _parents(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    operation, node_index, _ = history
    node = operation._inbound_nodes[node_index]
    return list(node.input_tensors)


def _tensor_names(tensor) -> set:
    """Names a graph tensor answers to: its producing layer's name, with ':<output index>'."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return {getattr(tensor, "name", "")}
    operation, _, index = history
    return {operation.name, f"{operation.name}:{index}", getattr(tensor, "name", "")}


def ancestor(tensor, name, checked=None):
    """The nearest ancestor of graph tensor ``tensor`` whose layer is called ``name`` (a string
    or regex; ':<index>' picks an output), or None. Keras 3 layers are single graph nodes, so
    matterport's names of ops inside a layer (``ROI/refined_anchors:0``) match nothing."""
    checked = [] if checked is None else checked
    pattern = re.compile(name) if isinstance(name, str) else name
    queue = _parents(tensor)
    while queue and len(checked) < 10000:
        parent = queue.pop(0)
        if any(parent is seen for seen in checked):
            continue
        if any(pattern.fullmatch(n) for n in _tensor_names(parent) if n):
            return parent
        checked.append(parent)
        queue.extend(_parents(parent))
    return None


# ---------------------------------------------------------------------------------------------
# run_graph
# ---------------------------------------------------------------------------------------------


def _graph_tensor(graph, name, tensor):
    """The graph tensor of one run_graph output: a KerasTensor, or a layer name. A layer with
    several outputs gives its first (``ROI`` -> proposals, ``mrcnn_detection`` -> detections:
    matterport's single outputs of those layers)."""
    if isinstance(tensor, str):
        try:
            tensor = graph.get_layer(tensor).output
        except ValueError:
            raise ValueError(f"run_graph: output {name!r}: no layer named {tensor!r}") from None
    if isinstance(tensor, (list, tuple)):
        tensor = tensor[0]
    if tensor is None or getattr(tensor, "_keras_history", None) is None:
        raise ValueError(f"run_graph: output {name!r} is {tensor!r}; expected a tensor of "
                         f"model.keras_model (e.g. keras_model.get_layer('ROI').output) or a "
                         f"layer name")
    return tensor


def run_graph(model, images, outputs, image_metas=None):
    """dict name -> numpy value of the inference graph's tensors ``outputs`` [(name, tensor)]
    for a list of images (or molded images with ``image_metas``), printed with ``log``.

    A sub-model from the graph's inputs to the requested tensors, cut and compiled the way the
    trace cuts its stage sub-models (same layers, same weights).
    """
    from mrcnn.anchors import get_anchors
    from mrcnn.trace import _stage_graphs

    model._require_mode("inference", "run_graph")
    graphs = _stage_graphs(model)
    named = [(name, _graph_tensor(graphs.graph, name, tensor)) for name, tensor in outputs]
    if not named:
        raise ValueError("run_graph: outputs is empty; expected [(name, tensor), ...]")
    cache = model.__dict__.setdefault("_run_graph_functions", {})
    key = (id(graphs), tuple(id(tensor) for _, tensor in named))
    function = cache.get(key)
    if function is None:
        import keras

        sub_model = keras.Model([graphs.image_input, graphs.meta_input, graphs.anchors_input],
                                [tensor for _, tensor in named])
        function = cache[key] = graphs._compile(sub_model)
    if image_metas is None:
        molded, image_metas, _, anchors = model.mold(images)
    else:
        molded = np.asarray(images, np.float32)
        anchors = get_anchors(model.config, molded[0].shape)
        anchors = np.broadcast_to(anchors, (len(molded),) + anchors.shape)
    values = function(np.asarray(molded, np.float32), np.asarray(image_metas, np.float32),
                      np.asarray(anchors, np.float32))
    result = {name: value.numpy() for (name, _), value in zip(named, values)}
    for name, value in result.items():
        log(name, value)
    return result
