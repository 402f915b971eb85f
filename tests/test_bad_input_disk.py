"""Disk full and kills: every writer names the file and the space it needed, leaves no temp
file, keeps the old contents; a training run that fills its disk is marked failed with its last
good checkpoint kept; SIGKILL at random times and inside checkpoint writes never costs more
than the epoch in progress.

"Disk full" is a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG
instead of killing the process) set in a subprocess: no root or tmpfs needed.
"""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from bad_input_files import TRACEBACK

from mrcnn.runs import RunDir

pytestmark = pytest.mark.timeout(300)
TESTS_DIR = Path(__file__).parent


def _limit_file_size(limit_bytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return apply


def run_limited(code, limit_bytes, cwd):
    """Run python ``code`` with a file size limit; (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR.parent), str(TESTS_DIR)]),
               TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240, preexec_fn=_limit_file_size(limit_bytes))
    return done.returncode, done.stdout, done.stderr


# Each snippet writes a file bigger than the limit where an older, small version exists, then
# prints the DiskFullError's message. {path} is the target.
WRITERS = {
    "run.json": """
from mrcnn.runs import write_json_atomic
write_json_atomic(path, {{"status": "old"}})
write_json_atomic(path, {{"big": "x" * 300000}})
""",
    "trace.npz": """
import numpy as np
from mrcnn.trace_data import Trace
rng = np.random.default_rng(0)
Trace(stages={{"input": {{"image": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)}}}}).save(path)
Trace(stages={{"input": {{"image": rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)}}}}).save(path)
""",
    "weights.h5": """
import keras
from mrcnn.weights import save_weights
small = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
save_weights(small, path)
big = keras.Sequential([keras.Input((300,)), keras.layers.Dense(300, name="d")])
save_weights(big, path)
""",
    "epoch_0001.optimizer.npz": """
import keras, numpy as np
from mrcnn.optimizer_state import save_optimizer_state
for size in (4, 100000):
    variable = keras.Variable(np.zeros(size, np.float32))
    optimizer = keras.optimizers.SGD(momentum=0.9)
    optimizer.build([variable])
    save_optimizer_state(optimizer, [variable], path)
""",
}
SNIPPET = """
import json, sys
from mrcnn.atomic import DiskFullError
results = {{}}
{cases}
print(json.dumps(results))
"""
CASE = """
path = {path!r}
try:
{body}
    results[{name!r}] = "no error"
except DiskFullError as error:
    results[{name!r}] = str(error)
"""
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def limited_writes(tmp_path_factory):
    """Every writer of WRITERS run once under a 64 KiB file size limit, in one subprocess (one
    interpreter start): ({name: DiskFullError message}, {name: its folder})."""
    root = tmp_path_factory.mktemp("limited")
    folders, cases = {}, []
    for name, code in WRITERS.items():
        folders[name] = root / name.replace(".", "_")
        folders[name].mkdir()
        body = "\n".join("    " + line for line in code.format().strip().splitlines())
        cases.append(CASE.format(path=str(folders[name] / name), body=body, name=name))
    code, out, err = run_limited(SNIPPET.format(cases="".join(cases)), LIMIT, root)
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), folders


@pytest.mark.parametrize("name", list(WRITERS))
def test_writer_over_the_size_limit(limited_writes, name):
    messages, folders = limited_writes
    target = folders[name] / name
    message = messages[name]
    assert f"could not write {target}" in message and "it needs" in message
    needed = message.split("it needs ")[1].split(",")[0]
    assert needed.endswith(("KiB", "MiB")) and float(needed.split()[0]) > 64, message
    assert "File too large" in message
    assert [p.name for p in folders[name].iterdir()] == [name]  # no .tmp; the old file kept
    assert target.stat().st_size < LIMIT


def test_disk_full_message_names_space(tmp_path):
    from mrcnn.atomic import DiskFullError

    error = DiskFullError(tmp_path / "x.h5", needed=3 * 1024 * 1024, free=1024,
                          cause="No space left on device")
    assert str(error) == (f"could not write {tmp_path / 'x.h5'}: it needs 3.0 MiB, 1.0 KiB free "
                          "there (No space left on device)")


# ---- training on a disk that fills up -----------------------------------------------------------

def _train_args(tmp_path, run_dir, epochs, steps=1):
    from tiny_config import tiny_config_values

    values = tiny_config_values()
    values.pop("NUM_CLASSES")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(values))
    return [sys.executable, "-m", "mrcnn.train", "--dataset", "shapes", "--shapes-train", "4",
            "--shapes-val", "0", "--shapes-size", "128", "--config", str(config),
            "--run-dir", str(run_dir), "--epochs", str(epochs), "--steps-per-epoch", str(steps),
            "--validation-steps", "0", "--layers", "heads"]


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("MRCNN_DEBUG", None)
    return env


@pytest.mark.slow
def test_training_that_fills_the_disk_fails_cleanly(tmp_path):
    """After epoch 1's checkpoint the run's file size limit drops (prlimit): epoch 2's
    checkpoint cannot be written."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_train_args(tmp_path, run_dir, epochs=3), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=_limit_file_size(resource.RLIM_INFINITY))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if json.loads(line)["event"] == "checkpoint":
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (200_000, 200_000))
                break
        rest, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(line) for line in "".join(lines + [rest]).splitlines()]
    assert proc.returncode == 1, stderr[-3000:]
    error = [e for e in events if e["event"] == "error"][0]["message"]
    assert "epoch_0002.h5" in error and "it needs" in error and "MiB" in error, error
    assert TRACEBACK not in stderr
    run = RunDir(run_dir)
    assert run.read_run()["status"] == "failed" and "epoch_0002.h5" in run.read_run()["reason"]
    assert [c["file"] for c in run.checkpoints()] == ["epoch_0001.h5"]
    left = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert left == ["epoch_0001.h5", "epoch_0001.optimizer.npz", "index.json"], left
    assert not list(run_dir.rglob("*.tmp"))


# ---- kill loop ----------------------------------------------------------------------------------

def _kill_when(proc, run_dir, inside_write, deadline_s, rng):
    """SIGKILL ``proc`` while a checkpoint temp file exists (``inside_write``), else at a random
    moment after its first step; returns what the kill met."""
    checkpoints = Path(run_dir) / "checkpoints"
    started = time.monotonic()
    random_at = None
    while proc.poll() is None and time.monotonic() - started < deadline_s:
        if inside_write and checkpoints.is_dir() and list(checkpoints.glob("*.tmp")):
            proc.kill()
            return "inside a checkpoint write"
        if not inside_write and random_at is None and (Path(run_dir) / "metrics.jsonl").is_file():
            random_at = time.monotonic() + rng.uniform(0.0, 3.0)
        if random_at is not None and time.monotonic() >= random_at:
            proc.kill()
            return "at a random time"
        time.sleep(0.002)
    return "not killed"


def _check_run_dir(run_dir):
    """Every listed checkpoint (and its optimizer state) is whole; metrics never go back."""
    run = RunDir(run_dir)
    for entry in run.checkpoints():
        with h5py.File(entry["path"], "r") as f:
            assert "layer_names" in f.attrs
        state = Path(entry["path"]).with_name(Path(entry["path"]).stem + ".optimizer.npz")
        with np.load(state) as data:
            assert "header" in data.files
    steps = [r["step"] for r in run.read_metrics("step")]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), steps
    return run


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_loop_resumes_without_corruption_or_lost_epochs(tmp_path):
    rng = random.Random(18)
    run_dir = tmp_path / "run"
    epochs, steps = 4, 2
    base = _train_args(tmp_path, run_dir, epochs=epochs, steps=steps)
    kills = []
    for cycle, inside_write in enumerate([True, False, True]):
        argv = base + (["--resume"] if cycle else [])
        before = RunDir(run_dir).last_checkpoint() if cycle else None
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=_env())
        kills.append(_kill_when(proc, run_dir, inside_write, 240, rng))
        proc.communicate(timeout=60)
        run = _check_run_dir(run_dir)
        after = run.last_checkpoint()
        if before is not None and after is not None:  # never loses a finished epoch
            assert after["epoch"] >= before["epoch"]
        assert not list(run_dir.rglob("*.tmp")) or kills[-1] != "not killed"
    done = subprocess.run(base + ["--resume"], capture_output=True, text=True, env=_env(),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = _check_run_dir(run_dir)
    record = run.read_run()
    assert record["status"] == "finished"
    assert run.last_checkpoint()["epoch"] == epochs and not run.last_checkpoint()["partial"]
    assert record["argv"].count("--run-dir") == 1, record["argv"]  # argv does not grow
    epochs_seen = sorted({r["epoch"] for r in run.read_metrics("epoch")})
    assert epochs_seen == list(range(1, epochs + 1)), epochs_seen
    # Redone steps' records were dropped on resume: one record per step, in order.
    assert [r["step"] for r in run.read_metrics("step")] == list(range(1, epochs * steps + 1))
    print("kills:", kills)
