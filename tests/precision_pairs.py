"""Helpers for bfloat16-vs-float32 tests: one model per precision with the same random weights,
traced on the same image, and the matching of their (reordered) stage outputs.

Random Keras initialisers on a mean-subtracted image (pixels of about +-128) give activations of
hundreds, RPN logits so large that every softmax saturates at 0 or 1 and scores tie: nothing
to compare. Dividing ``conv1``'s kernel by INPUT_SCALE brings every activation to about 1 (the
ReLU network is positively homogeneous, biases start at zero, BatchNorm starts as identity),
so scores, deltas and masks take graded values like a trained model's. A random classifier
also picks background for most proposals; lowering the background logit's bias by
BACKGROUND_SHIFT leaves foreground detections to compare.
"""

from __future__ import annotations

import numpy as np

INPUT_SCALE = 100.0
BACKGROUND_SHIFT = 1.0


def random_pair(config, seed=1):
    """(float32 model, bfloat16 model) of ``config`` sharing one set of random weights."""
    import keras

    from mrcnn.model import MaskRCNN
    from mrcnn.precision import with_compute_dtype

    keras.utils.set_random_seed(seed)
    fp32 = MaskRCNN("inference", with_compute_dtype(config, "float32"))
    conv1 = fp32.keras_model.get_layer("conv1")
    kernel, bias = conv1.get_weights()
    conv1.set_weights([kernel / INPUT_SCALE, bias])
    class_logits = fp32.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = class_logits.get_weights()
    class_logits.set_weights([kernel, bias - BACKGROUND_SHIFT * (np.arange(len(bias)) == 0)])
    bf16 = MaskRCNN("inference", with_compute_dtype(config, "bfloat16"))
    bf16.keras_model.set_weights(fp32.keras_model.get_weights())
    return fp32, bf16


def sample_image(side, seed=0):
    """A (side, side, 3) uint8 image: smooth blobs on noise (random pixels alone are too flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] / side
    image = rng.uniform(0, 60, (side, side, 3))
    for _ in range(4):
        cy, cx, radius = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        image[inside] += rng.uniform(80, 190, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def relative_error(reference, value):
    """(max |a - b| / max |a|, ||a - b|| / ||a||) in float64."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(value, np.float64)
    return (float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)),
            float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)))


def proposal_anchors(trace):
    """Anchor index of each real post-NMS proposal of a trace (its lineage back to the RPN)."""
    pre_nms_anchors = trace.stages["proposals/pre_nms"]["anchor_indices"]
    return pre_nms_anchors[trace.stages["proposals/post_nms"]["indices"]]
