"""Training graph and the keras.Model that trains it (five losses + weight decay).

``build_training_graph`` composes the same named layers as the inference graph (so weights move
between them by name) with the DetectionTargetLayer in place of the DetectionLayer. The trainer,
``MaskRCNNTrainer``, is a keras.Model subclass whose ``train_step`` computes the losses, adds L2
weight decay, and applies SGD with momentum and global-norm clipping; it runs unchanged under
``tf.distribute`` strategies.

Shape shorthand: B images, A anchors, R = RPN_TRAIN_ANCHORS_PER_IMAGE, G = MAX_GT_INSTANCES,
T = TRAIN_ROIS_PER_IMAGE, C = NUM_CLASSES, (mh, mw) = MINI_MASK_SHAPE or the image size.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn import losses as L
from mrcnn.anchors import get_anchors
from mrcnn.boxes import norm_boxes_tf
from mrcnn.config import Config
from mrcnn.graph_front import build_graph_front
from mrcnn.heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.imaging import parse_image_meta_tf
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.precision import BOX_DTYPE, built_under_config_policy, float32_layer_kwargs
from mrcnn.train_events import LOSS_NAMES

# Layer-name regexes for the `layers` argument of train(), as in matterport.
_HEADS = r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)"
LAYER_REGEX = {
    "heads": _HEADS,
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "5+": r"(res5.*)|(bn5.*)|" + _HEADS,
    "all": ".*",
}


@keras.saving.register_keras_serializable(package="mrcnn")
class NormalizeBoxes(keras.layers.Layer):
    """Pixel boxes (B, N, 4) of the molded image -> normalized boxes; zero padding stays zero."""

    def __init__(self, **kwargs):
        super().__init__(**float32_layer_kwargs(kwargs))

    def call(self, boxes, image):
        normalized = norm_boxes_tf(tf.cast(boxes, tf.float32), tf.shape(image)[1:3])
        is_padding = tf.reduce_all(tf.equal(boxes, 0), axis=-1, keepdims=True)
        return tf.where(is_padding, tf.zeros_like(normalized), normalized)

    def compute_output_shape(self, boxes_shape, image_shape=None):
        return boxes_shape


def graph_input_specs(config: Config) -> dict:
    """Name -> (shape without batch, dtype) of the training graph's inputs."""
    height, width, channels = _image_shape(config)
    if config.USE_MINI_MASK:
        mask_h, mask_w = config.MINI_MASK_SHAPE
    else:
        mask_h, mask_w = height, width
    return {
        "input_image": ((height, width, channels), "float32"),
        "input_image_meta": ((config.IMAGE_META_SIZE,), "float32"),
        "input_anchors": ((None, 4), "float32"),
        "input_gt_class_ids": ((None,), "int32"),
        "input_gt_boxes": ((None, 4), "float32"),
        "input_gt_masks": ((mask_h, mask_w, None), "bool"),
    }


def _image_shape(config):
    if config.IMAGE_RESIZE_MODE in ("square", "crop"):
        return tuple(int(v) for v in config.IMAGE_SHAPE)
    return (None, None, config.IMAGE_CHANNEL_COUNT)


@built_under_config_policy
def build_training_graph(config: Config) -> keras.Model:
    """Functional model: training inputs (graph_input_specs) -> dict of head outputs and targets."""
    inputs = {name: keras.Input(shape=shape, dtype=dtype, name=name)
              for name, (shape, dtype) in graph_input_specs(config).items()}
    image = inputs["input_image"]

    front = build_graph_front(image, inputs["input_anchors"], config,
                              config.POST_NMS_ROIS_TRAINING)
    rpn_class_logits, rpn_bbox, rpn_rois = front.rpn_class_logits, front.rpn_bbox, front.proposals[0]

    gt_boxes = NormalizeBoxes(name="normalize_gt_boxes")(inputs["input_gt_boxes"], image)
    if config.TRAIN_ROIS_INCLUDE_GT:
        # (B, P, 4) + (B, G, 4) -> (B, P+G, 4); zero (padding) GT rows are skipped downstream.
        rpn_rois = keras.layers.Concatenate(axis=1, name="proposals_with_gt",
                                              dtype=BOX_DTYPE)([rpn_rois, gt_boxes])
    rois, target_class_ids, target_deltas, target_masks, _ = DetectionTargetLayer(
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        roi_positive_ratio=config.ROI_POSITIVE_RATIO,
        bbox_std_dev=np.asarray(config.BBOX_STD_DEV).tolist(),
        mask_shape=list(config.MASK_SHAPE),
        use_mini_mask=config.USE_MINI_MASK,
        name="proposal_targets",
    )([rpn_rois, inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]])

    feature_maps = front.feature_maps
    mrcnn_class_logits, _, mrcnn_bbox = fpn_classifier_graph(
        rois, feature_maps, inputs["input_image_meta"], config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.head_train_bn, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
    mrcnn_mask = build_fpn_mask_graph(rois, feature_maps, inputs["input_image_meta"],
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                      train_bn=config.head_train_bn,
                                      channels=config.MASK_HEAD_CHANNELS)
    outputs = {
        "rpn_class_logits": rpn_class_logits, "rpn_bbox": rpn_bbox, "rois": rois,
        "target_class_ids": target_class_ids, "target_deltas": target_deltas,
        "target_masks": target_masks, "mrcnn_class_logits": mrcnn_class_logits,
        "mrcnn_bbox": mrcnn_bbox, "mrcnn_mask": mrcnn_mask,
    }
    return keras.Model(inputs, outputs, name="mask_rcnn_training")


def iter_layers(model):
    """Every layer of ``model``, nested models flattened (depth first), wrappers not unwrapped."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def set_trainable(graph: keras.Model, layers: str, train_bn: bool,
                  head_train_bn: bool | None = None) -> list[str]:
    """Make layers whose name fully matches ``layers`` (regex or a LAYER_REGEX key) trainable.

    BatchNorm layers stay frozen unless ``train_bn`` (small batches make BN statistics noise);
    the heads' BatchNorm layers (``mrcnn_*``) follow ``head_train_bn`` (None: ``train_bn``).
    Returns the names of the trainable layers that hold weights.
    """
    head_train_bn = train_bn if head_train_bn is None else head_train_bn
    regex = LAYER_REGEX.get(layers, layers)
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise ValueError(f"layers: {layers!r} is neither one of {sorted(LAYER_REGEX)} "
                         f"nor a valid regex ({e})") from None
    # Keras propagates `trainable` from a container to its children, so containers go first.
    graph.trainable = True
    trainable = []
    for layer in iter_layers(graph):
        if not layer.weights:
            continue
        inner = getattr(layer, "layer", layer)  # the layer inside a TimeDistributed wrapper
        is_bn = isinstance(inner, keras.layers.BatchNormalization)
        bn_trains = head_train_bn if layer.name.startswith("mrcnn_") else train_bn
        layer.trainable = bool(pattern.fullmatch(layer.name)) and (bn_trains or not is_bn)
        if layer.trainable:
            trainable.append(layer.name)
    if not trainable:
        raise ValueError(f"layers: {layers!r} matches no layer with weights")
    return trainable


class MaskRCNNTrainer(keras.Model):
    """Wraps the training graph; ``train_step``/``test_step`` compute the five losses."""

    def __init__(self, graph: keras.Model, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.graph = graph
        self.config = config
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss",) + LOSS_NAMES + ("weight_decay",)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.graph(self._graph_inputs(inputs), training=training)

    def _anchors(self, image):
        """(B, A, 4) normalized anchors for the (static) molded image shape, built once."""
        # get_anchors caches the numpy array; the constant is made inside each traced graph.
        anchors = tf.constant(get_anchors(self.config, tuple(image.shape[1:])), tf.float32)
        return tf.broadcast_to(anchors[None], [tf.shape(image)[0], *anchors.shape])

    def _graph_inputs(self, data):
        data = _unpack(data)
        inputs = {name: data[name] for name in graph_input_specs(self.config) if name in data}
        if "input_anchors" not in inputs:
            inputs["input_anchors"] = self._anchors(data["input_image"])
        return inputs

    def compute_losses(self, data, training: bool) -> dict:
        """Dict of the five loss scalars for a batch of training inputs."""
        data = _unpack(data)
        out = self.graph(self._graph_inputs(data), training=training)
        active = parse_image_meta_tf(data["input_image_meta"])["active_class_ids"]
        return {
            "rpn_class_loss": L.rpn_class_loss(data["input_rpn_match"], out["rpn_class_logits"]),
            "rpn_bbox_loss": L.rpn_bbox_loss(data["input_rpn_bbox"], data["input_rpn_match"],
                                             out["rpn_bbox"]),
            "mrcnn_class_loss": L.mrcnn_class_loss(out["target_class_ids"],
                                                   out["mrcnn_class_logits"], active),
            "mrcnn_bbox_loss": L.mrcnn_bbox_loss(out["target_deltas"], out["target_class_ids"],
                                                 out["mrcnn_bbox"]),
            "mrcnn_mask_loss": L.mrcnn_mask_loss(out["target_masks"], out["target_class_ids"],
                                                 out["mrcnn_mask"]),
        }

    def weight_decay(self):
        """matterport's L2: sum over trainable weights except BN gamma/beta of wd*|w|^2/size(w)."""
        terms = [tf.reduce_sum(tf.square(tf.cast(w, tf.float32))) / tf.cast(tf.size(w), tf.float32)
                 for w in self.trainable_weights
                 if not (w.path.endswith("gamma") or w.path.endswith("beta"))]
        if not terms:
            return tf.constant(0.0)
        return self.config.WEIGHT_DECAY * tf.add_n(terms)

    def _total(self, losses):
        weights = self.config.LOSS_WEIGHTS
        return tf.add_n([weights.get(name, 1.0) * losses[name] for name in LOSS_NAMES])

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 reduces the first input dict across replicas to learn its shapes, which
        # MultiWorkerMirroredStrategy cannot do; see mrcnn/multiworker.py.
        from mrcnn.multiworker import symbolic_build_from_local_batch

        return symbolic_build_from_local_batch(self, super()._maybe_symbolic_build, iterator,
                                               data_batch)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(data, training=True)
            decay = self.weight_decay()
            total = self._total(losses) + decay
            # Gradients are summed over replicas, so each replica contributes its share.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = total / replicas
            if hasattr(self.optimizer, "scale_loss"):
                scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        if replicas > 1 and self.config.GRADIENT_CLIP_NORM:
            gradients = self._clip_across_replicas(gradients, variables, replicas)
        self.optimizer.apply(gradients, variables)
        return self._update_trackers(losses, decay, total)

    def _clip_across_replicas(self, gradients, variables, replicas):
        """Clip the global norm of the replica SUM, not of each replica's share.

        Keras clips every replica's gradients before the cross-replica sum, which lets the
        applied update grow up to `replicas` times the clip norm; one device would not.
        """
        gradients = [g if g is not None else tf.zeros_like(v) for g, v in zip(gradients, variables)]
        scale = getattr(self.optimizer, "dynamic_scale", None)  # loss scaling (mixed precision)
        if scale is not None:
            gradients = [g / tf.cast(scale, g.dtype) for g in gradients]
        context = tf.distribute.get_replica_context()
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        clipped, _ = tf.clip_by_global_norm(summed, self.config.GRADIENT_CLIP_NORM)
        # Each replica hands over its share; the optimizer sums them again.
        gradients = [g / replicas for g in clipped]
        if scale is not None:
            gradients = [g * tf.cast(scale, g.dtype) for g in gradients]
        return gradients

    def test_step(self, data):
        losses = self.compute_losses(data, training=False)
        decay = self.weight_decay()
        return self._update_trackers(losses, decay, self._total(losses) + decay)

    def _update_trackers(self, losses, decay, total):
        self.trackers["loss"].update_state(total)
        self.trackers["weight_decay"].update_state(decay)
        for name in LOSS_NAMES:
            self.trackers[name].update_state(losses[name])
        from mrcnn.multiworker import step_logs

        return step_logs({name: tracker.result() for name, tracker in self.trackers.items()})


def _unpack(data):
    """The inputs dict from what Keras hands a step: the dict itself or an (x, y, w) tuple."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    return data


def make_optimizer(config: Config, learning_rate: float):
    """config.OPTIMIZER (SGD with momentum, or Adam) with global-norm gradient clipping.

    COMPUTE_DTYPE float16 wraps it in dynamic loss scaling (float16 gradients underflow);
    bfloat16 has float32's exponent range and needs none. The optimizer's own state is float32.
    """
    if config.OPTIMIZER == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate,
                                          beta_1=config.LEARNING_MOMENTUM,
                                          global_clipnorm=config.GRADIENT_CLIP_NORM)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate,
                                         momentum=config.LEARNING_MOMENTUM,
                                         global_clipnorm=config.GRADIENT_CLIP_NORM)
    if getattr(config, "COMPUTE_DTYPE", "float32") == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def batchnorm_layers_in_training(graph: keras.Model) -> list:
    """The BatchNorm layers that use batch statistics when ``graph`` runs with training=True."""
    found = []
    for layer in iter_layers(graph):
        inner = getattr(layer, "layer", layer)
        if (isinstance(inner, keras.layers.BatchNormalization) and layer.trainable
                and getattr(inner, "train_bn", True)):
            found.append(inner)
    return found


def recompute_batchnorm_statistics(trainer: "MaskRCNNTrainer", batches) -> int:
    """Set each training BatchNorm's moving mean/variance to the average over ``batches``.

    While BN trains, its moving averages (momentum 0.99) mix statistics of weights long gone;
    after training from scratch they differ enough from the final weights' statistics that
    inference (which uses them) falls apart. Averaging the batch statistics of the final
    weights over a few hundred images ("precise BN", Wu & Johnson 2021) removes that gap.
    Runs the training graph with training=True and every such BatchNorm's momentum at 0, so
    after each batch its moving values ARE that batch's statistics; they are summed here and
    the averages assigned at the end. The pass is one tf.function kept on the trainer (traced
    once per run, not per epoch: eager, it took 10-20 s for 20 batches of 4 128 px images,
    as long as 250 training steps' worth of the epoch's time). No weight changes. Returns the
    number of batches used (0 when no BatchNorm trains).
    """
    layers = batchnorm_layers_in_training(trainer.graph)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    sums = [[np.zeros_like(mean), np.zeros_like(variance)] for mean, variance in saved]
    count = 0
    try:
        for layer in layers:  # also while tracing: the traced graph bakes the momentum in
            layer.momentum = 0.0
        forward = _batch_statistics_pass(trainer)
        for batch in batches:
            forward(trainer._graph_inputs(batch))
            for total, layer in zip(sums, layers):
                total[0] += layer.moving_mean.numpy()
                total[1] += layer.moving_variance.numpy()
            count += 1
    finally:
        for layer, momentum, (mean, variance), (mean_sum, variance_sum) in zip(
                layers, momenta, saved, sums):
            layer.momentum = momentum
            if count:
                mean, variance = mean_sum / count, variance_sum / count
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
    return count


def _batch_statistics_pass(trainer):
    """tf.function running ``trainer.graph`` with training=True (cached on the trainer)."""
    forward = getattr(trainer, "_batch_statistics_fn", None)
    if forward is None:
        @tf.function
        def forward(inputs):
            trainer.graph(inputs, training=True)

        trainer._batch_statistics_fn = forward
    return forward
