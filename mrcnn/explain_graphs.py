"""Differentiable pieces of the inference graph for saliency: features -> one held-fixed ROI -> score.

Shape shorthand: h, w, c = the chosen layer's feature map; p = POOL_SIZE; m = 2 * MASK_POOL_SIZE;
C = NUM_CLASSES. ROIs are normalized ``[y1, x1, y2, x2]`` in the molded image.

The stage sub-models of ``mrcnn.trace`` take every proposal at once (the classifier's ROI input
has a static R); Grad-CAM wants ONE detection's ROI, held fixed, so the head layers are re-applied
here to a (1, 1, 4) box: the same layer objects (so the same weights), walked from
``roi_align_classifier`` to ``mrcnn_class_logits`` and from ``roi_align_mask`` to ``mrcnn_mask``.
The class target is the log-odds of the detection's class against the background,
log(p_class / p_background) = z_class - z_background (z = the pre-softmax class logits): a
detection exists because its class beat the background, and this is that margin. It does not
saturate (a softmax at 0.999 hides the gradient), and evidence that only separates one shape
from another (which the other classes' logits carry) does not drive it. Measured on the demo
model's 50 held-out images (bench/explain_sanity.py, 117 detections >= 0.9), pointing game
and >= 60% mass at once: z_class alone 84.6%, log p_class (log softmax) 87.2%, this 91.5%
(on the previous demo model 89.6%, 92.5%, 97.8%); deleting the top 20% of pixels still drops
the score far more than 20% random pixels (0.74 vs 0.27). The mask target is the mask
head's pre-sigmoid logits, recomputed from ``mrcnn_mask``'s own kernel and bias.
"""

from __future__ import annotations

import difflib
import threading

import numpy as np

from mrcnn.explain_errors import LayerNotFeedingError, UnknownLayerError

FEATURE_LEVELS = ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5")  # the levels the heads pool from
_CACHE_ATTR = "_explain_graphs"
# The viewer explains on worker threads; a superseded job may still be building graphs.
_BUILD_LOCK = threading.RLock()


def explain_graphs(model) -> "ExplainGraphs":
    """The model's cached ExplainGraphs (rebuilt if its keras_model was replaced)."""
    with _BUILD_LOCK:
        graphs = getattr(model, _CACHE_ATTR, None)
        if graphs is None or graphs.graph is not model.keras_model:
            graphs = ExplainGraphs(model)
            setattr(model, _CACHE_ATTR, graphs)
        return graphs


def _layer_chain(graph, first: str, last: str) -> list:
    """Layers after ``first`` up to ``last`` (inclusive), walking single-input links backwards."""
    chain, layer = [], graph.get_layer(last)
    while layer.name != first:
        chain.append(layer)
        history = layer._inbound_nodes[0].input_tensors[0]._keras_history
        layer = history.operation
    return chain[::-1]


class ExplainGraphs:
    """Per-model compiled functions: (image, meta, roi) -> activations, gradients, score."""

    def __init__(self, model):
        import keras

        self.graph = graph = model.keras_model
        self.image_input, self.meta_input = graph.inputs[0], graph.inputs[1]
        self.levels = [graph.get_layer(name).output for name in FEATURE_LEVELS]
        self.class_align = graph.get_layer("roi_align_classifier")
        self.class_chain = _layer_chain(graph, "roi_align_classifier", "mrcnn_class_logits")
        self.mask_align = graph.get_layer("roi_align_mask")
        mask_chain = _layer_chain(graph, "roi_align_mask", "mrcnn_mask")
        self.mask_chain, self.mask_conv = mask_chain[:-1], mask_chain[-1].layer
        # Layer names that feed each level: what a Grad-CAM layer may be, per ROI level.
        self.level_feeders = {
            level: {layer.name for layer in keras.Model(self.image_input, output).layers}
            for level, output in zip(range(2, 6), self.levels)}
        self._gradient_fns: dict = {}
        self._score_fn = None

    # ---- layer checks ---------------------------------------------------------------------

    def check_layer(self, name: str, level: int, what: str) -> None:
        """Raise unless layer ``name`` feeds pyramid level ``level`` (where ``what`` is pooled)."""
        all_names = [layer.name for layer in self.graph.layers]
        if name not in all_names:
            close = difflib.get_close_matches(name, all_names, n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UnknownLayerError(f"explain: no layer named {name!r} in the model{hint}")
        feeders = self.level_feeders[level] - {self.image_input.name}
        if name in feeders:
            output = self.graph.get_layer(name).output
            if len(output.shape) != 4:
                raise LayerNotFeedingError(
                    f"explain: layer {name!r} outputs shape {tuple(output.shape)}; Grad-CAM needs "
                    "a (batch, h, w, channels) feature map")
            return
        fed = [f"P{lvl}" for lvl, names in self.level_feeders.items() if name in names]
        if fed:
            raise LayerNotFeedingError(
                f"explain: layer {name!r} feeds {', '.join(fed)} only, but {what} is pooled "
                f"from P{level}; use fpn_p{level} or a backbone layer (e.g. res*_out)")
        raise LayerNotFeedingError(
            f"explain: layer {name!r} does not feed {what}: only backbone and FPN layers up to "
            f"P2..P5 are pooled by ROIAlign (head, RPN and P6 layers come after it or beside "
            f"it); use fpn_p{level} or a backbone layer (e.g. res*_out)")

    # ---- compiled functions -----------------------------------------------------------------

    def _class_logits(self, boxes, meta, levels):
        """(1, N, C) class logits of normalized ``boxes`` (1, N, 4) pooled from ``levels``."""
        x = self.class_align([boxes, meta, *levels])
        for layer in self.class_chain:
            x = layer(x, training=False) if _takes_training(layer) else layer(x)
        return x

    def _mask_logits(self, boxes, meta, levels):
        """(1, N, m, m, C) pre-sigmoid mask logits of normalized ``boxes`` (1, N, 4)."""
        import tensorflow as tf

        x = self.mask_align([boxes, meta, *levels])
        for layer in self.mask_chain:
            x = layer(x, training=False) if _takes_training(layer) else layer(x)
        kernel = tf.cast(self.mask_conv.kernel, x.dtype)[0, 0]  # 1x1 conv: (256, C)
        return tf.einsum("bnhwc,ck->bnhwk", x, kernel) + tf.cast(self.mask_conv.bias, x.dtype)

    def gradient_fn(self, layer_name: str, target: str):
        """Compiled (image, meta, box (1,1,4), class_id, region (m, m)) -> (A, dS/dA, S).

        A = the layer's activations (h, w, c) and S the target score: the class's log-odds
        against the background, or the mask logits summed over ``region`` (weights on the m x m
        mask grid).
        """
        key = (layer_name, target)
        with _BUILD_LOCK:
            fn = self._gradient_fns.get(key)
            if fn is None:
                fn = self._gradient_fns[key] = self._build_gradient_fn(layer_name, target)
            return fn

    def _build_gradient_fn(self, layer_name, target):
        import keras
        import tensorflow as tf

        layer_output = self.graph.get_layer(layer_name).output
        feature_model = keras.Model(self.image_input, [layer_output, *self.levels])
        specs = [tf.TensorSpec(self.image_input.shape, tf.float32),
                 tf.TensorSpec(self.meta_input.shape, tf.float32),
                 tf.TensorSpec((1, 1, 4), tf.float32), tf.TensorSpec((), tf.int32),
                 tf.TensorSpec((None, None), tf.float32)]

        @tf.function(input_signature=specs)
        def fn(image, meta, box, class_id, region):
            with tf.GradientTape() as tape:
                # Watching the input records every op after it, so the gradient reaches any
                # intermediate layer (including frozen ones with no trainable weights).
                tape.watch(image)
                activations, *levels = feature_model(image, training=False)
                if target == "class":  # log-odds against the background (docstring)
                    logits = tf.cast(self._class_logits(box, meta, levels), tf.float32)
                    score = logits[0, 0, class_id] - logits[0, 0, 0]
                else:
                    logits = self._mask_logits(box, meta, levels)[0, 0, :, :, class_id]
                    score = tf.reduce_sum(tf.cast(logits, tf.float32) * region)
                score = tf.cast(score, tf.float32)
            gradients = tape.gradient(score, activations)
            return (tf.cast(activations[0], tf.float32), tf.cast(gradients[0], tf.float32),
                    score)

        return fn

    def class_probs(self, molded_images, metas, box):
        """(B, C) class probabilities of one normalized ``box`` (4,) held fixed, per image."""
        import keras
        import tensorflow as tf

        if self._score_fn is None:
            levels_model = keras.Model(self.image_input, self.levels)
            specs = [tf.TensorSpec(self.image_input.shape, tf.float32),
                     tf.TensorSpec(self.meta_input.shape, tf.float32),
                     tf.TensorSpec((None, 1, 4), tf.float32)]

            @tf.function(input_signature=specs)
            def score_fn(images, meta, boxes):
                levels = levels_model(images, training=False)
                logits = tf.cast(self._class_logits(boxes, meta, levels), tf.float32)
                return tf.nn.softmax(logits[:, 0], axis=-1)

            self._score_fn = score_fn
        molded_images = np.asarray(molded_images, np.float32)
        count = len(molded_images)
        boxes = np.broadcast_to(np.asarray(box, np.float32).reshape(1, 1, 4), (count, 1, 4))
        metas = np.broadcast_to(np.asarray(metas, np.float32)[:1], (count, metas.shape[-1]))
        return self._score_fn(molded_images, np.ascontiguousarray(metas),
                              np.ascontiguousarray(boxes)).numpy()


def _takes_training(layer) -> bool:
    return bool(getattr(layer, "_call_has_training_arg", False))
