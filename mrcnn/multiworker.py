"""Multi-worker training: the strategy with bounded failure detection, and local clusters.

``make_multi_worker_strategy`` builds ``MultiWorkerMirroredStrategy`` (TF_CONFIG names the
cluster) after configuring TensorFlow's coordination service itself, so that a worker that dies
is noticed by its missed heartbeats within ``HEARTBEAT_TIMEOUT_S`` and every other worker's
blocked collective fails instead of waiting forever; collectives also time out after
``COLLECTIVE_TIMEOUT_S`` as a backstop. (Left alone, the strategy configures the service with
its defaults and collectives wait without a limit.)

``run_local_workers`` starts N ``mrcnn train`` processes on 127.0.0.1 with free ports and one
TF_CONFIG each (worker 0 is the chief and the only one that writes the run directory), forwards
the chief's JSON events to stdout, and stops the others when one fails: ``mrcnn train
--local-workers N`` and the viewer's training dialog use it to try multi-worker training on one
machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

# Seconds without a heartbeat after which the coordination service declares a worker dead.
HEARTBEAT_TIMEOUT_S = 15
# Seconds one collective (all-reduce) may take before it fails: far above a step's duration.
COLLECTIVE_TIMEOUT_S = 300
# Seconds a finishing worker waits at the shutdown barrier for the others.
SHUTDOWN_BARRIER_TIMEOUT_S = 60
LOCAL_WORKERS_FLAG = "--local-workers"


class WorkerLost(Exception):
    """A peer worker of a multi-worker run died or became unreachable."""


def make_multi_worker_strategy():
    """MultiWorkerMirroredStrategy with the bounded failure detection of the module doc."""
    import tensorflow as tf
    from tensorflow.python.eager import context
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    resolver = TFConfigClusterResolver()
    cluster = resolver.cluster_spec()
    if context.context().coordination_service is None:
        jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
                for job in ("chief", "worker") if job in cluster.jobs]
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(cluster),
            coordinated_jobs=jobs,
            heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
            shutdown_barrier_timeout_in_ms=SHUTDOWN_BARRIER_TIMEOUT_S * 1000)
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_S)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)


def worker_lost_message(error) -> str | None:
    """A one-line explanation when ``error`` is TensorFlow losing a peer worker, else None."""
    name = type(error).__name__
    text = str(error)
    lost = name in ("UnavailableError", "DeadlineExceededError", "AbortedError",
                    "CancelledError") or any(
        marker in text for marker in ("heartbeat", "Socket closed", "Connection reset",
                                      "failed to connect", "has been shut down"))
    if not lost:
        return None
    # TF's text starts with where the op was defined; the cause is on a later line.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if "aborted by" in line or "heartbeat" in line]
    detail = (causes or lines[-1:] or [""])[0][:300]
    return (f"WorkerLost: a worker of the multi-worker run stopped responding ({name}: "
            f"{detail}); this worker stops too. Restart every worker (with --resume to "
            f"continue from the chief's last checkpoint).")


# ---- local clusters --------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports) -> list[str]:
    """One TF_CONFIG per worker of a cluster on 127.0.0.1 (worker 0 is the chief)."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(len(workers))]


def split_local_workers(argv) -> tuple[int, list[str]]:
    """(N of ``--local-workers N`` or 1, argv without it)."""
    argv = list(argv)
    count = 1
    for i, arg in enumerate(argv):
        if arg == LOCAL_WORKERS_FLAG and i + 1 < len(argv):
            count = int(argv[i + 1])
            return count, argv[:i] + argv[i + 2:]
        if arg.startswith(LOCAL_WORKERS_FLAG + "="):
            count = int(arg.split("=", 1)[1])
            return count, argv[:i] + argv[i + 1:]
    return count, argv


def run_local_workers(argv, count: int, events_out=None, poll_s: float = 0.5) -> int:
    """Run ``mrcnn train argv`` as ``count`` local workers; returns the first failing exit code
    (the others are terminated), else 0. The chief's stdout goes to ``events_out``."""
    events_out = events_out or sys.stdout
    argv, parent = split_stop_with_parent(argv)
    if parent is not None:
        # Each worker outlives this launcher only; the launcher watches the named parent.
        argv = [*argv, "--stop-with-parent"]
    configs = tf_configs(free_ports(count))
    processes = []
    for index, tf_config in enumerate(configs):
        env = dict(os.environ, TF_CONFIG=tf_config)
        stdout = subprocess.PIPE if index == 0 else subprocess.DEVNULL
        processes.append(subprocess.Popen([sys.executable, "-m", "mrcnn.train", *argv],
                                          stdout=stdout, env=env, text=True))
    forward = threading.Thread(target=_forward, args=(processes[0].stdout, events_out),
                               daemon=True)
    forward.start()
    stop = _forward_signals(processes)
    if parent is not None:
        _watch_parent(parent or os.getppid(), processes)
    try:
        code = _wait_all(processes, poll_s)
    finally:
        stop()
    forward.join(timeout=5)
    return code


def split_stop_with_parent(argv) -> tuple[list[str], int | None]:
    """(argv without ``--stop-with-parent [PID]``, PID (0: the parent) or None if absent)."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--stop-with-parent":
            if i + 1 < len(argv) and argv[i + 1].isdigit():
                return argv[:i] + argv[i + 2:], int(argv[i + 1])
            return argv[:i] + argv[i + 1:], 0
    return argv, None


def _watch_parent(parent: int, processes, interval_s: float = 1.0):
    """SIGTERM every worker (a graceful stop) once ``parent`` is no longer our parent."""

    def watch():
        while os.getppid() == parent:
            time.sleep(interval_s)
        for process in processes:
            if process.poll() is None:
                process.terminate()

    threading.Thread(target=watch, name="mrcnn-launcher-parent-watch", daemon=True).start()


def _forward(stream, out):
    for line in stream:
        out.write(line)
        out.flush()


def _forward_signals(processes):
    """Pass SIGTERM / SIGINT on to every worker (each stops after its step); returns undo."""
    previous = {}

    def handle(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handle)
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _wait_all(processes, poll_s) -> int:
    while True:
        codes = [p.poll() for p in processes]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            return failed[0] if failed[0] > 0 else 1  # killed by a signal: failed
        if all(c == 0 for c in codes):
            return 0
        time.sleep(poll_s)


def symbolic_build_from_local_batch(trainer, keras_build, iterator=None, data_batch=None):
    """Keras' ``_maybe_symbolic_build`` with the first batch taken from this worker's first
    replica instead of ``strategy.reduce("MEAN", batch)``: Keras 3 reduces the whole input
    dict, which ``MultiWorkerMirroredStrategy`` rejects ("Attempt to convert a value ({...
    PerReplica ...}) with an unsupported type (<class 'dict'>) to a Tensor") and which would
    all-reduce every input image just to learn shapes. ``keras_build`` is the parent method."""
    import tensorflow as tf
    from keras import tree

    if iterator is None or getattr(trainer, "_distribute_strategy", None) is None:
        return keras_build(iterator=iterator, data_batch=data_batch)
    strategy = trainer.distribute_strategy
    for _, _, batches in iterator:
        data_batch = next(batches)
        break
    data_batch = tree.map_structure(
        lambda value: strategy.experimental_local_results(value)[0]
        if isinstance(value, tf.distribute.DistributedValues) else value, data_batch)
    return keras_build(data_batch=data_batch)


def step_logs(logs: dict) -> dict:
    """A train/test step's scalar logs, as [1] tensors under a multi-worker strategy.

    Keras 3 averages each log over workers with ``strategy.reduce("MEAN", value, axis=0)``,
    which fails on a scalar ("Invalid reduction dimension 0 for input with 0 dimensions");
    a [1] vector reduces to the mean scalar. Elsewhere the logs stay scalars.
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    extended = getattr(strategy, "extended", None)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        getattr(extended, "_in_multi_worker_mode", lambda: False)()
    if not multi_worker:
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
