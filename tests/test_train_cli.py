"""``python -m mrcnn.train`` end to end (subprocesses, tiny config), plus the training API edges.

Every CLI run here is a separate process, so each pays TensorFlow's import and tracing
(~20-40 s on a shared CPU); scenarios share runs where they can.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tiny_config import TinyConfig
from mrcnn.runs import RunDir
from mrcnn.train_events import NAN_HOOK_ENV, EventWriter
from mrcnn.train_setup import strategy_kind
from mrcnn.train_stop import StopFlag, watch_parent

TESTS_DIR = Path(__file__).parent
LOSS_KEYS = ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
             "mrcnn_mask_loss")


def _config_file(tmp_path):
    """TinyConfig as JSON *without* NUM_CLASSES (the CLI must take it from the dataset)."""
    values = json.loads(TinyConfig().to_json())
    values.pop("NUM_CLASSES")
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(values))
    return path


def _cli_args(tmp_path, run_dir, *extra, steps=2, epochs=2, val_steps=0):
    return ["--dataset", "shapes", "--shapes-train", "4", "--shapes-val", "2",
            "--shapes-size", "128", "--config", str(_config_file(tmp_path)),
            "--run-dir", str(run_dir), "--epochs", str(epochs), "--steps-per-epoch", str(steps),
            "--validation-steps", str(val_steps), "--layers", "heads", *extra]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env.pop(NAN_HOOK_ENV, None) if NAN_HOOK_ENV not in extra else None
    return env


def run_cli(args, env=None, timeout=900):
    """(exit code, list of stdout events, stderr); asserts every stdout line is a JSON object."""
    proc = subprocess.run([sys.executable, "-m", "mrcnn.train", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or _env())
    return proc.returncode, parse_events(proc.stdout), proc.stderr


def parse_events(stdout):
    events = []
    for line in stdout.splitlines():
        record = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(record, dict) and "event" in record, line
        events.append(record)
    return events


def of(events, kind):
    return [e for e in events if e["event"] == kind]


# ---------------------------------------------------------------------------------------------
# a 2-epoch run, then resumed to 3
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("train")
    run_dir = tmp_path / "run"
    code, events, stderr = run_cli(_cli_args(tmp_path, run_dir, val_steps=1))
    assert code == 0, stderr[-3000:]
    return tmp_path, run_dir, events, stderr


def test_stdout_is_json_events_in_order(two_epoch_run):
    _, run_dir, events, stderr = two_epoch_run
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "step", "step", "epoch", "checkpoint",
                     "step", "step", "epoch", "checkpoint", "end"]
    start = events[0]
    assert start["run_dir"] == str(run_dir) and start["initial_epoch"] == 0
    assert start["class_names"] == ["BG", "square", "circle", "triangle"]
    steps = of(events, "step")
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert [s["epoch"] for s in steps] == [1, 1, 2, 2]
    for step in steps:
        for key in LOSS_KEYS + ("lr", "images_per_s", "eta_s"):
            assert np.isfinite(step[key]), (key, step)
        assert step["lr"] == pytest.approx(TinyConfig.LEARNING_RATE)
        # The step's total is its five losses (weights 1) plus weight decay.
        parts = sum(step[k] for k in LOSS_KEYS[1:]) + step["weight_decay"]
        assert step["loss"] == pytest.approx(parts, rel=1e-3, abs=1e-3)
    assert steps[-1]["eta_s"] == 0
    for epoch in of(events, "epoch"):
        for key in LOSS_KEYS:
            assert np.isfinite(epoch[key]) and np.isfinite(epoch["val_" + key])
    # Epoch means are the means of their steps.
    assert of(events, "epoch")[0]["loss"] == pytest.approx(
        (steps[0]["loss"] + steps[1]["loss"]) / 2, rel=1e-3)
    assert events[-1] == {"event": "end", "status": "finished", "reason": "reached epoch 2"}
    # The decisions taken for the user are explained on stderr.
    assert "NUM_CLASSES set to 4 from the dataset" in stderr
    assert "distribution strategy" in stderr


def test_run_dir_contents(two_epoch_run):
    _, run_dir, events, _ = two_epoch_run
    run = RunDir(run_dir)
    assert json.loads(run.config_path.read_text())["NUM_CLASSES"] == 4
    record = run.read_run()
    assert record["status"] == "finished" and record["class_names"][1:] == \
        ["square", "circle", "triangle"]
    assert record["dataset"]["train_images"] == 4 and record["dataset"]["val_images"] == 2
    assert record["strategy"]["replicas"] == 1 and "--epochs" in record["argv"]
    metrics = run.read_metrics()
    assert [m["event"] for m in metrics].count("step") == 4
    assert [m["epoch"] for m in run.read_metrics("epoch")] == [1, 2]
    assert "val_mrcnn_mask_loss" in run.read_metrics("epoch")[0]
    for split in ("train", "val"):
        assert list((run.tb_path / split).glob("events.out.tfevents.*")), split
    files = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert files == ["epoch_0001.h5", "epoch_0001.optimizer.npz", "epoch_0002.h5",
                     "epoch_0002.optimizer.npz", "index.json"]  # no temp files left
    entries = run.checkpoints()
    assert [(e["epoch"], e["step"], e["partial"]) for e in entries] == \
        [(1, 2, False), (2, 4, False)]
    assert [c["path"] for c in of(events, "checkpoint")] == [e["path"] for e in entries]


def test_resume_continues_at_epoch_3(two_epoch_run):
    tmp_path, run_dir, _, _ = two_epoch_run
    code, events, stderr = run_cli(["--run-dir", str(run_dir), "--resume", "--epochs", "3",
                                    "--validation-steps", "0"])
    assert code == 0, stderr[-3000:]
    # The optimizer's state was saved beside the epoch-2 checkpoint and continued from.
    assert (run_dir / "checkpoints" / "epoch_0002.optimizer.npz").is_file()
    assert "optimizer state restored from" in stderr and "epoch_0002.optimizer.npz" in stderr
    start = events[0]
    assert start["initial_epoch"] == 2
    assert start["resumed_from"].endswith("epoch_0002.h5")
    assert [s["step"] for s in of(events, "step")] == [5, 6]
    assert [s["epoch"] for s in of(events, "step")] == [3, 3]
    assert [c["epoch"] for c in of(events, "checkpoint")] == [3]
    run = RunDir(run_dir)
    assert run.last_checkpoint()["file"] == "epoch_0003.h5"
    assert run.read_run()["status"] == "finished"
    # A run that already reached --epochs has nothing left to do.
    code, events, _ = run_cli(["--run-dir", str(run_dir), "--resume", "--epochs", "3"])
    assert code == 0 and not of(events, "step")
    assert events[-1]["status"] == "finished"
    assert "already trained to epoch 3" in events[-1]["reason"]


# ---------------------------------------------------------------------------------------------
# stop file, SIGTERM, NaN, bad data
# ---------------------------------------------------------------------------------------------


def test_stop_file_writes_partial_checkpoint_and_exits_0(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "STOP").write_text("")  # requested before the first step ends
    code, events, stderr = run_cli(_cli_args(tmp_path, run_dir, steps=5, epochs=1))
    assert code == 0, stderr[-3000:]
    assert [e["event"] for e in events] == ["start", "step", "checkpoint", "end"]
    checkpoint = of(events, "checkpoint")[0]
    assert checkpoint["partial"] and checkpoint["epoch"] == 1 and checkpoint["step"] == 1
    assert checkpoint["path"].endswith("epoch_0001_step_0001.h5")
    assert events[-1]["status"] == "stopped" and "STOP" in events[-1]["reason"]
    run = RunDir(run_dir)
    assert run.read_run()["status"] == "stopped"
    last = run.last_checkpoint()
    assert last["partial"] and last["file"] == "epoch_0001_step_0001.h5"


def test_sigterm_finishes_the_step_and_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mrcnn.train",
                             *_cli_args(tmp_path, run_dir, steps=50, epochs=1)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if json.loads(line)["event"] == "step":
                proc.send_signal(signal.SIGTERM)
                break
        rest, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = parse_events("".join(lines) + rest)
    assert proc.returncode == 0, stderr[-3000:]
    assert events[-1]["status"] == "stopped" and "SIGTERM" in events[-1]["reason"]
    checkpoint = of(events, "checkpoint")[-1]
    assert checkpoint["partial"] and checkpoint["step"] == of(events, "step")[-1]["step"]
    assert Path(checkpoint["path"]).is_file()
    assert RunDir(run_dir).read_run()["status"] == "stopped"


# The viewer's child: a parent that exits without stopping it (crash, kill -9) and takes the
# read end of stdout with it. This intermediate starts the run, prints its pid, and exits.
ORPHAN_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "mrcnn.train", *sys.argv[1:],
                          "--stop-with-parent", str(os.getpid())],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
"""


@pytest.mark.slow
def test_a_run_whose_parent_dies_checkpoints_and_stops(tmp_path):
    run_dir = tmp_path / "run"
    launcher = subprocess.run([sys.executable, "-c", ORPHAN_LAUNCHER,
                               *_cli_args(tmp_path, run_dir, steps=100000, epochs=1)],
                              capture_output=True, text=True, timeout=60, env=_env())
    child = int(launcher.stdout.strip())
    deadline = time.monotonic() + 300
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        assert not _alive(child), "the orphaned run kept training"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
    run = RunDir(run_dir)
    record = run.read_run()
    assert record["status"] == "stopped", record
    assert "parent process" in record["reason"] and "exited" in record["reason"]
    last = run.last_checkpoint()
    assert last["partial"] and last["epoch"] == 1 and Path(last["path"]).is_file()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie of ours counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class _GonePipe:
    def __init__(self):
        self.writes = 0

    def write(self, text):
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass


def test_events_to_a_gone_reader_are_dropped_not_raised(caplog):
    stream = _GonePipe()
    events = EventWriter(stream)
    with caplog.at_level("WARNING", logger="mrcnn.train"):
        assert events.emit("step", step=1) == {"event": "step", "step": 1}
        assert events.emit("step", step=2)["step"] == 2
    assert stream.writes == 1  # stops writing after the first failure
    assert caplog.text.count("stdout is gone") == 1


def test_parent_watch_requests_a_stop_once_the_parent_is_gone():
    parents = iter([100, 100, 100, 1])
    current = {"pid": 100}

    def getppid():
        current["pid"] = next(parents, 1)
        return current["pid"]

    flag = StopFlag()
    thread = watch_parent(flag, interval_s=0.01, getppid=getppid)
    thread.join(timeout=5)
    assert not thread.is_alive() and flag.reason == "parent process 100 exited"


def test_parent_watch_of_a_named_parent_already_gone_stops_at_once():
    flag = StopFlag()
    watch_parent(flag, parent=4242, interval_s=0.01, getppid=lambda: 1).join(timeout=5)
    assert flag.reason == "parent process 4242 exited"
    # A stop already asked for keeps its reason.
    flag.request("another reason")
    assert flag.reason == "parent process 4242 exited"


def test_nan_loss_fails_and_keeps_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    code, events, stderr = run_cli(_cli_args(tmp_path, run_dir, steps=1, epochs=3),
                                   env=_env(**{NAN_HOOK_ENV: "2"}))
    assert code == 1, stderr[-3000:]
    error = of(events, "error")[0]["message"]
    assert error.startswith("loss became NaN at step 2 (epoch 2)")
    assert "epoch_0001.h5" in error  # says which checkpoint is still good
    assert events[-1]["event"] == "end" and events[-1]["status"] == "failed"
    run = RunDir(run_dir)
    assert run.read_run()["status"] == "failed"
    assert [c["file"] for c in run.checkpoints()] == ["epoch_0001.h5"]
    assert sorted(p.name for p in run.checkpoint_dir.glob("*.h5")) == ["epoch_0001.h5"]


def test_bad_dataset_path_is_an_error_event(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    missing = tmp_path / "nowhere" / "train.json"
    code, events, _ = run_cli(["--train-json", str(missing), "--train-images", str(images),
                               "--run-dir", str(tmp_path / "run")], timeout=120)
    assert code != 0
    assert str(missing) in of(events, "error")[0]["message"]
    code, events, _ = run_cli(["--train-json", str(missing), "--train-images",
                               str(tmp_path / "no_images")], timeout=120)
    assert code != 0 and "no_images" in of(events, "error")[0]["message"]


def test_usage_errors_exit_2_with_an_event(tmp_path):
    code, events, _ = run_cli(["--epochs", "0"], timeout=120)
    assert code == 2 and "--epochs" in of(events, "error")[0]["message"]
    code, events, _ = run_cli(["--resume"], timeout=120)
    assert code == 2 and "--run-dir" in of(events, "error")[0]["message"]


# ---------------------------------------------------------------------------------------------
# tf.distribute
# ---------------------------------------------------------------------------------------------


def test_strategy_kind():
    two_workers = json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                              "task": {"type": "worker", "index": 0}})
    one_worker = json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}})
    assert strategy_kind(two_workers, gpu_count=0) == "multi_worker"
    assert strategy_kind(one_worker, gpu_count=2) == "mirrored"
    assert strategy_kind(None, gpu_count=4) == "mirrored"
    assert strategy_kind("", gpu_count=1) == "default"
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy_kind("not json", gpu_count=0)


MIRRORED_SCRIPT = r'''
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
# ROI sampling shuffles before truncating; an identity shuffle makes the sampled subset (and so
# the loss) the same in both runs. Nothing else in a training step is random.
tf.random.shuffle = lambda value, seed=None, name=None: value
import keras
import numpy as np
sys.path.insert(0, sys.argv[2])
from tiny_config import TinyConfig
from mrcnn.data.pipeline import build_training_inputs, image_rng
from mrcnn.data.shapes import ShapesDataset
from mrcnn.model import MaskRCNN
from mrcnn.trainer import make_optimizer, set_trainable

class Config(TinyConfig):
    IMAGES_PER_GPU = 2
    GRADIENT_CLIP_NORM = float(sys.argv[1])
config = Config()
dataset = ShapesDataset()
dataset.load_shapes(1, 128, 128, seed=3)
dataset.prepare()
example = build_training_inputs(dataset, config, 0, rng=image_rng(0, 0, 0))
# The same image twice: per-replica means then equal the single-device batch mean.
batch = {k: np.stack([v, v]) for k, v in example.items()}
# As mrcnn.train feeds them: Keras' distributed fit cannot take bool tensors (no bool AddN).
batch["input_gt_masks"] = batch["input_gt_masks"].astype(np.uint8)

def train(strategy, weights):
    model = MaskRCNN("training", config, strategy=strategy)
    if weights is not None:
        model.keras_model.set_weights(weights)
    start = model.keras_model.get_weights()
    with model.strategy.scope():
        set_trainable(model.keras_model, "all", config.TRAIN_BN)
        model.trainer.compile(optimizer=make_optimizer(config, float(sys.argv[3])))
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: losses.append(float(logs["loss"])))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.trainer.fit(data, epochs=2, steps_per_epoch=1, verbose=0, callbacks=[record])
    return start, losses, model.keras_model.get_weights(), model.strategy.num_replicas_in_sync

keras.utils.set_random_seed(1)
start, reference, reference_after, _ = train(None, None)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
_, losses, after, replicas = train(mirrored, start)
print(json.dumps({
    "replicas": replicas, "reference": reference, "mirrored": losses,
    "max_update_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(reference_after, after)),
    "max_update": max(float(np.max(np.abs(a - b))) for a, b in zip(reference_after, start))}))
'''


def test_mirrored_strategy_matches_single_device(tmp_path):
    """One step on 2 logical CPUs gives the loss of one device; the update matches too.

    Clipping is active (GRADIENT_CLIP_NORM 5 binds on the untrained model's first gradients):
    Keras 3 clips each replica's share before the cross-replica sum, so without
    MaskRCNNTrainer's own sum-then-clip the mirrored update was up to 2x larger (step-2 loss
    15.54 vs 6.25 measured before the fix).
    """
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), "5.0", str(TESTS_DIR), "1e-2"],
                          capture_output=True, text=True, timeout=900, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # Step 1: same weights, same batch -> same (unscaled, replica-mean) loss.
    np.testing.assert_allclose(result["mirrored"][0], result["reference"][0], rtol=1e-4)
    # Step 2 sees the first update: the summed per-replica gradients equal the batch gradient.
    np.testing.assert_allclose(result["mirrored"][1], result["reference"][1], rtol=1e-3)
    # Two updates (from the same start) agree: the summed replica gradients are the batch's.
    assert 0.0 < result["max_update"] < 1.0
    assert result["max_update_diff"] <= 1e-3 * result["max_update"]


# ---------------------------------------------------------------------------------------------
# training API edges (in-process)
# ---------------------------------------------------------------------------------------------


def _batch(dataset, config, image_ids):
    from mrcnn.data.pipeline import build_training_inputs, image_rng

    examples = [build_training_inputs(dataset, config, i, rng=image_rng(0, 0, i))
                for i in image_ids]
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def test_zero_gt_image_losses(tiny_config):
    """No instances: finite losses, no box / mask loss at all, and finite gradients."""
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.model import MaskRCNN
    from mrcnn.trainer import make_optimizer, set_trainable

    class EmptyShapes(ShapesDataset):
        def load_mask(self, image_id):
            return np.zeros([128, 128, 0], bool), np.zeros([0], np.int32)

    dataset = EmptyShapes()
    dataset.load_shapes(1, 128, 128, seed=5)
    dataset.prepare()
    batch = _batch(dataset, tiny_config, [0])
    assert not batch["input_gt_class_ids"].any()
    model = MaskRCNN("training", tiny_config)
    set_trainable(model.keras_model, "all", tiny_config.TRAIN_BN)
    model.trainer.compile(optimizer=make_optimizer(tiny_config, 0.01))
    before = model.keras_model.get_weights()
    logs = model.trainer.train_on_batch(batch, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["rpn_bbox_loss"] == 0.0
    assert logs["mrcnn_bbox_loss"] == 0.0 and logs["mrcnn_mask_loss"] == 0.0
    assert logs["rpn_class_loss"] > 0.0  # negatives still teach the RPN "background"
    after = model.keras_model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_overfit_three_images(tiny_config):
    """A small model drives the total loss on 3 fixed shapes images down by >= 80%."""
    import keras

    from mrcnn.config import Config
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.model import MaskRCNN
    from mrcnn.trainer import make_optimizer, set_trainable

    keras.utils.set_random_seed(0)
    config = Config.from_dict({**json.loads(tiny_config.to_json()), "IMAGES_PER_GPU": 3})
    dataset = ShapesDataset()
    dataset.load_shapes(3, 128, 128, seed=11)
    dataset.prepare()
    batch = _batch(dataset, config, [0, 1, 2])
    model = MaskRCNN("training", config)
    set_trainable(model.keras_model, "all", config.TRAIN_BN)
    model.trainer.compile(optimizer=make_optimizer(config, 0.01))
    losses = []
    for _ in range(80):
        model.trainer.reset_metrics()
        losses.append(float(model.trainer.train_on_batch(batch, return_dict=True)["loss"]))
        if losses[-1] <= 0.2 * losses[0] and len(losses) >= 10:
            break
    assert np.all(np.isfinite(losses))
    assert min(losses[-5:]) <= 0.2 * losses[0], losses
