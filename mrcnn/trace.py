"""trace(model, image, gt=None): every stage of one image's pass through Mask R-CNN, as numpy.

The inference graph is cut into stage sub-models built from the SAME layers (so the same
weights), each compiled once per model as a ``tf.function`` and cached on the model object:

    features    image -> P2..P6 (+ requested backbone / FPN activations, float16)
    rpn         P2..P6 -> rpn_class, rpn_bbox
    proposals   rpn_class, rpn_bbox, anchors -> proposals + pre-NMS boxes / indices (ROI layer)
    classifier  proposals, P2..P5, meta -> mrcnn_class, mrcnn_bbox
    detection   proposals, mrcnn_class, mrcnn_bbox, meta -> detections, roi indices
    mask        detections, P2..P5, meta -> mrcnn_mask

Intermediate tensors stay on the device between stages; only what the trace keeps is copied
back. Shape shorthand and stage keys: see ``mrcnn.trace_data``. Boxes in the returned Trace are
original-image pixels ``[y1, x1, y2, x2]`` (float32; ``detections`` int32 exactly as
``detect()``).
"""

from __future__ import annotations

import difflib
import time

import numpy as np

from mrcnn import imaging
from mrcnn.anchors import anchor_level_ids, get_anchors, get_anchors_pixels
from mrcnn.boxes import apply_box_deltas, clip_boxes, norm_boxes
from mrcnn.trace_data import ACTIVATION_PREFIX, STAGE_ORDER, Trace, normalized_to_original

# Attribute of the MaskRCNN object that caches the compiled stage functions.
_CACHE_ATTR = "_trace_stage_graphs"
LEVELS = ("P2", "P3", "P4", "P5", "P6")
FPN_LAYERS = tuple(f"fpn_p{i}" for i in range(2, 7))
# Seed of the random subsampling in the RPN and ROI targets, so a trace is reproducible.
TARGETS_SEED = 0


def default_activation_layers(config) -> list[str]:
    """C2..C5 backbone outputs (``res*_out``) and fpn_p2..fpn_p6: what trace() records by default."""
    from mrcnn.backbone import backbone_layer_names

    return list(backbone_layer_names(config).values()) + list(FPN_LAYERS)


class _StageGraphs:
    """The inference graph cut into per-stage tf.functions (one set per model, built lazily)."""

    def __init__(self, model):
        import keras

        self.graph = graph = model.keras_model
        self.image_input, self.meta_input, self.anchors_input = graph.inputs
        self.levels = [graph.get_layer(name).output for name in FPN_LAYERS]
        rpn_class = graph.get_layer("rpn_class").output
        rpn_bbox = graph.get_layer("rpn_bbox").output
        roi_outputs = graph.get_layer("ROI").output
        rpn_rois = roi_outputs[0]
        mrcnn_class = graph.get_layer("mrcnn_class").output
        mrcnn_bbox = graph.get_layer("mrcnn_bbox").output
        detections, detection_roi_indices = graph.get_layer("mrcnn_detection").output
        mrcnn_mask = graph.get_layer("mrcnn_mask_padded").output
        p2_p5 = self.levels[:4]
        self.rpn = self._compile(keras.Model(self.levels, [rpn_class, rpn_bbox]))
        self.proposals = self._compile(
            keras.Model([rpn_class, rpn_bbox, self.anchors_input], list(roi_outputs)))
        self.classifier = self._compile(
            keras.Model([rpn_rois, *p2_p5, self.meta_input], [mrcnn_class, mrcnn_bbox]))
        self.detection = self._compile(
            keras.Model([rpn_rois, mrcnn_class, mrcnn_bbox, self.meta_input],
                        [detections, detection_roi_indices]))
        self.mask = self._compile(keras.Model([detections, *p2_p5, self.meta_input], mrcnn_mask))
        self.feature_layers = {layer.name for layer in keras.Model(self.image_input,
                                                                   self.levels).layers}
        self._features = {}  # tuple of activation layer names -> compiled function
        self._target_layer = None

    @staticmethod
    def _compile(sub_model):
        """tf.function of ``sub_model`` with an input signature taken from its inputs."""
        import tensorflow as tf

        signature = [tf.TensorSpec(t.shape, t.dtype) for t in sub_model.inputs]
        return tf.function(_StageCall(sub_model), input_signature=signature)

    def features(self, layer_names: tuple):
        """Compiled image -> [P2..P6, *activations as float16] for these activation layers."""
        fn = self._features.get(layer_names)
        if fn is None:
            import keras
            import tensorflow as tf

            outputs = [self.graph.get_layer(name).output for name in layer_names]
            sub_model = keras.Model(self.image_input, self.levels + outputs)
            count = len(self.levels)
            spec = tf.TensorSpec(self.image_input.shape, self.image_input.dtype)

            @tf.function(input_signature=[spec])
            def fn(image):
                values = sub_model(image, training=False)
                # Cast on the device: half the bytes to copy back, and what the Trace stores.
                return values[:count] + [tf.cast(v, tf.float16) for v in values[count:]]

            self._features[layer_names] = fn
        return fn

    def target_layer(self, config):
        """A DetectionTargetLayer with the config's training-ROI settings (full-size GT masks)."""
        if self._target_layer is None:
            from mrcnn.layers.detection_targets import DetectionTargetLayer

            self._target_layer = DetectionTargetLayer(
                config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO, config.BBOX_STD_DEV,
                config.MASK_SHAPE, use_mini_mask=False, name="trace_detection_targets")
        return self._target_layer

    def check_activation_layers(self, names) -> tuple:
        """The names as a tuple; ValueError for unknown layers or layers outside the features stage."""
        all_names = [layer.name for layer in self.graph.layers]
        for name in names:
            if name not in all_names:
                close = difflib.get_close_matches(name, all_names, n=5, cutoff=0.5)
                hint = f"; close matches: {', '.join(close)}" if close else ""
                raise ValueError(f"trace: no layer named {name!r} in the model{hint}")
            if name not in self.feature_layers:
                allowed = sorted(self.feature_layers - {self.image_input.name})
                close = difflib.get_close_matches(name, allowed, n=5, cutoff=0.3)
                raise ValueError(
                    f"trace: activations can be recorded for backbone and FPN layers only "
                    f"(image -> P2..P6; {len(allowed)} layers, e.g. "
                    f"{', '.join(close or allowed[:8])}); {name!r} belongs to a later stage")
            output = self.graph.get_layer(name).output
            if len(output.shape) != 4:
                raise ValueError(f"trace: layer {name!r} outputs shape {tuple(output.shape)}; "
                                 "activations need (batch, h, w, channels) feature maps")
        return tuple(dict.fromkeys(names))


class _StageCall:
    """Calls one stage sub-model; a callable object rather than a closure because tf.function
    counts retracing per code object, and six closures of one function tracing once each look
    like one function retracing (a misleading warning)."""

    def __init__(self, sub_model):
        self.sub_model = sub_model

    def __call__(self, *inputs):
        outputs = self.sub_model(list(inputs), training=False)
        return outputs if isinstance(outputs, (list, tuple)) else [outputs]


def _stage_graphs(model) -> _StageGraphs:
    graphs = getattr(model, _CACHE_ATTR, None)
    if graphs is None or graphs.graph is not model.keras_model:
        graphs = _StageGraphs(model)
        setattr(model, _CACHE_ATTR, graphs)
    return graphs


class _Timer:
    """Seconds per named stage, accumulated in insertion order."""

    def __init__(self):
        self.timings = {}
        self._start = time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._start
        self._start = now


# ---------------------------------------------------------------------------------------------
# trace
# ---------------------------------------------------------------------------------------------


def trace(model, image, gt=None, activations=None, class_names=None) -> Trace:
    """Run ``image`` [H, W, C] once through inference ``model`` and return every stage (Trace).

    ``gt``: optional dict ``boxes`` [G, 4] original pixels, ``class_ids`` [G], ``masks``
    [H, W, G] bool (optional) -> adds ``gt``, ``targets/rpn`` and ``targets/rois``, and the
    diagnosis of every GT object and detection in ``meta["diagnosis"]`` (``mrcnn.diagnose``).
    ``activations``: layer names to record (default ``default_activation_layers``; ``[]`` for
    none); only backbone and FPN layers qualify (ValueError otherwise, listing close matches).
    """
    model._require_mode("inference", "trace")
    config = model.config
    graphs = _stage_graphs(model)
    layer_names = graphs.check_activation_layers(
        default_activation_layers(config) if activations is None else list(activations))
    timer = _Timer()
    image = imaging.to_model_channels(image, config.IMAGE_CHANNEL_COUNT, "image")
    gt = _check_gt(gt, image.shape)
    molded, metas, windows, anchors = model.mold([image])
    image_meta = _image_meta(image.shape, molded[0].shape, windows[0], metas[0])
    timer.lap("mold")

    raw, tensors = _run_stages(graphs, layer_names, molded, metas, anchors, timer)
    trace_ = Trace(meta={
        "config": config.to_dict(),
        "class_names": list(class_names) if class_names else None,
        "image_meta": image_meta,
        "level_shapes": raw.pop("level_shapes"),
        "activation_layers": list(layer_names),
        "precision": getattr(config, "COMPUTE_DTYPE", "float32"),
    })
    stages = trace_.stages
    stages["input"] = {"image": _as_uint8(image),
                       "molded": imaging.unmold_image(molded[0], config)}
    _rpn_stages(stages, raw, config, molded[0].shape, image_meta)
    _head_stages(stages, raw, config, image_meta)
    _detection_stages(stages, raw, image, molded[0].shape, windows[0], config)
    for name in layer_names:
        stages[ACTIVATION_PREFIX + name] = {"values": raw["activations"][name]}
    timer.lap("postprocess")
    if gt is not None:
        _target_stages(stages, graphs, gt, tensors, config, molded[0].shape, image_meta)
        timer.lap("targets")
    # Pipeline order (what Trace.load gives back too), activations last.
    ordered = {key: stages[key] for key in STAGE_ORDER if key in stages}
    trace_.stages = {**ordered, **{k: v for k, v in stages.items() if k not in ordered}}
    if gt is not None:  # why each GT object was found or missed (numpy, ~1 ms; issue 13)
        from mrcnn.diagnose import diagnose

        diagnose(trace_).attach(trace_)
        timer.lap("diagnose")
    timer.timings["total"] = sum(timer.timings.values())
    trace_.meta["timings"] = timer.timings
    trace_.meta["counts"] = trace_.counts()
    return trace_


def _run_stages(graphs, layer_names, molded, metas, anchors, timer):
    """Run the six stage functions; returns (numpy outputs, device tensors reused for targets)."""
    import tensorflow as tf

    image_t = tf.constant(molded, tf.float32)
    meta_t = tf.constant(metas, tf.float32)
    anchors_t = tf.constant(anchors, tf.float32)
    out = {}
    features = graphs.features(layer_names)(image_t)
    levels = features[:len(LEVELS)]
    out["activations"] = {name: value.numpy()[0]
                          for name, value in zip(layer_names, features[len(LEVELS):])}
    out["level_shapes"] = [[int(d) for d in level.shape[1:3]] for level in levels]
    levels[-1].numpy()  # wait for the device, so the time is charged to this stage
    timer.lap("features")
    rpn_class, rpn_bbox = graphs.rpn(*levels)
    out["rpn_scores"] = rpn_class.numpy()[0, :, 1]
    out["rpn_bbox"] = rpn_bbox.numpy()[0]
    timer.lap("rpn")
    rpn_rois, pre_boxes, pre_anchor_ix, post_ix, pre_scores = graphs.proposals(
        rpn_class, rpn_bbox, anchors_t)
    for name, value in (("rpn_rois", rpn_rois), ("pre_nms_boxes", pre_boxes),
                        ("pre_nms_anchor_indices", pre_anchor_ix),
                        ("post_nms_indices", post_ix), ("pre_nms_scores", pre_scores)):
        out[name] = value.numpy()[0]
    timer.lap("proposals")
    mrcnn_class, mrcnn_bbox = graphs.classifier(rpn_rois, *levels[:4], meta_t)
    out["mrcnn_class"], out["mrcnn_bbox"] = mrcnn_class.numpy()[0], mrcnn_bbox.numpy()[0]
    timer.lap("classifier")
    detections, detection_roi_ix = graphs.detection(rpn_rois, mrcnn_class, mrcnn_bbox, meta_t)
    out["detections"], out["detection_roi_indices"] = (detections.numpy()[0],
                                                      detection_roi_ix.numpy()[0])
    timer.lap("detection")
    (mrcnn_mask,) = graphs.mask(detections, *levels[:4], meta_t)
    out["mrcnn_mask"] = mrcnn_mask.numpy()[0]
    timer.lap("mask")
    return out, {"rpn_rois": rpn_rois}


def _image_meta(original_shape, molded_shape, window, meta_vector) -> dict:
    """JSON-friendly geometry of the molding: window, scale, padding, shapes (pixels)."""
    window = [int(v) for v in window]
    molded_h, molded_w = int(molded_shape[0]), int(molded_shape[1])
    return {
        "original_shape": [int(v) for v in original_shape],
        "molded_shape": [int(v) for v in molded_shape],
        "window": window,
        "scale": float(imaging.parse_image_meta(meta_vector)["scale"]),
        "padding": [[window[0], molded_h - window[2]], [window[1], molded_w - window[3]], [0, 0]],
    }


def _as_uint8(image) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _rpn_stages(stages, raw, config, molded_shape, image_meta):
    """anchors, rpn/scores, rpn/deltas, proposals/pre_nms, proposals/post_nms."""
    anchors_norm = get_anchors(config, molded_shape)
    rpn_std = np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    stages["anchors"] = {"boxes": normalized_to_original(anchors_norm, image_meta),
                         "levels": np.asarray(anchor_level_ids(config, molded_shape))}
    stages["rpn/scores"] = {"scores": raw["rpn_scores"].astype(np.float32)}
    deltas = (raw["rpn_bbox"] * rpn_std).astype(np.float32)
    stages["rpn/deltas"] = {"deltas": deltas}
    anchor_ix = raw["pre_nms_anchor_indices"].astype(np.int32)
    unclipped = apply_box_deltas(anchors_norm[anchor_ix], deltas[anchor_ix])
    stages["proposals/pre_nms"] = {
        "boxes": normalized_to_original(raw["pre_nms_boxes"], image_meta),
        "unclipped": normalized_to_original(unclipped, image_meta),
        "scores": raw["pre_nms_scores"].astype(np.float32),
        "anchor_indices": anchor_ix,
    }
    post_ix = raw["post_nms_indices"].astype(np.int32)
    real = int(np.sum(post_ix >= 0))  # padding rows (index -1) come last
    post_ix = post_ix[:real]
    stages["proposals/post_nms"] = {
        "boxes": normalized_to_original(raw["rpn_rois"][:real], image_meta),
        "scores": raw["pre_nms_scores"][post_ix].astype(np.float32),
        "indices": post_ix,
    }


def _head_stages(stages, raw, config, image_meta):
    """heads/class_probs and heads/refined for the real proposals (rows of proposals/post_nms)."""
    real = len(stages["proposals/post_nms"]["indices"])
    probs = raw["mrcnn_class"][:real].astype(np.float32)
    rois = raw["rpn_rois"][:real]
    num_classes = probs.shape[1]
    deltas = raw["mrcnn_bbox"][:real] * np.asarray(config.BBOX_STD_DEV, np.float32)  # (R, C, 4)
    # (R, C, 4) -> (R*C, 4): refine every ROI by every class's deltas, clipped to the window as
    # the detection layer does.
    refined = apply_box_deltas(np.repeat(rois, num_classes, axis=0), deltas.reshape(-1, 4))
    window = norm_boxes(np.asarray(image_meta["window"], np.float32),
                        image_meta["molded_shape"][:2])
    refined = clip_boxes(refined, window)
    stages["heads/class_probs"] = {"probs": probs}
    stages["heads/refined"] = {
        "boxes": normalized_to_original(refined, image_meta).reshape(real, num_classes, 4)}


def _detection_stages(stages, raw, image, molded_shape, window, config):
    """detections/pre_nms, detections, masks/raw, masks (detections exactly as detect())."""
    probs = stages["heads/class_probs"]["probs"]
    refined = stages["heads/refined"]["boxes"]
    rows = np.arange(len(probs))
    # The candidates of refine_detections_np (its pre_nms_indices): foreground and confident.
    class_ids = np.argmax(probs, axis=1).astype(np.int32) if len(probs) else rows.astype(np.int32)
    class_scores = probs[rows, class_ids]
    candidates = np.flatnonzero((class_ids > 0)
                                & (class_scores >= config.DETECTION_MIN_CONFIDENCE)).astype(np.int32)
    stages["detections/pre_nms"] = {
        "boxes": refined[candidates, class_ids[candidates]].reshape(-1, 4),
        "class_ids": class_ids[candidates],
        "scores": class_scores[candidates].astype(np.float32),
        "roi_indices": candidates,
    }
    boxes, det_class_ids, scores, masks, kept = imaging.unmold_detections(
        raw["detections"], raw["mrcnn_mask"], image.shape, molded_shape, window)
    roi_indices = raw["detection_roi_indices"][kept].astype(np.int32)
    pre_nms_indices = np.full(len(roi_indices), -1, np.int32)
    if len(candidates):
        position = np.minimum(np.searchsorted(candidates, roi_indices), len(candidates) - 1)
        pre_nms_indices = np.where(candidates[position] == roi_indices, position, -1)
    stages["detections"] = {
        "boxes": boxes, "class_ids": det_class_ids, "scores": scores, "roi_indices": roi_indices,
        "pre_nms_indices": pre_nms_indices.astype(np.int32),
    }
    stages["masks/raw"] = {
        "masks": raw["mrcnn_mask"][kept, :, :, det_class_ids].astype(np.float32)
        .reshape(len(kept), *raw["mrcnn_mask"].shape[1:3])}
    stages["masks"] = {"masks": masks}


# ---------------------------------------------------------------------------------------------
# ground truth and training targets
# ---------------------------------------------------------------------------------------------


def _check_gt(gt, image_shape):
    """Validated copy of the ``gt`` dict, or None."""
    if gt is None:
        return None
    if "boxes" not in gt or "class_ids" not in gt:
        raise ValueError(f"trace: gt needs 'boxes' [G, 4] and 'class_ids' [G]; got keys {sorted(gt)}")
    boxes = np.asarray(gt["boxes"]).reshape(-1, 4).astype(np.int32)
    class_ids = np.asarray(gt["class_ids"]).reshape(-1).astype(np.int32)
    if len(boxes) != len(class_ids):
        raise ValueError(f"trace: gt has {len(boxes)} boxes but {len(class_ids)} class_ids")
    out = {"boxes": boxes, "class_ids": class_ids}
    if gt.get("masks") is not None:
        masks = np.asarray(gt["masks"]).astype(bool)
        expected = tuple(image_shape[:2]) + (len(boxes),)
        if masks.shape != expected:
            raise ValueError(f"trace: gt masks have shape {masks.shape}, expected {expected} "
                             "([H, W, G] of the image)")
        out["masks"] = masks
    return out


def _molded_gt(gt, image_meta, molded_shape):
    """GT boxes [G, 4] (pixels) and masks [h, w, G] float32 in the molded image."""
    scale = image_meta["scale"]
    top, left = image_meta["window"][:2]
    offset = np.array([top, left, top, left], np.float64)
    boxes = np.round(gt["boxes"] * scale + offset).astype(np.int32)
    if "masks" in gt:
        padding = [tuple(p) for p in image_meta["padding"]]
        masks = imaging.resize_mask(gt["masks"], scale, padding).astype(np.float32)
    else:
        # No masks given: the box itself stands in as the mask target.
        masks = np.zeros(tuple(molded_shape[:2]) + (len(boxes),), np.float32)
        for i, (y1, x1, y2, x2) in enumerate(boxes):
            masks[max(y1, 0):y2, max(x1, 0):x2, i] = 1.0
    return boxes, masks


def _target_stages(stages, graphs, gt, tensors, config, molded_shape, image_meta):
    """gt, targets/rpn (anchor match states) and targets/rois (sampled training ROIs)."""
    import tensorflow as tf

    from mrcnn.targets import POSITIVE, build_rpn_targets

    stages["gt"] = dict(gt)
    boxes, masks = _molded_gt(gt, image_meta, molded_shape)
    rng = np.random.default_rng(TARGETS_SEED)
    match, rpn_bbox = build_rpn_targets(get_anchors_pixels(config, molded_shape),
                                        gt["class_ids"], boxes, config, rng=rng)
    positive = np.flatnonzero(match == POSITIVE).astype(np.int32)
    rpn_std = np.asarray(config.RPN_BBOX_STD_DEV, np.float32)
    stages["targets/rpn"] = {"match": match.astype(np.int32),
                             "deltas": (rpn_bbox[:len(positive)] * rpn_std).astype(np.float32),
                             "positive_indices": positive}

    tf.random.set_seed(TARGETS_SEED)
    layer = graphs.target_layer(config)
    rois, class_ids, deltas, mask_targets, source = layer([
        tensors["rpn_rois"], tf.constant(gt["class_ids"][None], tf.int32),
        tf.constant(norm_boxes(boxes, molded_shape[:2])[None], tf.float32),
        tf.constant(masks[None], tf.float32)])
    source = source.numpy()[0]
    real = int(np.sum(source >= 0))  # positives, then negatives, then padding
    bbox_std = np.asarray(config.BBOX_STD_DEV, np.float32)
    stages["targets/rois"] = {
        "boxes": normalized_to_original(rois.numpy()[0][:real], image_meta),
        "class_ids": class_ids.numpy()[0][:real].astype(np.int32),
        "deltas": (deltas.numpy()[0][:real] * bbox_std).astype(np.float32),
        "masks": mask_targets.numpy()[0][:real].astype(np.float32),
        "proposal_indices": source[:real].astype(np.int32),
    }
