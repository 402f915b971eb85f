"""
A user's script written for matterport Mask_RCNN (in the style of its samples/balloon/balloon.py
and the inspect_*_model notebooks), kept unchanged: it must run against this package.

Usage: python matterport_balloon_script.py train --dataset=DIR --logs=DIR --report=FILE.json
"""

import argparse
import json
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import skimage.draw
import skimage.io

from mrcnn.config import Config
from mrcnn import model as modellib, utils
from mrcnn import visualize


############################################################
#  Configurations
############################################################

class BalloonConfig(Config):
    """Configuration for training on the toy balloon dataset (tiny, for a test)."""
    NAME = "balloon"
    IMAGES_PER_GPU = 1
    NUM_CLASSES = 1 + 1  # Background + balloon
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    DETECTION_MIN_CONFIDENCE = 0.0
    # Small images and a small backbone so it runs in seconds on a CPU.
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    TOP_DOWN_PYRAMID_SIZE = 32
    DETECTION_MAX_INSTANCES = 20
    MAX_GT_INSTANCES = 10


############################################################
#  Dataset
############################################################

class BalloonDataset(utils.Dataset):

    def load_balloon(self, dataset_dir, subset):
        """Load a subset of the Balloon dataset (VIA polygon annotations)."""
        self.add_class("balloon", 1, "balloon")
        assert subset in ["train", "val"]
        dataset_dir = os.path.join(dataset_dir, subset)
        annotations = json.load(open(os.path.join(dataset_dir, "via_region_data.json")))
        annotations = list(annotations.values())
        annotations = [a for a in annotations if a['regions']]
        for a in annotations:
            if type(a['regions']) is dict:
                polygons = [r['shape_attributes'] for r in a['regions'].values()]
            else:
                polygons = [r['shape_attributes'] for r in a['regions']]
            image_path = os.path.join(dataset_dir, a['filename'])
            image = skimage.io.imread(image_path)
            height, width = image.shape[:2]
            self.add_image(
                "balloon",
                image_id=a['filename'],  # use file name as a unique image id
                path=image_path,
                width=width, height=height,
                polygons=polygons)

    def load_mask(self, image_id):
        """Generate instance masks for an image."""
        image_info = self.image_info[image_id]
        if image_info["source"] != "balloon":
            return super(self.__class__, self).load_mask(image_id)
        info = self.image_info[image_id]
        mask = np.zeros([info["height"], info["width"], len(info["polygons"])],
                        dtype=np.uint8)
        for i, p in enumerate(info["polygons"]):
            rr, cc = skimage.draw.polygon(p['all_points_y'], p['all_points_x'])
            mask[rr, cc, i] = 1
        return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        """Return the path of the image."""
        info = self.image_info[image_id]
        if info["source"] == "balloon":
            return info["path"]
        else:
            super(self.__class__, self).image_reference(image_id)


def train(model, config, dataset_dir):
    """Train the model."""
    dataset_train = BalloonDataset()
    dataset_train.load_balloon(dataset_dir, "train")
    dataset_train.prepare()
    dataset_val = BalloonDataset()
    dataset_val.load_balloon(dataset_dir, "val")
    dataset_val.prepare()
    print("Training network heads")
    model.train(dataset_train, dataset_val,
                learning_rate=config.LEARNING_RATE,
                epochs=1,
                layers='heads')
    print("Fine tune all layers")
    model.train(dataset_train, dataset_val,
                learning_rate=config.LEARNING_RATE / 10,
                epochs=2,
                layers='all')
    return dataset_val


def get_ax(rows=1, cols=1, size=4):
    _, ax = plt.subplots(rows, cols, figsize=(size * cols, size * rows))
    return ax


def inspect(dataset_val, logs, report_path):
    """What the inspect_balloon_model notebook does, writing what it saw to report_path."""
    class InferenceConfig(BalloonConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
    config = InferenceConfig()
    model = modellib.MaskRCNN(mode="inference", model_dir=logs, config=config)
    weights_path = model.find_last()
    print("Loading weights ", weights_path)
    model.load_weights(weights_path, by_name=True)

    image_id = dataset_val.image_ids[0]
    image, image_meta, gt_class_id, gt_bbox, gt_mask =\
        modellib.load_image_gt(dataset_val, config, image_id, use_mini_mask=False)
    modellib.log("image", image)
    modellib.log("gt_mask", gt_mask)
    results = model.detect([image], verbose=1)
    r = results[0]
    ax = get_ax(1)
    returned = visualize.display_instances(image, r['rois'], r['masks'], r['class_ids'],
                                           dataset_val.class_names, r['scores'], ax=ax,
                                           title="Predictions")
    plt.savefig(os.path.join(logs, "predictions.png"))
    AP, precisions, recalls, overlaps = utils.compute_ap(gt_bbox, gt_class_id, gt_mask,
                                                         r['rois'], r['class_ids'], r['scores'],
                                                         r['masks'])
    # Stage by stage, as the notebook does it.
    mrcnn = model.run_graph([image], [
        ("proposals", model.keras_model.get_layer("ROI").output),
        ("probs", model.keras_model.get_layer("mrcnn_class").output),
        ("deltas", model.keras_model.get_layer("mrcnn_bbox").output),
        ("detections", model.keras_model.get_layer("mrcnn_detection").output),
    ])
    rpn = model.run_graph([image], [
        ("rpn_class", model.keras_model.get_layer("rpn_class").output),
        ("rpn_bbox", model.keras_model.get_layer("rpn_bbox").output),
    ])
    np.savez(report_path + ".npz", gt_bbox=gt_bbox, gt_class_id=gt_class_id, gt_mask=gt_mask,
             rois=r['rois'], class_ids=r['class_ids'], scores=r['scores'], masks=r['masks'])
    det_class_ids = mrcnn['detections'][0, :, 4].astype(np.int32)
    det_count = np.where(det_class_ids == 0)[0][0] if (det_class_ids == 0).any() else len(det_class_ids)
    json.dump({
        "weights_path": weights_path,
        "checkpoints": sorted(os.listdir(os.path.dirname(weights_path))),
        "epoch": model.epoch,
        "image_shape": list(image.shape), "image_meta": image_meta.tolist(),
        "gt_class_id": gt_class_id.tolist(), "gt_bbox": gt_bbox.tolist(),
        "gt_mask_shape": list(gt_mask.shape), "gt_mask_sum": int(gt_mask.sum()),
        "rois": r['rois'].tolist(), "class_ids": r['class_ids'].tolist(),
        "scores": r['scores'].tolist(), "masks_shape": list(r['masks'].shape),
        "masks_sum": int(r['masks'].sum()),
        "ap": float(AP), "precisions": list(map(float, precisions)),
        "returned_ax": returned is ax,
        "ax_patches": len(ax.patches),
        "run_graph": {k: list(v.shape) for k, v in {**mrcnn, **rpn}.items()},
        "run_graph_detections": mrcnn['detections'][0, :det_count].tolist(),
        "rpn_scores_sum": float(rpn['rpn_class'][0, :, 1].sum()),
    }, open(report_path, "w"))


############################################################
#  Training
############################################################

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description='Train Mask R-CNN to detect balloons.')
    parser.add_argument("command", metavar="<command>", help="'train'")
    parser.add_argument('--dataset', required=True, metavar="/path/to/balloon/dataset/")
    parser.add_argument('--logs', required=True, metavar="/path/to/logs/")
    parser.add_argument('--report', required=True, metavar="/path/to/report.json")
    args = parser.parse_args()

    config = BalloonConfig()
    config.display()
    model = modellib.MaskRCNN(mode="training", config=config, model_dir=args.logs)
    dataset_val = train(model, config, args.dataset)
    inspect(dataset_val, args.logs, args.report)
