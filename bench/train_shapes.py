"""Train a small Mask R-CNN on synthetic shapes from scratch on the CPU, then report mAP@0.5.

    python bench/train_shapes.py [--config C.json] [--heads-epochs 1] [--all-epochs 13]
                                 [--steps-per-epoch 50] [--save DIR]

Two stages as in matterport's shapes sample (heads, then all layers), but from random weights:
there is no pretrained backbone, so BatchNorm trains (TRAIN_BN) and the heads stage is short.
mAP@0.5 is the mean per-image VOC AP (mask IoU, ``mrcnn.evaluate.compute_ap``) on held-out
images (a different seed from the training images). Progress goes to stderr; the last stdout
line is one JSON object with the numbers. ``--save DIR`` writes ``DIR/mask_rcnn_shapes.h5`` and
``DIR/config.json`` (the demo model reuses them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Small enough to train on a CPU in minutes, big enough to reach mAP@0.5 >= 0.9 on shapes.
BENCH_CONFIG = {
    "NAME": "shapes", "BACKBONE": "resnet18", "NUM_CLASSES": 4, "IMAGES_PER_GPU": 2,
    "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128, "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
    "PRE_NMS_LIMIT": 1000, "POST_NMS_ROIS_TRAINING": 200, "POST_NMS_ROIS_INFERENCE": 100,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 64, "TRAIN_ROIS_PER_IMAGE": 32, "TOP_DOWN_PYRAMID_SIZE": 64,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 256, "BACKBONE_WIDTH": 0.5, "RPN_CONV_CHANNELS": 64,
    "MASK_HEAD_CHANNELS": 64, "MAX_GT_INSTANCES": 10, "DETECTION_MAX_INSTANCES": 20,
    "DETECTION_MIN_CONFIDENCE": 0.7, "MINI_MASK_SHAPE": [28, 28], "TRAIN_BN": True,
    "LEARNING_RATE": 0.01, "VALIDATION_STEPS": 5,
}
TRAIN_SEED, EVAL_SEED = 0, 20_000_003


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="JSON of Config fields overriding BENCH_CONFIG")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--eval-images", type=int, default=50)
    parser.add_argument("--heads-epochs", type=int, default=1)
    parser.add_argument("--all-epochs", type=int, default=13, help="epochs of the 'all' stage")
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--augment", default="hflip", help="training augmentation (CLI form)")
    parser.add_argument("--save", help="directory for the final weights + config.json")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def shapes(count, seed):
    from mrcnn.data.shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(count, 128, 128, seed=seed)
    dataset.prepare()
    return dataset


def build_config(args):
    from mrcnn.config import Config

    values = dict(BENCH_CONFIG, STEPS_PER_EPOCH=args.steps_per_epoch)
    if args.config:
        with open(args.config) as f:
            values.update(json.load(f))
    if args.learning_rate:
        values["LEARNING_RATE"] = args.learning_rate
    return Config.from_dict(values).validate()


def log_epochs():
    import keras

    start = time.perf_counter()

    def report(epoch, logs):
        losses = " ".join(f"{k}={v:.3f}" for k, v in sorted(logs.items()))
        print(f"[{time.perf_counter() - start:7.1f}s] epoch {epoch + 1}: {losses}",
              file=sys.stderr, flush=True)

    return keras.callbacks.LambdaCallback(on_epoch_end=report)


def main(argv=None):
    args = parse_args(argv)
    wall_start = time.perf_counter()
    import keras

    from mrcnn.data.augment import parse_augmentation
    from mrcnn.evaluate_cli import evaluate_model
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(args.seed)
    config = build_config(args)
    train, val = shapes(args.train_images, TRAIN_SEED + args.seed), shapes(20, 10_000_019)
    model = MaskRCNN("training", config)
    augmentation = parse_augmentation(args.augment)
    callbacks = [log_epochs()]
    train_start = time.perf_counter()
    lr = config.LEARNING_RATE
    model.train(train, val, lr, args.heads_epochs, "heads", augmentation, callbacks, seed=args.seed)
    history = model.train(train, val, lr, args.heads_epochs + args.all_epochs, "all",
                          augmentation, callbacks, seed=args.seed + 1)
    train_s = time.perf_counter() - train_start

    weights_dir = args.save or os.path.join("/tmp", f"train_shapes_{os.getpid()}")
    os.makedirs(weights_dir, exist_ok=True)
    weights_path = os.path.join(weights_dir, "mask_rcnn_shapes.h5")
    model.save_weights(weights_path)
    config.to_json(os.path.join(weights_dir, "config.json"))

    eval_start = time.perf_counter()
    inference = MaskRCNN("inference", config)
    inference.load_weights(weights_path)
    held_out = shapes(args.eval_images, EVAL_SEED + args.seed)
    result = evaluate_model(inference, held_out)
    steps = (args.heads_epochs + args.all_epochs) * args.steps_per_epoch
    print(json.dumps({
        "bench": "train_shapes", "mAP50": round(result["mAP50"], 4),
        "eval_images": result["images"], "wall_s": round(time.perf_counter() - wall_start, 1),
        "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - eval_start, 1),
        "steps": steps, "batch_size": int(config.BATCH_SIZE),
        "final_loss": round(float(history.history["loss"][-1]), 4),
        "final_val_loss": round(float(history.history.get("val_loss", [float("nan")])[-1]), 4),
        "weights": weights_path if args.save else None, "target_mAP50": 0.90,
    }), flush=True)


if __name__ == "__main__":
    main()
