"""Trace: every stage of one image as plain numpy data, saved and loaded without TensorFlow.

A Trace is the seam between the model and everything that draws it (the viewer, the CLI, a
notebook). It holds named stages, each a dict of arrays, plus JSON metadata:

========================  ==================================================================
stage key                 arrays (boxes are original-image pixels, ``[y1, x1, y2, x2]``)
========================  ==================================================================
``input``                 ``image`` [H, W, 3] uint8 original, ``molded`` [h, w, 3] uint8 resized
``anchors``               ``boxes`` [A, 4], ``levels`` [A] int (2..6)
``rpn/scores``            ``scores`` [A] foreground probability per anchor
``rpn/deltas``            ``deltas`` [A, 4] (already multiplied by RPN_BBOX_STD_DEV)
``proposals/pre_nms``     ``boxes`` [K, 4] refined + clipped, ``unclipped`` [K, 4], ``scores``
                          [K], ``anchor_indices`` [K] (rows of ``anchors``)
``proposals/post_nms``    ``boxes`` [R, 4], ``scores`` [R], ``indices`` [R] (rows of pre_nms)
``targets/rpn``           ``match`` [A] (POSITIVE 1 / NEGATIVE -1 / NEUTRAL 0), ``deltas`` [P, 4]
                          (times RPN_BBOX_STD_DEV), ``positive_indices`` [P]   (only with gt)
``targets/rois``          ``boxes`` [T, 4], ``class_ids`` [T] (0 = negative), ``deltas`` [T, 4]
                          (times BBOX_STD_DEV), ``masks`` [T, 28, 28], ``proposal_indices`` [T]
                          (rows of post_nms)   (only with gt; positives first)
``heads/class_probs``     ``probs`` [R, C] (rows of post_nms)
``heads/refined``         ``boxes`` [R, C, 4] class-specific refined boxes, clipped to the window
``detections/pre_nms``    ``boxes`` [M, 4], ``class_ids`` [M], ``scores`` [M], ``roi_indices`` [M]:
                          ROIs whose best class is foreground with score >= DETECTION_MIN_CONFIDENCE
``detections``            ``boxes`` [N, 4] int32, ``class_ids`` [N], ``scores`` [N], ``roi_indices``
                          [N] (rows of post_nms), ``pre_nms_indices`` [N] (rows of detections/pre_nms)
``masks/raw``             ``masks`` [N, 28, 28] float probabilities of each detection's class
``masks``                 ``masks`` [H, W, N] bool full-size
``gt``                    ``boxes`` [G, 4], ``class_ids`` [G], ``masks`` [H, W, G] (optional)
``activations/<layer>``   ``values`` [h, w, c] float16
========================  ==================================================================

R counts the real proposals only (the graph's zero padding rows are dropped). Every stage that
keeps a subset of the previous one carries the indices it kept, so one item can be followed from
anchor to proposal to ROI to detection to mask (see ``lineage``).

Boxes of all stages use one mapping from the model's normalized coordinates to original pixels
(``normalized_to_original``; ``original_to_normalized`` inverts it), the one ``detect()`` uses
before rounding, so they line up with the detections. ``meta`` holds ``config`` (dict),
``class_names``, ``image_meta`` (original_shape, molded_shape, window, scale, padding),
``level_shapes`` ([h, w] of P2..P6), ``activation_layers``, ``timings`` (seconds per stage and
``total``) and ``counts``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrcnn.errors import TraceFileError  # noqa: F401  (imported from here too)

# Stage keys in pipeline order; the viewer's stepper follows this order.
STAGE_ORDER = (
    "input", "anchors", "rpn/scores", "rpn/deltas", "proposals/pre_nms", "proposals/post_nms",
    "targets/rpn", "targets/rois", "heads/class_probs", "heads/refined", "detections/pre_nms",
    "detections", "masks/raw", "masks", "gt",
)
ACTIVATION_PREFIX = "activations/"
_KEY_SEPARATOR = "::"
_META_KEY = "__meta__"
FORMAT_VERSION = 1


@dataclass
class Trace:
    """Stages of one image's pass through Mask R-CNN (see module docstring for the keys)."""

    stages: dict = field(default_factory=dict)
    # JSON-friendly: config (dict), class_names, image_path, image_meta (window, scale, padding,
    # molded_shape), timings (seconds per stage), counts per stage, level_shapes, format_version.
    meta: dict = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self.stages

    def __getitem__(self, key: str) -> dict:
        try:
            return self.stages[key]
        except KeyError:
            raise KeyError(f"trace has no stage {key!r}; it has: {', '.join(self.stages)}") from None

    def get(self, key: str, default=None):
        return self.stages.get(key, default)

    @property
    def image(self) -> np.ndarray:
        """[H, W, 3] uint8 original image."""
        return self.stages["input"]["image"]

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names")
        if names:
            return list(names)
        count = int(self.meta.get("config", {}).get("NUM_CLASSES", 1))
        return ["BG"] + [f"class {i}" for i in range(1, count)]

    @property
    def timings(self) -> dict:
        return dict(self.meta.get("timings", {}))

    def activation_layers(self) -> list[str]:
        """Names of the layers whose activations this trace holds."""
        return [k[len(ACTIVATION_PREFIX):] for k in self.stages if k.startswith(ACTIVATION_PREFIX)]

    def counts(self) -> dict:
        """Number of items per stage (boxes, anchors, masks), for stage lists and summaries."""
        out = {}
        for key, arrays in self.stages.items():
            for name in ("boxes", "scores", "probs", "masks", "match", "values", "image"):
                if name in arrays:
                    value = arrays[name]
                    out[key] = int(value.shape[-1] if key == "masks" else value.shape[0])
                    break
        return out

    def lineage(self, detection: int) -> dict:
        """Rows of every earlier stage that detection ``detection`` came from.

        Returns ``{"detections/pre_nms": m, "proposals/post_nms": r, "proposals/pre_nms": k,
        "anchors": a}`` (keys missing where the trace lacks the stage).
        """
        out = {}
        det = self["detections"]
        if "pre_nms_indices" in det:
            out["detections/pre_nms"] = int(det["pre_nms_indices"][detection])
        roi = int(det["roi_indices"][detection])
        out["proposals/post_nms"] = roi
        post = self.get("proposals/post_nms")
        if post is not None and roi >= 0:
            pre = int(post["indices"][roi])
            out["proposals/pre_nms"] = pre
            pre_stage = self.get("proposals/pre_nms")
            if pre_stage is not None and pre >= 0:
                out["anchors"] = int(pre_stage["anchor_indices"][pre])
        return out

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write ``path`` (.npz): one array per stage/name plus JSON metadata; atomic."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays = {f"{stage}{_KEY_SEPARATOR}{name}": np.asarray(value)
                  for stage, values in self.stages.items() for name, value in values.items()}
        meta = dict(self.meta, format_version=FORMAT_VERSION)
        arrays[_META_KEY] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), np.uint8)
        from mrcnn.atomic import atomic_write

        return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))

    @classmethod
    def load(cls, path) -> "Trace":
        """Read a trace written by ``save``; raises TraceFileError naming the file on bad input."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"trace file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise TraceFileError(f"{path}: not a readable trace (.npz) file ({e})") from None
        if _META_KEY not in contents:
            raise TraceFileError(f"{path}: .npz file has no trace metadata; was it written by Trace.save?")
        meta = json.loads(contents.pop(_META_KEY).tobytes().decode())
        stages: dict = {}
        for key, value in contents.items():
            stage, _, name = key.rpartition(_KEY_SEPARATOR)
            stages.setdefault(stage, {})[name] = value
        ordered = {k: stages[k] for k in STAGE_ORDER if k in stages}
        ordered.update({k: v for k, v in stages.items() if k not in ordered})
        return cls(stages=ordered, meta=meta)


# ---- coordinates ---------------------------------------------------------------------------

def _window_transform(image_meta):
    """(shift [4], scale [4], pixel scale [4], pixel shift [4]) of normalized -> original mapping."""
    molded_h, molded_w = (int(v) for v in image_meta["molded_shape"][:2])
    height, width = (int(v) for v in image_meta["original_shape"][:2])
    wy1, wx1, wy2, wx2 = (float(v) for v in image_meta["window"])
    # The window in normalized coordinates of the molded image (matterport's norm_boxes).
    ny1, nx1 = wy1 / (molded_h - 1), wx1 / (molded_w - 1)
    ny2, nx2 = (wy2 - 1) / (molded_h - 1), (wx2 - 1) / (molded_w - 1)
    shift = np.array([ny1, nx1, ny1, nx1])
    scale = np.array([ny2 - ny1, nx2 - nx1, ny2 - ny1, nx2 - nx1])
    pixel_scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
    pixel_shift = np.array([0.0, 0.0, 1.0, 1.0])
    return shift, scale, pixel_scale, pixel_shift


def normalized_to_original(boxes, image_meta) -> np.ndarray:
    """[N, 4] float32 original-image pixel boxes from boxes normalized to the molded image.

    The mapping of ``unmold_detections`` without its rounding (window -> original image, then
    matterport's ``denorm_boxes``), so every stage's boxes line up with ``detect()``'s ``rois``
    (which are these values rounded). ``image_meta`` is ``Trace.meta["image_meta"]``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    shift, scale, pixel_scale, pixel_shift = _window_transform(image_meta)
    return (((boxes - shift) / scale) * pixel_scale + pixel_shift).astype(np.float32)


def original_to_normalized(boxes, image_meta) -> np.ndarray:
    """[N, 4] float32 boxes normalized to the molded image; inverse of ``normalized_to_original``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    shift, scale, pixel_scale, pixel_shift = _window_transform(image_meta)
    return (((boxes - pixel_shift) / pixel_scale) * scale + shift).astype(np.float32)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
