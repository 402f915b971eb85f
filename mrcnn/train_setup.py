"""What one ``mrcnn train`` run needs before fit: strategy, datasets, config, weights, inputs.

Everything here takes the parsed arguments (``mrcnn.train.add_arguments``) and is TensorFlow-free
at import: TensorFlow loads only inside the functions that need it, so bad data paths fail before
it starts.
"""

from __future__ import annotations

import json
import logging
import os

from mrcnn.model_files import default_config_values, weights_class_count
from mrcnn.runs import find_last_checkpoint, read_json

log = logging.getLogger("mrcnn.train")

# Seeds of the shapes validation images are offset so they never repeat training images.
SHAPES_VAL_SEED_OFFSET = 1_000_003
# Each (re)start gets its own data order: a resumed run must not replay epoch 1's.
RESTART_SEED_STRIDE = 7919


# ---- strategy -----------------------------------------------------------------------------------

def strategy_kind(tf_config_text, gpu_count) -> str:
    """'multi_worker' (TF_CONFIG names several workers), 'mirrored' (several GPUs) or 'default'."""
    if tf_config_text:
        try:
            cluster = json.loads(tf_config_text).get("cluster", {})
        except (json.JSONDecodeError, AttributeError):
            raise ValueError(f"TF_CONFIG is not a JSON object: {tf_config_text[:200]!r}") from None
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers > 1:
            return "multi_worker"
    return "mirrored" if gpu_count > 1 else "default"


def choose_strategy():
    """(tf.distribute strategy, description dict) for this machine / cluster; logged on stderr."""
    import tensorflow as tf

    kind = strategy_kind(os.environ.get("TF_CONFIG"), len(tf.config.list_physical_devices("GPU")))
    if kind == "multi_worker":
        from mrcnn.multiworker import make_multi_worker_strategy

        strategy = make_multi_worker_strategy()  # bounded detection of a dead worker
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    info = {"kind": kind, "name": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync), "chief": _is_chief(kind)}
    log.info("distribution strategy: %s with %d replica(s)", info["name"], info["replicas"])
    return strategy, info


def _is_chief(kind) -> bool:
    """Only the chief worker writes the run directory in multi-worker training."""
    if kind != "multi_worker":
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    if task.get("type") == "chief":
        return True
    is_first_worker = task.get("type") == "worker" and int(task.get("index", 0)) == 0
    return is_first_worker and "chief" not in cluster


def task_index() -> int:
    """This worker's index in TF_CONFIG (0 without one)."""
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


# ---- datasets, config, initial weights ----------------------------------------------------------

def load_datasets(args):
    """(train dataset, val dataset or None, summary dict) from the data arguments."""
    if args.dataset == "shapes":
        from mrcnn.data.shapes import ShapesDataset

        def shapes(count, seed):
            dataset = ShapesDataset()
            dataset.load_shapes(count, args.shapes_size, args.shapes_size, seed=seed)
            dataset.prepare()
            return dataset

        train = shapes(args.shapes_train, args.seed)
        val = None
        if args.shapes_val:
            val = shapes(args.shapes_val, args.seed + SHAPES_VAL_SEED_OFFSET)
        summary = {"kind": "shapes", "size": args.shapes_size}
    else:
        train = _coco(args.train_json, args.train_images, args.skip_bad)
        val = _coco(args.val_json, args.val_images, args.skip_bad) if args.val_json else None
        summary = {"kind": "coco", "train_json": args.train_json, "val_json": args.val_json}
    summary.update(train_images=len(train.image_ids),
                   val_images=len(val.image_ids) if val is not None else 0)
    return train, val, summary


def _coco(json_path, image_dir, skip_bad=False):
    """Every image and annotation checked first (mrcnn.checks.dataset): all problems at once."""
    from mrcnn.checks.dataset import load_checked_coco

    return load_checked_coco(json_path, image_dir, skip_bad)


def build_config(args, train_dataset, replicas, saved_config=None):
    """Config from --config (or the run's config.json on resume) + dataset + command line."""
    from mrcnn.config import Config

    if saved_config is not None:
        values = read_json(saved_config, "config file")
    elif args.config:
        values = read_json(args.config, "config file")
        if not isinstance(values, dict):
            raise ValueError(f"config file {args.config}: expected a JSON object of fields")
    else:
        values = default_config_values(args.dataset, args.shapes_size)
        log.info("no --config: using %s defaults %s", values["NAME"], values)
    num_classes = int(train_dataset.num_classes)
    if "NUM_CLASSES" not in values:
        values["NUM_CLASSES"] = num_classes
        log.info("config: NUM_CLASSES set to %d from the dataset (%s)", num_classes,
                 ", ".join(train_dataset.class_names))
    elif int(values["NUM_CLASSES"]) < num_classes:
        raise ValueError(f"config NUM_CLASSES is {values['NUM_CLASSES']} but the dataset has "
                         f"{num_classes} classes (background included)")
    overrides = {"LEARNING_RATE": args.learning_rate, "STEPS_PER_EPOCH": args.steps_per_epoch,
                 "VALIDATION_STEPS": args.validation_steps}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if replicas > 1:
        log.info("config: GPU_COUNT set to %d (one per replica)", replicas)
    values["GPU_COUNT"] = replicas
    return Config.from_dict(values).validate()


def load_initial_weights(model, args, run_dir):
    """Apply --init / --exclude; returns a description for run.json (None for --init none)."""
    if args.init == "none":
        return None
    path = args.init
    if path == "last":
        path = find_last_checkpoint(run_dir.path.parent, exclude_dir=run_dir.path)
        if path is None:
            raise FileNotFoundError(f"--init last: no run under {run_dir.path.parent} has a "
                                    f"good checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--init: weights file {path} does not exist")
    exclude = args.exclude
    if exclude is None:
        exclude = []
        count = weights_class_count(path)
        if count is not None and count != model.config.NUM_CLASSES:
            from mrcnn.weights import CLASS_COUNT_LAYERS

            exclude = list(CLASS_COUNT_LAYERS)
            log.info("--init %s has %d classes, the model %d: not loading %s", path, count,
                     model.config.NUM_CLASSES, ", ".join(exclude))
    report = model.load_weights(path, exclude=exclude)
    from mrcnn.checks.weights import check_loaded_weights

    check_loaded_weights(model.keras_model, report, min_fraction=0.0)  # nothing loaded: refused
    model.epoch = 0  # a new run (load_weights continues a matterport checkpoint's epoch count)
    return {"path": str(path), "exclude": exclude, "loaded_layers": len(report.loaded)}


# ---- input pipelines ----------------------------------------------------------------------------

def input_pipelines(args, config, train_data, val_data, augmentation, replicas, initial_epoch,
                    resumed_batches=0):
    """(training tf.data, validation tf.data or None, precise-BN batches or None).

    ``resumed_batches``: steps of the epoch in progress a partial checkpoint had done; the
    rest of that epoch gets another data order than the one its first steps saw.
    """
    from mrcnn.data.pipeline import make_dataset

    seed = args.seed + RESTART_SEED_STRIDE * initial_epoch + int(resumed_batches)
    train_tf = make_dataset(train_data, config, shuffle=True, augmentation=augmentation, seed=seed)
    train_tf = train_tf.map(masks_as_uint8)
    val_tf = None
    if val_data is not None and config.VALIDATION_STEPS:
        val_tf = make_dataset(val_data, config, shuffle=False, seed=args.seed).map(masks_as_uint8)
    precise_bn = None
    if args.precise_bn > 0 and config.TRAIN_BN:
        if replicas > 1:
            log.warning("--precise-bn is ignored with %d replicas", replicas)
        else:
            precise_bn = make_dataset(train_data, config, shuffle=True, seed=seed + 1) \
                .map(masks_as_uint8).take(args.precise_bn)
    return train_tf, val_tf, precise_bn


def masks_as_uint8(batch):
    """Bool GT masks as uint8: Keras' fit under tf.distribute sums input tensors (AddN), which
    has no bool kernel. The training graph casts masks to float32 either way."""
    import tensorflow as tf

    return dict(batch, input_gt_masks=tf.cast(batch["input_gt_masks"], tf.uint8))


