"""Multi-worker training run for real: two ``mrcnn train`` processes on 127.0.0.1.

CPU-heavy (each worker pays TensorFlow's start-up and tracing): tiny config, 3 steps.

Equal losses: with one training image every slot of a batch holds the same image, so the two
workers' per-replica losses (each over its half of the global batch of 2) average to exactly
the single-process loss of the same batch, step after step: the updates agree as well. (With
different images they differ by design: matterport's losses are normalized by the positive
count of the batch each replica sees.) Stated tolerance: 1e-5 relative.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mrcnn.multiworker import (HEARTBEAT_TIMEOUT_S, SHUTDOWN_BARRIER_TIMEOUT_S, free_ports,
                               tf_configs)
from tiny_config import TinyConfig

pytestmark = pytest.mark.slow
LOSSES = ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
          "mrcnn_mask_loss")
# After a worker dies, the other must stop within this many seconds.
STOP_BOUND_S = HEARTBEAT_TIMEOUT_S + SHUTDOWN_BARRIER_TIMEOUT_S + 45


def _config(tmp_path, images_per_gpu):
    values = json.loads(TinyConfig().to_json())
    values.pop("NUM_CLASSES")
    values["IMAGES_PER_GPU"] = images_per_gpu
    path = tmp_path / f"tiny_{images_per_gpu}.json"
    path.write_text(json.dumps(values))
    return path


def _args(config, run_dir, steps=3, train_images=1):
    return ["--dataset", "shapes", "--shapes-train", str(train_images), "--shapes-val", "1",
            "--shapes-size", "128", "--config", str(config), "--run-dir", str(run_dir),
            "--epochs", "1", "--steps-per-epoch", str(steps), "--validation-steps", "0"]


def _start(args, tf_config=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config:
        env["TF_CONFIG"] = tf_config
    return subprocess.Popen([sys.executable, "-m", "mrcnn", "train", *args], stdout=stdout,
                            stderr=stderr, text=True, env=env)


def _events(text):
    return [json.loads(line) for line in text.splitlines()]


def test_two_workers_equal_one_process_and_only_the_chief_writes(tmp_path):
    run_dir = tmp_path / "run"
    configs = tf_configs(free_ports(2))
    workers = [_start(_args(_config(tmp_path, 1), run_dir), c) for c in configs]
    outputs = [w.communicate(timeout=900) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    chief, other = (_events(out) for out, _ in outputs)
    assert chief[0]["replicas"] == 2 and chief[0]["batch_size"] == 2
    assert chief[0]["run_dir"] == str(run_dir)
    other_dir = Path(other[0]["run_dir"])
    assert run_dir not in other_dir.parents and other_dir != run_dir
    # Only the chief wrote the run directory, and only it checkpointed.
    written = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()
                     and "tb" not in p.relative_to(run_dir).parts)
    assert written == ["checkpoints/epoch_0001.h5", "checkpoints/epoch_0001.optimizer.npz",
                       "checkpoints/index.json", "config.json", "metrics.jsonl", "run.json"]
    assert [e for e in other if e["event"] == "checkpoint"] == []
    assert not list(other_dir.rglob("*.h5"))
    shutil.rmtree(other_dir)

    single = _start(_args(_config(tmp_path, 2), tmp_path / "single"))
    out, err = single.communicate(timeout=900)
    assert single.returncode == 0, err[-3000:]
    reference = [e for e in _events(out) if e["event"] == "step"]
    steps = [e for e in chief if e["event"] == "step"]
    assert len(steps) == len(reference) == 3
    # Two replicas sum their gradients in another order than one process does: after two
    # updates the losses differ in the fifth digit (1.6e-5 relative seen), far below what a
    # wrong reduction (a sum instead of a mean: twice the step) would give; the losses move
    # 15-25% per step here.
    for got, want in zip(steps, reference):
        for name in LOSSES:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6,
                                       err_msg=f"step {want['step']} {name}")
    assert steps[0]["loss"] != steps[2]["loss"]  # it trained: the losses moved


def test_killing_a_worker_stops_the_other_with_a_clear_error(tmp_path):
    config = _config(tmp_path, 1)
    configs = tf_configs(free_ports(2))
    # stderr to files: a pipe nobody reads could fill up and block the process.
    chief_log = open(tmp_path / "chief.log", "w")
    chief = _start(_args(config, tmp_path / "run", steps=2000, train_images=2), configs[0],
                   stderr=chief_log)
    worker = _start(_args(config, tmp_path / "run", steps=2000, train_images=2), configs[1],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lines = []
        while len([line for line in lines if '"step"' in line]) < 2:  # training is under way
            line = chief.stdout.readline()
            assert line, "the chief ended before training: " + \
                (tmp_path / "chief.log").read_text()[-3000:]
            lines.append(line)
        worker.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, _ = chief.communicate(timeout=STOP_BOUND_S + 60)
        elapsed = time.monotonic() - killed
    finally:
        for process in (chief, worker):
            if process.poll() is None:
                process.kill()
        chief_log.close()
    assert chief.returncode == 1
    assert elapsed < STOP_BOUND_S, f"took {elapsed:.0f} s"
    events = _events("".join(lines) + out)
    error = [e for e in events if e["event"] == "error"][-1]["message"]
    assert error.startswith("WorkerLost: a worker of the multi-worker run stopped responding")
    assert events[-1]["event"] == "end" and events[-1]["status"] == "failed"
