"""MaskRCNN: build the Keras graph, detect, load and save weights.

The graph reads like the paper: backbone -> FPN -> RPN -> proposals -> classifier head ->
detections -> mask head. Each stage lives in its own module; this file only composes them.

Shape shorthand: B images, A anchors (all levels), K = min(PRE_NMS_LIMIT, A), R proposals
(POST_NMS_ROIS_*), D = DETECTION_MAX_INSTANCES, C = NUM_CLASSES.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np

from mrcnn import imaging
from mrcnn import modellib_compat as compat
from mrcnn.anchors import get_anchors, get_anchors_pixels
from mrcnn.config import Config
from mrcnn.precision import built_under_config_policy
# matterport's modellib functions, so `import mrcnn.model as modellib` code runs unchanged.
from mrcnn.modellib_compat import (build_rpn_targets, compose_image_meta,
                                   compute_backbone_shapes, data_generator, denorm_boxes_graph,
                                   load_image_gt, log, mold_image, norm_boxes_graph,
                                   parse_image_meta, parse_image_meta_graph, unmold_image)

logger = logging.getLogger(__name__)

__all__ = ["MaskRCNN", "INFERENCE_OUTPUTS", "build_inference_graph",
           # matterport's modellib functions (mrcnn.modellib_compat)
           "log", "compute_backbone_shapes", "load_image_gt", "build_rpn_targets",
           "data_generator", "mold_image", "unmold_image", "compose_image_meta",
           "parse_image_meta", "parse_image_meta_graph", "norm_boxes_graph",
           "denorm_boxes_graph"]

# Names of the inference graph's outputs, in the order the Keras model returns them.
INFERENCE_OUTPUTS = (
    "detections",             # (B, D, 6) normalized y1, x1, y2, x2, class_id, score; zero rows pad
    "detection_roi_indices",  # (B, D) int32 row of rpn_rois each detection came from, -1 pads
    "mrcnn_class",            # (B, R, C) class probabilities per proposal
    "mrcnn_bbox",             # (B, R, C, 4) class-specific deltas (divided by BBOX_STD_DEV)
    "mrcnn_mask",             # (B, D, 28, 28, C) mask probabilities per detection and class;
                              # zero for padding rows (the mask head skips them)
    "rpn_rois",               # (B, R, 4) normalized proposals after NMS, zero rows pad
    "rpn_class",              # (B, A, 2) background / foreground probabilities per anchor
    "rpn_bbox",               # (B, A, 4) anchor deltas (divided by RPN_BBOX_STD_DEV)
    "pre_nms_boxes",          # (B, K, 4) normalized refined + clipped top-K anchors
    "pre_nms_anchor_indices", # (B, K) int32 anchor index of each pre-NMS box
    "pre_nms_scores",         # (B, K) foreground score of each pre-NMS box
    "post_nms_indices",       # (B, R) int32 pre-NMS row of each proposal, -1 pads
)


@built_under_config_policy
def build_inference_graph(config: Config):
    """The inference keras.Model: (image, image_meta, anchors) -> dict of INFERENCE_OUTPUTS."""
    import keras

    from mrcnn.graph_front import build_graph_front
    from mrcnn.heads import build_fpn_mask_graph, fpn_classifier_graph
    from mrcnn.layers.detection import DetectionLayer
    from mrcnn.layers.detection_rows import PadDetections, TrimDetections

    image_shape = _graph_image_shape(config)
    input_image = keras.Input(shape=image_shape, name="input_image")
    input_image_meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    input_anchors = keras.Input(shape=(None, 4), name="input_anchors")

    front = build_graph_front(input_image, input_anchors, config, config.POST_NMS_ROIS_INFERENCE)
    mrcnn_feature_maps, rpn_class, rpn_bbox = front.feature_maps, front.rpn_class, front.rpn_bbox
    rpn_rois, pre_nms_boxes, pre_nms_anchor_indices, post_nms_indices, pre_nms_scores = front.proposals

    _, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.head_train_bn, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)

    detections, detection_roi_indices = DetectionLayer(
        detection_max_instances=config.DETECTION_MAX_INSTANCES,
        detection_min_confidence=config.DETECTION_MIN_CONFIDENCE,
        detection_nms_threshold=config.DETECTION_NMS_THRESHOLD,
        bbox_std_dev=np.asarray(config.BBOX_STD_DEV).tolist(),
        name="mrcnn_detection",
    )([rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])

    # The mask head runs on the final detections only (as matterport), and only on the real
    # ones: padding rows are trimmed before it and restored (as zeros) after it.
    detection_boxes = TrimDetections(name="detection_boxes", dtype="float32")(detections)
    real_masks = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps, input_image_meta,
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                      train_bn=config.head_train_bn,
                                      channels=config.MASK_HEAD_CHANNELS)
    mrcnn_mask = PadDetections(name="mrcnn_mask_padded")([real_masks, detections])

    values = (detections, detection_roi_indices, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois,
              rpn_class, rpn_bbox, pre_nms_boxes, pre_nms_anchor_indices, pre_nms_scores,
              post_nms_indices)
    outputs = dict(zip(INFERENCE_OUTPUTS, values))
    return keras.Model([input_image, input_image_meta, input_anchors], outputs, name="mask_rcnn")


def _graph_image_shape(config: Config):
    """Static (H, W, C) when every molded image has the same size, else (None, None, C)."""
    if config.IMAGE_RESIZE_MODE in ("square", "crop"):
        return tuple(int(v) for v in config.IMAGE_SHAPE)
    return (None, None, config.IMAGE_CHANNEL_COUNT)


class MaskRCNN:
    """Mask R-CNN with matterport's public API: ``MaskRCNN(mode, config, model_dir)``."""

    def __init__(self, mode: str, config: Config, model_dir=None, strategy=None):
        if mode not in ("inference", "training"):
            raise ValueError(f"mode must be 'inference' or 'training', got {mode!r}")
        self.mode = mode
        self.config = config.validate()
        self.model_dir = Path(model_dir) if model_dir is not None else Path("logs")
        self.epoch = 0  # epochs completed (matterport's counter; train() continues from it)
        self._predict_fn = None
        self.set_log_dir()
        if mode == "inference":
            self.keras_model = build_inference_graph(config)
            return
        import tensorflow as tf

        from mrcnn.trainer import MaskRCNNTrainer, build_training_graph

        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.keras_model = build_training_graph(config)
            self.trainer = MaskRCNNTrainer(self.keras_model, config, name="mask_rcnn_trainer")

    # ---- inference -------------------------------------------------------------------------

    def predict_molded(self, molded_images, image_metas, anchors) -> dict:
        """Run the compiled graph on molded inputs; returns INFERENCE_OUTPUTS as numpy arrays."""
        self._require_mode("inference", "predict_molded")
        if self._predict_fn is None:
            self._predict_fn = self._compile_predict()
        outputs = self._predict_fn(np.asarray(molded_images, np.float32),
                                   np.asarray(image_metas, np.float32),
                                   np.asarray(anchors, np.float32))
        return {k: v.numpy() for k, v in outputs.items()}

    def _compile_predict(self):
        """One tf.function with a fixed signature, so images of one shape never retrace it."""
        import tensorflow as tf

        height, width, channels = _graph_image_shape(self.config)
        signature = [
            tf.TensorSpec([None, height, width, channels], tf.float32),
            tf.TensorSpec([None, self.config.IMAGE_META_SIZE], tf.float32),
            tf.TensorSpec([None, None, 4], tf.float32),
        ]
        model = self.keras_model

        @tf.function(input_signature=signature)
        def predict(images, metas, anchors):
            return model([images, metas, anchors], training=False)

        return predict

    def mold(self, images):
        """Images (any size/channels/dtype) -> molded batch, metas, windows, anchors (normalized)."""
        molded, metas, windows = imaging.mold_inputs(list(images), self.config)
        anchors = get_anchors(self.config, molded[0].shape)
        anchors = np.broadcast_to(anchors, (len(molded),) + anchors.shape)
        return molded, metas, windows, anchors

    def detect(self, images, verbose=0) -> list[dict]:
        """Detect instances in a list of images.

        Returns one dict per image with matterport's keys: ``rois`` [N, 4] int32 original-image
        pixels (y1, x1, y2, x2), ``class_ids`` [N] int32, ``scores`` [N] float32 and ``masks``
        [H, W, N] bool.
        """
        if isinstance(images, np.ndarray) and images.ndim in (2, 3):
            raise ValueError("detect() takes a list of images; wrap a single image as [image]")
        images = list(images)
        if not images:
            return []
        results = []
        batch = self.config.BATCH_SIZE
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            results.extend(self._detect_batch(chunk))
        if verbose:
            logger.info("detected %s instances in %d images",
                     [len(r["class_ids"]) for r in results], len(images))
        return results

    def _detect_batch(self, images) -> list[dict]:
        images = [imaging.to_model_channels(im, self.config.IMAGE_CHANNEL_COUNT, f"image {i}")
                  for i, im in enumerate(images)]
        molded, metas, windows, anchors = self.mold(images)
        out = self.predict_molded(molded, metas, anchors)
        results = []
        for i, image in enumerate(images):
            rois, class_ids, scores, masks, _ = imaging.unmold_detections(
                out["detections"][i], out["mrcnn_mask"][i], image.shape, molded[i].shape, windows[i])
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results

    # ---- training --------------------------------------------------------------------------

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              verbose=0, seed=0, optimizer_state=None, save_checkpoints=None):
        """Train until epoch ``epochs`` (counted from 0, continuing from ``self.epoch``).

        ``train_dataset`` / ``val_dataset``: mrcnn Dataset objects (turned into tf.data pipelines
        with ``augmentation`` on the training side) or ready tf.data.Datasets of training inputs.
        ``augmentation``: an ``mrcnn.data.augment.Augmentation`` or an albumentations pipeline;
        images of ``no_augmentation_sources`` are not augmented.
        ``layers``: "heads", "3+", "4+", "5+", "all" or a regex of layer names.
        ``save_checkpoints``: write ``self.checkpoint_path`` (matterport's
        ``logs/<name><time>/mask_rcnn_<name>_<epoch>.h5``) after each epoch; None = only when
        given Dataset objects (``mrcnn train`` passes tf.data and keeps its own run directory).
        ``optimizer_state``: an ``.optimizer.npz`` written by ``save_optimizer_state`` (a
        resume), restored when it fits the optimizer and trainable variables
        (``self.optimizer_state_report`` says what happened).
        Returns the keras History; per-epoch train and validation losses are in it.
        """
        self._require_mode("training", "train")
        from mrcnn.data.albumentations_aug import as_augmentation
        from mrcnn.trainer import make_optimizer, set_trainable

        train_data = self._as_tf_dataset(train_dataset, as_augmentation(augmentation),
                                         shuffle=True, seed=seed,
                                         no_augmentation_sources=no_augmentation_sources)
        val_data = None
        if val_dataset is not None:
            val_data = self._as_tf_dataset(val_dataset, None, shuffle=False, seed=seed)
        callbacks = list(custom_callbacks or [])
        if compat.writes_checkpoints(save_checkpoints, train_dataset):
            os.makedirs(self.log_dir, exist_ok=True)
            callbacks.append(compat.checkpoint_callback(self.save_weights, self.checkpoint_path))
        with self.strategy.scope():
            trainable = set_trainable(self.keras_model, layers, self.config.TRAIN_BN,
                                      self.config.head_train_bn)
            self.trainer.compile(optimizer=make_optimizer(self.config, learning_rate))
            if optimizer_state is not None:
                from mrcnn.optimizer_state import restore_optimizer_state

                self.optimizer_state_report = restore_optimizer_state(
                    self.trainer.optimizer, self.trainer.trainable_variables, optimizer_state)
                logger.info("%s", self.optimizer_state_report)
        logger.info("training %d layers (%s) from epoch %d to %d at lr %g", len(trainable), layers,
                    self.epoch, epochs, learning_rate)
        history = self.trainer.fit(
            train_data, initial_epoch=self.epoch, epochs=epochs,
            steps_per_epoch=self.config.STEPS_PER_EPOCH,
            validation_data=val_data,
            validation_steps=self.config.VALIDATION_STEPS if val_data is not None else None,
            callbacks=callbacks, verbose=verbose)
        self.epoch = max(self.epoch, epochs)
        return history

    def save_optimizer_state(self, path):
        """Write the optimizer's state (step, momenta) to ``path``; None before it is built."""
        optimizer = getattr(self.trainer, "optimizer", None)
        if optimizer is None or not optimizer.built:
            return None
        from mrcnn.optimizer_state import save_optimizer_state

        return save_optimizer_state(optimizer, self.trainer.trainable_variables, path)

    def _as_tf_dataset(self, dataset, augmentation, shuffle, seed, no_augmentation_sources=None):
        import tensorflow as tf

        if isinstance(dataset, tf.data.Dataset):
            return dataset
        from mrcnn.data.pipeline import make_dataset

        return make_dataset(dataset, self.config, shuffle=shuffle, augmentation=augmentation,
                            repeat=True, seed=seed,
                            no_augmentation_sources=no_augmentation_sources)

    # ---- weights ---------------------------------------------------------------------------

    def load_weights(self, filepath, by_name=True, exclude=None):
        """Load HDF5 weights (matterport's or ours) by layer name; returns a WeightsReport."""
        from mrcnn.weights import load_weights

        report = load_weights(self.keras_model, filepath, by_name=by_name, exclude=exclude)
        logger.info("%s", report)
        self.set_log_dir(filepath)  # as matterport: a checkpoint of ours continues its run
        return report

    def save_weights(self, filepath) -> None:
        """Save weights in matterport's HDF5 layout (atomic write)."""
        from mrcnn.weights import save_weights

        os.makedirs(Path(filepath).parent, exist_ok=True)
        save_weights(self.keras_model, filepath)

    # ---- matterport's other methods (helpers in mrcnn.modellib_compat) ----------------------

    def set_log_dir(self, model_path=None):
        """Set log_dir / checkpoint_path (and epoch, from a checkpoint of ours) as matterport."""
        self.log_dir, self.checkpoint_path, epoch = compat.log_dir_paths(
            self.model_dir, self.config.NAME, model_path)
        if model_path is None or epoch:
            self.epoch = epoch

    def find_last(self):
        """Path of the last checkpoint of the newest run of this config's NAME in model_dir."""
        return compat.find_last(self.model_dir, self.config.NAME)

    def get_imagenet_weights(self):
        """Path of a local ResNet-50 ImageNet weights file (FileNotFoundError says where)."""
        return compat.imagenet_weights_path()

    def compile(self, learning_rate, momentum):
        """Compile the training model with the config's optimizer at this lr and momentum."""
        self._require_mode("training", "compile")
        from mrcnn.trainer import make_optimizer

        config = copy.copy(self.config)
        config.LEARNING_MOMENTUM = momentum
        with self.strategy.scope():
            self.trainer.compile(optimizer=make_optimizer(config, learning_rate))

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """Make layers matching ``layer_regex`` (or a preset) trainable; returns their names."""
        from mrcnn.trainer import set_trainable

        names = set_trainable(keras_model or self.keras_model, layer_regex,
                              self.config.TRAIN_BN, self.config.head_train_bn)
        if verbose > 0:
            print("\n".join(" " * indent + name for name in names))
        return names

    def mold_inputs(self, images):
        """(molded_images, image_metas, windows) of a list of images."""
        return imaging.mold_inputs(list(images), self.config)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """(boxes [N, 4] int32 pixels, class_ids [N], scores [N], masks [H, W, N]) of one image."""
        return imaging.unmold_detections(detections, mrcnn_mask, original_image_shape,
                                         image_shape, window)[:4]

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """detect() on already molded images; results in molded-image pixels."""
        molded_images = np.asarray(molded_images, np.float32)
        anchors = self.get_anchors(molded_images[0].shape)
        out = self.predict_molded(molded_images, image_metas,
                                  np.broadcast_to(anchors, (len(molded_images),) + anchors.shape))
        results = []
        for i, image in enumerate(molded_images):
            rois, class_ids, scores, masks = self.unmold_detections(
                out["detections"][i], out["mrcnn_mask"][i], image.shape, image.shape,
                [0, 0, image.shape[0], image.shape[1]])
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results

    def get_anchors(self, image_shape):
        """[A, 4] normalized anchors of a molded image; pixel ones in ``self.anchors``."""
        self.anchors = get_anchors_pixels(self.config, image_shape)
        return get_anchors(self.config, image_shape)

    def run_graph(self, images, outputs, image_metas=None):
        """{name: numpy} of graph tensors [(name, tensor or layer name)] for a list of images."""
        return compat.run_graph(self, images, outputs, image_metas)

    def ancestor(self, tensor, name, checked=None):
        """Nearest ancestor of a graph tensor whose layer is ``name``, or None."""
        return compat.ancestor(tensor, name, checked)

    def find_trainable_layer(self, layer):
        return compat.find_trainable_layer(layer)

    def get_trainable_layers(self):
        """Top-level layers that hold weights (TimeDistributed wrappers unwrapped)."""
        return compat.trainable_layers(self.keras_model)

    def _require_mode(self, mode, what):
        if self.mode != mode:
            raise RuntimeError(f"{what} needs a model built in {mode!r} mode, this one is {self.mode!r}")
