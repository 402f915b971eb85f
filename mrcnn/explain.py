"""explain(model, image, detection): which pixels one detection rests on, as a saliency map.

Methods (``METHODS``):

- ``gradcam``: Grad-CAM (Selvaraju et al. 2017) for one detection. S = the log-odds of the
  detection's class against the background, z_class - z_background (``target="class"``; see
  ``mrcnn.explain_graphs``), or its mask logits summed over its predicted mask
  (``target="mask"``); A = the activations of ``layer``. The gradient dS/dA flows from the
  heads through ROIAlign for the detection's own ROI (class) or box (mask), held fixed, pooled
  from its own pyramid level. Map = relu(sum_c dS/dA_c * A_c) per position (HiResCAM, Draelos
  & Carin 2020; ODAM, Zhao et al. 2023): one detection's gradient lives inside its ROI, and the
  textbook channel weights (the gradient averaged over the whole map) spread it back over every
  object with similar features - on held-out Shapes that form points inside the box 3.7% of the
  time.
  It stays available as ``gradcam-pooled``.
- ``gradcam++``: the same with Grad-CAM++ weights (Chattopadhay et al. 2018), which weight
  positive gradients per position; ``gradcam++-pooled`` sums them per channel as published.
- ``drise``: D-RISE (Petsiuk et al. 2021), black box: random masks over the image; each masked
  run's proposals are scored by their similarity to the detection (box IoU x cosine of the class
  probability vectors; best proposal per run) and the map is the similarity-weighted mean of
  the masks, centred on the mean similarity (see ``mrcnn.explain_drise``).

Layers: any backbone or FPN layer that feeds the pyramid level the detection is pooled from.
The level follows ROIAlign's rule (``mrcnn.layers.roi_align.roi_levels``): the ROI's for
``target="class"``, the refined box's for ``target="mask"``. FPN levels other than that one get
no gradient at all (ROIAlign crops one level per box), so asking for them raises
``LayerNotFeedingError`` rather than returning an all-zero map; so do head, RPN and P6 layers.
``layer=None`` picks ``fpn_p<level>`` of the detection.

The map is [H, W] float32 in original-image pixels, >= 0, scaled so its maximum is 1 (all zero
when nothing is positive). Boxes elsewhere here are ``[y1, x1, y2, x2]``: ``Trace`` boxes in
original pixels, ROIs given to the graph normalized to the molded image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrcnn.explain_errors import (DetectionIndexError, ExplainCancelled, ExplainError,
                                  GroundTruthIndexError, LayerNotFeedingError, NoDetectionsError,
                                  NoGroundTruthError, UnknownLayerError)

__all__ = ["explain", "detection_target", "gt_target", "pooled_level", "DetectionTarget",
           "METHODS", "TARGETS",
           "ExplainError", "ExplainCancelled", "DetectionIndexError", "LayerNotFeedingError",
           "NoDetectionsError", "UnknownLayerError", "NoGroundTruthError",
           "GroundTruthIndexError"]

METHODS = ("gradcam", "gradcam++", "drise", "gradcam-pooled", "gradcam++-pooled")
TARGETS = ("class", "mask")
MASK_THRESHOLD = 0.5  # mask probability above which a mask-grid cell counts as "the mask"


@dataclass(frozen=True)
class DetectionTarget:
    """What one detection of a trace is, in the graph's terms (normalized molded coordinates).

    A GT object is explained through one too (``mrcnn.explain_gt.gt_target``): then ``roi`` is
    the ROI that covered it (or its own box), ``box`` its box, ``class_probs`` one-hot, ``mask``
    None (the whole mask grid counts) and ``name`` says which it is.
    """

    index: int
    class_id: int
    roi: np.ndarray          # (4,) the proposal the classifier pooled (normalized)
    box: np.ndarray          # (4,) the refined box the mask head pooled (normalized)
    class_probs: np.ndarray  # (C,) the classifier's probabilities for the ROI
    mask: np.ndarray | None  # (m, m) the detection's mask probabilities on the mask grid
    box_pixels: np.ndarray   # (4,) the detection's box, original pixels (int, as detect())
    name: str = ""           # how messages call it; "" = "detection <index>"

    def __str__(self) -> str:
        return self.name or f"detection {self.index}"


def detection_target(trace, detection) -> DetectionTarget:
    """DetectionTarget of row ``detection`` of ``trace["detections"]``; ExplainError on bad input."""
    from mrcnn.trace_data import original_to_normalized

    if "detections" not in trace:
        raise NoDetectionsError("explain: the trace has no 'detections' stage (it was not run "
                                "through a model); trace the image with a model first")
    det = trace["detections"]
    count = len(det["class_ids"])
    if count == 0:
        raise NoDetectionsError("explain: the image has no detections (none scored above "
                                "DETECTION_MIN_CONFIDENCE), so there is nothing to explain")
    if isinstance(detection, (bool, np.bool_)) or not isinstance(detection, (int, np.integer)):
        raise DetectionIndexError(f"explain: detection must be an integer index, got "
                                  f"{detection!r}")
    if not 0 <= int(detection) < count:
        raise DetectionIndexError(f"explain: detection {detection} is out of range; the image "
                                  f"has {count} detections (0..{count - 1})")
    k = int(detection)
    roi_row, class_id = int(det["roi_indices"][k]), int(det["class_ids"][k])
    image_meta = trace.meta["image_meta"]
    roi = trace["proposals/post_nms"]["boxes"][roi_row]
    refined = trace["heads/refined"]["boxes"][roi_row, class_id]
    normalized = original_to_normalized(np.stack([roi, refined]), image_meta)
    return DetectionTarget(
        index=k, class_id=class_id, roi=normalized[0], box=normalized[1],
        class_probs=np.asarray(trace["heads/class_probs"]["probs"][roi_row], np.float32),
        mask=np.asarray(trace["masks/raw"]["masks"][k], np.float32),
        box_pixels=np.asarray(det["boxes"][k]))


def gt_target(trace, gt):
    """``mrcnn.explain.DetectionTarget`` of GT object ``gt`` (normalized molded coordinates)."""
    from mrcnn.explain_gt import gt_subject, subject_name
    from mrcnn.trace_data import original_to_normalized

    kind, row = gt_subject(trace, gt)
    if kind == "detection":
        return detection_target(trace, row)
    boxes, class_ids = trace["gt"]["boxes"], trace["gt"]["class_ids"]
    class_id = int(class_ids[gt])
    num_classes = np.asarray(trace["heads/class_probs"]["probs"]).shape[-1] \
        if "heads/class_probs" in trace else class_id + 1
    if not 0 < class_id < num_classes:
        raise ExplainError(f"explain: GT object {gt} has class {class_id}, which the model's "
                           f"{num_classes} classes do not include")
    gt_box = np.asarray(boxes[gt], np.float32)
    roi = trace["proposals/post_nms"]["boxes"][row] if kind == "roi" else gt_box
    normalized = original_to_normalized(np.stack([roi, gt_box]), trace.meta["image_meta"])
    one_hot = np.zeros(num_classes, np.float32)
    one_hot[class_id] = 1.0
    return DetectionTarget(index=int(gt), class_id=class_id, roi=normalized[0],
                           box=normalized[1], class_probs=one_hot, mask=None,
                           box_pixels=np.asarray(gt_box), name=subject_name(gt, kind, row))


def pooled_level(box, molded_shape) -> int:
    """Pyramid level (2..5) ROIAlign pools normalized ``box`` (4,) from, in a molded image."""
    import tensorflow as tf

    from mrcnn.layers.roi_align import roi_levels

    boxes = tf.constant(np.asarray(box, np.float32).reshape(1, 1, 4))
    shape = tf.constant([list(molded_shape[:3])], tf.int32)
    return int(roi_levels(boxes, shape).numpy()[0, 0])


def explain(model, image, detection=None, method="gradcam", layer=None, target="class",
            trace=None, *, gt=None, **drise_options) -> np.ndarray:
    """[H, W] float32 saliency of detection ``detection`` of ``image`` [H, W, C] (original pixels).

    ``trace``: the image's ``mrcnn.trace.trace`` (traced here, without activations, if None);
    ``detection`` indexes its ``detections`` stage. ``gt`` instead: a GT object of a trace
    traced with ground truth, explained through the detection, covering ROI or own box its
    diagnosis points to (``mrcnn.explain_gt``). ``layer``: a backbone / FPN layer name
    (Grad-CAM only; None = ``fpn_p<level>`` of the detection). ``drise_options``: ``num_masks``,
    ``cell_size`` (pixels), ``keep_prob``, ``seed``, ``batch_size``, ``progress(done, total)``,
    ``cancel()`` -> bool (see ``mrcnn.explain_drise.drise_map``).
    """
    from mrcnn import imaging

    if method not in METHODS:
        raise ExplainError(f"explain: method must be one of {', '.join(METHODS)}, got {method!r}")
    if target not in TARGETS:
        raise ExplainError(f"explain: target must be one of {', '.join(TARGETS)}, got {target!r}")
    model._require_mode("inference", "explain")
    image = imaging.to_model_channels(image, model.config.IMAGE_CHANNEL_COUNT, "image")
    if trace is None:
        from mrcnn.trace import trace as run_trace

        trace = run_trace(model, image, activations=[])
    elif tuple(trace.image.shape[:2]) != tuple(image.shape[:2]):
        raise ExplainError(f"explain: the trace is of a {trace.image.shape[1]}x"
                           f"{trace.image.shape[0]} image but the image is {image.shape[1]}x"
                           f"{image.shape[0]}; pass the trace of this image")
    if (detection is None) == (gt is None):
        raise ExplainError("explain: give exactly one of detection (a row of the detections) "
                           "and gt (a ground-truth object)")
    if gt is not None:
        det = gt_target(trace, gt)
    else:
        det = detection_target(trace, detection)
    molded, metas, windows, anchors = model.mold([image])
    if method == "drise":
        if layer is not None:
            raise ExplainError("explain: D-RISE is black-box and takes no layer; drop --layer "
                               "(or use method gradcam / gradcam++)")
        from mrcnn.explain_drise import drise_map

        saliency = drise_map(model, molded[0], metas[0], anchors[0], windows[0], det,
                             **drise_options)
        return finish_map(crop_to_original(saliency, windows[0], image.shape))
    if drise_options:
        raise ExplainError(f"explain: {', '.join(sorted(drise_options))} apply to D-RISE only")
    feature_map = gradcam_feature_map(model, molded[0], metas[0], det, layer, target,
                                      plus_plus=method.startswith("gradcam++"),
                                      per_position=not method.endswith("-pooled"))
    return finish_map(feature_to_original(feature_map, molded[0].shape, windows[0], image.shape))


def gradcam_feature_map(model, molded, meta, det: DetectionTarget, layer, target,
                        plus_plus=False, per_position=True) -> np.ndarray:
    """[h, w] relu'd Grad-CAM (or ++) on ``layer``'s grid for one detection of a molded image."""
    from mrcnn.explain_graphs import explain_graphs

    graphs = explain_graphs(model)
    box = det.roi if target == "class" else det.box
    level = pooled_level(box, molded.shape)
    what = f"{det}'s ROI" if target == "class" else f"{det}'s box (mask head)"
    layer = layer or f"fpn_p{level}"
    graphs.check_layer(layer, level, what)
    if det.mask is None:  # a GT subject: the mask head never ran on it, take the whole grid
        region = np.ones(tuple(model.config.MASK_SHAPE), np.float32)
    else:
        region = (det.mask >= MASK_THRESHOLD).astype(np.float32)
        if not region.any():  # an empty predicted mask: explain all of its logits
            region = np.ones_like(region)
    activations, gradients, _ = graphs.gradient_fn(layer, target)(
        molded[None].astype(np.float32), meta[None].astype(np.float32),
        box.reshape(1, 1, 4).astype(np.float32), np.int32(det.class_id), region)
    return cam_from_gradients(activations.numpy(), gradients.numpy(), plus_plus, per_position)


def cam_from_gradients(activations, gradients, plus_plus=False, per_position=True):
    """[h, w] relu(sum_c weight_c * A_c) from activations and gradients (h, w, c).

    ``per_position``: weights keep their position (element-wise, HiResCAM / ODAM); otherwise
    each channel's weight is pooled over the whole map (textbook Grad-CAM / Grad-CAM++).
    """
    if plus_plus:
        weights = gradcam_pp_weights(activations, gradients, per_position)
    else:
        weights = gradients if per_position else gradients.mean(axis=(0, 1))
    return np.maximum((activations * weights).sum(axis=-1), 0.0)


def gradcam_pp_weights(activations, gradients, per_position=True) -> np.ndarray:
    """Grad-CAM++ weights from activations and gradients (h, w, c): (h, w, c) or pooled (c,).

    alpha = g^2 / (2 g^2 + sum_ij(A) g^3) per position (the closed form for an exponential of
    the score), weight = alpha * relu(g), summed over positions unless ``per_position``.
    """
    g2, g3 = gradients ** 2, gradients ** 3
    denominator = 2.0 * g2 + activations.sum(axis=(0, 1)) * g3
    safe = np.where(np.abs(denominator) > 1e-12, denominator, 1.0)
    alpha = np.where(gradients != 0.0, g2 / safe, 0.0)
    weights = alpha * np.maximum(gradients, 0.0)
    return weights if per_position else weights.sum(axis=(0, 1))


def feature_to_original(feature_map, molded_shape, window, original_shape) -> np.ndarray:
    """[H, W] of a [h, w] feature-grid map: upsampled to the molded image, cropped to the window,
    resized to the original image.

    Cell i is drawn at molded pixel (i + 0.5) * stride - 0.5 (pixel-centre alignment), near the
    centre of the pixels that feed it (4i + 2 for P2 / C2 of this ResNet: conv1 7x7/2, max pool
    3x3/2 'same'). ROIAlign's own align-corners convention (i * (Hm - 1) / (h - 1)) is off by up
    to 2 px at the image's edges; measured on held-out Shapes it moved class maps' peaks out of
    their boxes (pointing game 91.0% -> 86.6%, class-logit target), so the physical placement
    is kept.
    """
    from skimage.transform import resize

    molded_map = resize(np.asarray(feature_map, np.float64), tuple(molded_shape[:2]), order=1,
                        mode="edge", anti_aliasing=False)
    return crop_to_original(molded_map, window, original_shape)


def crop_to_original(molded_map, window, original_shape) -> np.ndarray:
    """[H, W] from a map over the molded image: its window (y1, x1, y2, x2) resized to H, W."""
    from skimage.transform import resize

    y1, x1, y2, x2 = (int(v) for v in window)
    return resize(np.asarray(molded_map, np.float64)[y1:y2, x1:x2], tuple(original_shape[:2]),
                  order=1, mode="edge", anti_aliasing=False)


def finish_map(saliency) -> np.ndarray:
    """float32, negatives clipped, maximum scaled to 1 (an all-zero map stays zero)."""
    saliency = np.maximum(np.nan_to_num(np.asarray(saliency, np.float64)), 0.0)
    peak = saliency.max() if saliency.size else 0.0
    return (saliency / peak if peak > 0 else saliency).astype(np.float32)
