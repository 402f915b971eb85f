"""ONNX export through tf2onnx (optional extra ``onnx``: tf2onnx + onnxruntime).

The same serving function as the SavedModel (mrcnn/export.py) is converted, with one change:
DetectionLayer's per-class NMS runs as ``tf.image.non_max_suppression_overlaps`` on a
class-masked IoU matrix, and tf2onnx (1.17) has no converter for TensorFlow's
``NonMaxSuppressionWithOverlaps`` op. The exported graph uses ``OffsetNmsDetectionLayer``
instead: each class's boxes are shifted by ``2 * class_id`` before one ordinary NMS (so boxes of
different classes never overlap), which converts to ONNX's ``NonMaxSuppression`` and keeps the
same detections (greedy NMS in global score order = the union of per-class NMS).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from mrcnn import boxes as box_math
from mrcnn.export import ExportError, serving_function
from mrcnn.layers.detection import PADDING_INDEX, DetectionLayer

ONNX_OPSET = 17
# The op tf2onnx cannot convert, named in errors and the README.
BLOCKING_OP = "NonMaxSuppressionWithOverlaps"
# Normalized boxes lie in [0, 1] after clipping to the window: a shift of 2 per class keeps
# boxes of different classes apart.
CLASS_OFFSET = 2.0


def require_onnx() -> None:
    """ExportError naming the missing packages when the ``onnx`` extra is not installed."""
    missing = []
    for module in ("tf2onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"--format onnx needs {' and '.join(missing)}: "
                          f"pip install 'mrcnn[onnx]' (or pip install tf2onnx onnxruntime)")


class OffsetNmsDetectionLayer(DetectionLayer):
    """DetectionLayer whose per-class NMS is one plain NMS over class-shifted boxes."""

    def _detect_one_image(self, per_image):
        refined, class_ids, class_scores, image_shape, window = per_image
        window = box_math.norm_boxes_tf(window, image_shape[:2])
        refined = box_math.clip_boxes_tf(refined, window)
        candidates = tf.where((class_ids > 0)
                              & (class_scores >= self.detection_min_confidence))[:, 0]
        candidate_boxes = tf.gather(refined, candidates)
        candidate_ids = tf.cast(tf.gather(class_ids, candidates), tf.float32)
        shifted = candidate_boxes + CLASS_OFFSET * candidate_ids[:, None]
        keep = tf.image.non_max_suppression(
            shifted, tf.gather(class_scores, candidates), self.detection_max_instances,
            iou_threshold=self.detection_nms_threshold)
        keep = tf.cast(tf.gather(candidates, keep), tf.int32)
        detections = tf.concat([tf.gather(refined, keep),
                                tf.cast(tf.gather(class_ids, keep), tf.float32)[:, None],
                                tf.gather(class_scores, keep)[:, None]], axis=1)
        padding = self.detection_max_instances - tf.shape(keep)[0]
        detections = tf.pad(detections, [[0, padding], [0, 0]])
        keep = tf.pad(keep, [[0, padding]], constant_values=PADDING_INDEX)
        return detections, keep


class _OnnxModel:
    """The parts of MaskRCNN that serving_function reads, over the ONNX-friendly graph."""

    def __init__(self, model):
        import keras

        def swap(layer):
            if isinstance(layer, DetectionLayer):
                return OffsetNmsDetectionLayer.from_config(layer.get_config())
            return layer  # shared, weights and all

        self.config = model.config
        self.keras_model = keras.models.clone_model(model.keras_model, clone_function=swap)


def onnx_serving_function(model, small_masks: bool = False):
    """The serving tf.function of ``model`` with ONNX-convertible NMS."""
    return serving_function(_OnnxModel(model), small_masks)


def export_onnx(model, out_dir, small_masks: bool = False) -> Path:
    """Convert the serving function to ``out_dir/model.onnx``; ExportError naming the op that
    tf2onnx could not convert, if any."""
    require_onnx()
    import tf2onnx

    target = Path(out_dir) / "model.onnx"
    function = onnx_serving_function(model, small_masks)
    model_proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=ONNX_OPSET)
    unconverted = sorted(_unconverted_ops(model_proto))
    if unconverted:
        raise ExportError(f"tf2onnx could not convert TensorFlow op(s) {', '.join(unconverted)}; "
                          f"no ONNX model written")
    temp = target.with_suffix(".onnx.tmp")
    temp.write_bytes(model_proto.SerializeToString())
    os.replace(temp, target)
    return target


def _unconverted_ops(model_proto) -> set:
    """Op types of nodes (loop bodies included) that are not standard ONNX ops."""
    import onnx

    found = set()
    standard = {schema.name for schema in onnx.defs.get_all_schemas()}

    def visit(graph):
        for node in graph.node:
            if node.domain in ("", "ai.onnx") and node.op_type not in standard:
                found.add(node.op_type)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g)
                for sub in attribute.graphs:
                    visit(sub)

    visit(model_proto.graph)
    return found
