"""Argument plumbing of local multi-worker runs (fast, no TensorFlow)."""

import json
import socket

from mrcnn.multiworker import free_ports, split_local_workers, split_stop_with_parent, tf_configs


def test_split_local_workers():
    assert split_local_workers(["--epochs", "2", "--local-workers", "3", "--seed", "1"]) == \
        (3, ["--epochs", "2", "--seed", "1"])
    assert split_local_workers(["--local-workers=2", "--epochs", "2"]) == (2, ["--epochs", "2"])
    assert split_local_workers(["--epochs", "2"]) == (1, ["--epochs", "2"])


def test_split_stop_with_parent():
    assert split_stop_with_parent(["--a", "--stop-with-parent", "123", "--b"]) == \
        (["--a", "--b"], 123)
    assert split_stop_with_parent(["--stop-with-parent", "--b"]) == (["--b"], 0)
    assert split_stop_with_parent(["--b"]) == (["--b"], None)


def test_tf_configs_name_every_worker_and_one_task_each():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:  # free: binding works
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    configs = [json.loads(c) for c in tf_configs(ports)]
    workers = [f"127.0.0.1:{p}" for p in ports]
    assert [c["cluster"] for c in configs] == [{"worker": workers}] * 3
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
