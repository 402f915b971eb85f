"""``mrcnn train --tb-images N``: detections on N fixed validation images in TensorBoard.

At the end of every epoch the callback copies the training model's weights into an inference
model (same layer names, so by name), runs ``detect()`` on the first N validation images, and
writes one image summary per epoch under the tag ``val/detections``: ground truth (left) beside
the detections (right), both drawn by ``mrcnn.visualize.display_instances``. The images are the
same every epoch, so TensorBoard's step slider shows how the detections evolve.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger(__name__)

TAG = "val/detections"
PANEL_INCHES = 4.0  # each panel (GT, detections) is PANEL_INCHES * DPI pixels square
DPI = 64


def figure_pixels(figure) -> np.ndarray:
    """[H, W, 3] uint8 RGB rendering of a matplotlib Figure (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def panel_pair(image, gt, result, class_names) -> np.ndarray:
    """[S, 2S, 3] uint8: GT instances (left) and detections with scores (right), S = 256 px."""
    size = (PANEL_INCHES, PANEL_INCHES)
    from mrcnn.visualize import display_instances

    left = display_instances(image, gt["rois"], gt["masks"], gt["class_ids"], class_names,
                             title="ground truth", figsize=size)
    right = display_instances(image, result["rois"], result["masks"], result["class_ids"],
                              class_names, result["scores"],
                              title=f"detections ({len(result['class_ids'])})", figsize=size)
    for figure in (left, right):
        figure.set_dpi(DPI)
    return np.concatenate([figure_pixels(left), figure_pixels(right)], axis=1)


def load_ground_truth(dataset, image_id):
    """(image, {"rois", "masks", "class_ids"}) of one dataset image in its own pixels."""
    from mrcnn.boxes import extract_bboxes

    image = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    keep = class_ids > 0  # crowd regions are not instances
    masks, class_ids = masks[:, :, keep], class_ids[keep]
    return image, {"rois": extract_bboxes(masks), "masks": masks, "class_ids": class_ids}


def copy_weights_by_name(source, target) -> int:
    """Assign every weighted layer of keras model ``target`` from the same-named layer of
    ``source``; returns how many layers were copied."""
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        layer.set_weights(source.get_layer(layer.name).get_weights())
        copied += 1
    return copied


class TensorBoardImages(keras.callbacks.Callback):
    """Writes detections on ``count`` fixed validation images each epoch (see module doc)."""

    def __init__(self, training_model, dataset, logdir, count: int):
        super().__init__()
        self.training_model = training_model  # mrcnn MaskRCNN in training mode
        self.dataset = dataset
        self.logdir = str(logdir)
        self.image_ids = list(dataset.image_ids)[:count]
        self.inference = None
        self.writer = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        from mrcnn.model import MaskRCNN

        self.inference = MaskRCNN("inference", self.training_model.config)
        self.writer = tf.summary.create_file_writer(self.logdir)
        self.samples = [load_ground_truth(self.dataset, i) for i in self.image_ids]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        copy_weights_by_name(self.training_model.keras_model, self.inference.keras_model)
        names = list(self.dataset.class_names)
        panels = []
        for image, gt in self.samples:
            result = self.inference.detect([image])[0]
            panels.append(panel_pair(image, gt, result, names))
        with self.writer.as_default():
            tf.summary.image(TAG, np.stack(panels), step=epoch + 1, max_outputs=len(panels))
        self.writer.flush()
        log.info("TensorBoard: detections on %d validation images (epoch %d) in %s",
                 len(panels), epoch + 1, self.logdir)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


def tb_images_callbacks(args, model, val_dataset, run_dir, chief) -> list:
    """The ``--tb-images`` callback for ``mrcnn train`` (none without it, off the chief, or
    without validation data)."""
    count = int(getattr(args, "tb_images", 0) or 0)
    if count <= 0 or not chief:
        return []
    if val_dataset is None or not len(val_dataset.image_ids):
        log.warning("--tb-images %d: no validation images; no detection images written", count)
        return []
    return [TensorBoardImages(model, val_dataset, run_dir.tb_path / "val_images", count)]
