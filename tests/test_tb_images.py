"""``mrcnn train --tb-images N``: the event file holds N detection images per epoch."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tiny_config import TinyConfig

pytestmark = pytest.mark.slow


def _events(logdir):
    """{epoch: [decoded [H, W, 3] images]} of the ``val/detections`` summaries in ``logdir``."""
    import tensorflow as tf

    images = {}
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag != "val/detections":
                    continue
                assert value.metadata.plugin_data.plugin_name == "images"
                # tf.summary.image's tensor: [width, height, png, png, ...] as strings.
                parts = tf.make_ndarray(value.tensor)
                width, height = int(parts[0]), int(parts[1])
                decoded = [tf.io.decode_png(png).numpy() for png in parts[2:]]
                assert all(d.shape == (height, width, 3) for d in decoded)
                images.setdefault(event.step, []).extend(decoded)
    return images


def test_tb_images_per_epoch(tmp_path):
    values = json.loads(TinyConfig().to_json())
    values.pop("NUM_CLASSES")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(values))
    run_dir = tmp_path / "run"
    argv = ["--dataset", "shapes", "--shapes-train", "4", "--shapes-val", "3", "--shapes-size",
            "128", "--config", str(config), "--run-dir", str(run_dir), "--epochs", "2",
            "--steps-per-epoch", "1", "--validation-steps", "0", "--tb-images", "2"]
    done = subprocess.run([sys.executable, "-m", "mrcnn", "train", *argv], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    images = _events(str(run_dir / "tb" / "val_images"))
    assert sorted(images) == [1, 2]
    for epoch, panels in images.items():
        assert len(panels) == 2
        for panel in panels:
            # GT panel beside the detections panel, each 4 in x 64 dpi.
            assert panel.shape == (256, 512, 3) and panel.dtype == np.uint8
            left, right = panel[:, :256], panel[:, 256:]
            assert left.std() > 10 and right.std() > 10  # drawn images, not blank
    # The same validation images every epoch: the ground-truth halves are identical.
    for first, second in zip(images[1], images[2]):
        np.testing.assert_array_equal(first[:, :256], second[:, :256])
    # Different images side by side: the two validation images differ.
    assert not np.array_equal(images[1][0][:, :256], images[1][1][:, :256])
