"""Export a trained model for serving: a TensorFlow SavedModel (TF Serving layout) or ONNX.

The SavedModel's ``serving_default`` signature takes one uint8 RGB image of any size
``[H, W, 3]`` and returns what ``MaskRCNN.detect`` returns for it::

    rois       int32 [N, 4]  original-image pixels (y1, x1, y2, x2), (y2, x2) one past the end
    class_ids  int32 [N]
    scores     float32 [N]
    masks      bool [H, W, N] full-size masks, or with small_masks=True float32 [N, 28, 28]
               mask probabilities of each detection's class, to be pasted into ``rois``

Molding (resize with the config's IMAGE_RESIZE_MODE, pad, subtract MEAN_PIXEL, image meta,
anchors) and unmolding (boxes back to original pixels, masks pasted) run inside the graph
(mrcnn/export_graph.py), so a client needs TensorFlow only.
"""

from __future__ import annotations

import os
from pathlib import Path

FORMATS = ("savedmodel", "onnx")
SIGNATURE_KEY = "serving_default"


class ExportError(Exception):
    """A user-facing export failure: the message names the file, option or op at fault."""


def serving_function(model, small_masks: bool = False):
    """A tf.function ``image uint8 [H, W, 3] -> dict`` (see the module docstring) over the
    inference ``model`` (a MaskRCNN)."""
    import tensorflow as tf

    from mrcnn import export_graph as graph

    config = model.config
    keras_model = model.keras_model

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
    def serve(image):
        molded, meta, window = graph.resize_and_pad(image, config)
        molded_shape = tf.shape(molded)
        anchors = graph.pyramid_anchors(config, molded_shape)
        outputs = keras_model([molded[None], meta[None], anchors[None]], training=False)
        original_shape = tf.shape(image)
        rois, class_ids, scores, rows = graph.unmold_boxes(
            outputs["detections"][0], molded_shape, window, original_shape)
        masks = graph.class_masks(outputs["mrcnn_mask"][0], rows, class_ids)
        if small_masks:
            masks = tf.ensure_shape(masks, [None] + [int(v) for v in config.MASK_SHAPE])
        else:
            masks = graph.paste_masks(masks, rois, original_shape, config.MASK_SHAPE)
        return {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}

    return serve


def export_savedmodel(model, out_dir, small_masks: bool = False, version: int = 1) -> Path:
    """Write ``out_dir/<version>/`` (TF Serving's layout) and return that folder."""
    import keras

    target = Path(out_dir) / str(version)
    archive = keras.export.ExportArchive()
    archive.track(model.keras_model)
    serve = serving_function(model, small_masks)
    archive.add_endpoint(SIGNATURE_KEY, serve)
    archive.write_out(os.fspath(target), verbose=False)
    return target


def describe_signature(saved_dir) -> str:
    """The serving signature of a SavedModel as text: inputs and outputs with dtype and shape."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(saved_dir))
    function = loaded.signatures[SIGNATURE_KEY]
    lines = [f"signature {SIGNATURE_KEY!r} of {saved_dir}:", "  inputs:"]
    for name, spec in sorted(function.structured_input_signature[1].items()):
        lines.append(f"    {name}: {spec.dtype.name} {_shape_text(spec.shape)}")
    lines.append("  outputs:")
    for name, spec in sorted(function.structured_outputs.items()):
        lines.append(f"    {name}: {spec.dtype.name} {_shape_text(spec.shape)}")
    return "\n".join(lines)


def _shape_text(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"
