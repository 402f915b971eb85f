"""Diagnosis: a verdict for every ground-truth object and every detection of one Trace.

Plain records (JSON-friendly; no TensorFlow), saved inside the trace's ``.npz`` as
``trace.meta["diagnosis"]`` (see ``Diagnosis.attach`` / ``Diagnosis.from_trace``).

``GTVerdict`` (one per row of the trace's ``gt`` stage):

==================  ===============================================================================
field               meaning
==================  ===============================================================================
``index``           row of ``gt`` (int)
``class_id``        GT class (int)
``cause``           ``"detected"`` or one of ``MISS_CAUSES`` (the first stage that lost it)
``stage``           stage key to show for the verdict (``CAUSE_STAGE[cause]``)
``detection``       row of ``detections`` matched to it, -1 if none (also set for ``mask``)
``box_iou``         box IoU with that detection (0.0 if none)
``mask_iou``        mask IoU with it (None: no detection, or GT without masks)
``size``            COCO size: ``"small"`` (area < 32²), ``"medium"`` (< 96²) or ``"large"``
``area``            mask pixel count (box area without masks), original pixels
``proposal_rank``   first row of ``proposals/post_nms`` covering it (box IoU >= cover_iou), -1: none
``details``         numbers of the verdict (per cause, see ``MISS_CAUSES`` docs in the module
                    ``mrcnn.diagnose.gt_causes``), e.g. ``{"best_rank": 812, "pre_nms_limit": 500}``
``evidence``        list of ``Evidence``: what to highlight, in which stage
==================  ===============================================================================

``DetectionVerdict`` (one per row of ``detections``): ``index``, ``class_id``, ``score``,
``type`` (``"true_positive"`` or one of ``FP_TYPES``, TIDE's definitions), ``gt`` (the related GT
row or -1), ``box_iou`` / ``mask_iou`` with that GT, ``evidence``.

``Evidence``: ``stage`` (a trace stage key), ``indices`` (rows of that stage), ``role`` (what they
are, e.g. ``"best_anchor"``, ``"suppressed_by"``) and ``values`` (numbers per row, same order as
``indices``, e.g. ``{"iou": [0.41], "rank": [812]}``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from mrcnn.targets import POSITIVE_IOU

# Miss causes in pipeline order, and the stage each one is shown at.
CAUSE_STAGE = {
    "no_anchor": "anchors",
    "rpn_rank": "rpn/scores",
    "proposal_refinement": "proposals/pre_nms",
    "proposal_nms": "proposals/pre_nms",
    "background": "heads/class_probs",
    "wrong_class": "heads/class_probs",
    "low_score": "heads/class_probs",
    "box_regression": "heads/refined",
    "detection_nms": "detections/pre_nms",
    "max_instances": "detections/pre_nms",
    "mask": "masks",
}
MISS_CAUSES = tuple(CAUSE_STAGE)
DETECTED = "detected"
GT_VERDICTS = (DETECTED,) + MISS_CAUSES
TRUE_POSITIVE = "true_positive"
FP_TYPES = ("duplicate", "localization", "wrong_class", "both", "background")
DETECTION_VERDICTS = (TRUE_POSITIVE,) + FP_TYPES
SIZES = ("small", "medium", "large")
# COCO's area ranges (pixels²).
SMALL_AREA, MEDIUM_AREA = 32 ** 2, 96 ** 2
_META_KEY = "diagnosis"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the diagnosis; ``None`` means "the trace's config value"."""

    cover_iou: float = 0.5          # a proposal / ROI / detection covers a GT at this box IoU
    rpn_positive_iou: float = POSITIVE_IOU  # anchors matching a GT, as the RPN targets define it
    mask_iou: float = 0.5           # a detected box also needs this mask IoU
    background_iou: float = 0.1     # TIDE's background threshold t_b
    min_confidence: float | None = None   # DETECTION_MIN_CONFIDENCE
    proposal_nms: float | None = None     # RPN_NMS_THRESHOLD
    detection_nms: float | None = None    # DETECTION_NMS_THRESHOLD
    max_instances: int | None = None      # DETECTION_MAX_INSTANCES

    def resolved(self, config: dict) -> "Thresholds":
        """A copy with every ``None`` taken from ``config`` (the trace's config dict)."""
        def pick(value, name, default):
            return value if value is not None else config.get(name, default)

        return Thresholds(
            self.cover_iou, self.rpn_positive_iou, self.mask_iou, self.background_iou,
            float(pick(self.min_confidence, "DETECTION_MIN_CONFIDENCE", 0.7)),
            float(pick(self.proposal_nms, "RPN_NMS_THRESHOLD", 0.7)),
            float(pick(self.detection_nms, "DETECTION_NMS_THRESHOLD", 0.3)),
            int(pick(self.max_instances, "DETECTION_MAX_INSTANCES", 100)))


@dataclass
class Evidence:
    """Rows of one stage to highlight, what they are, and numbers per row."""

    stage: str
    indices: list
    role: str
    values: dict = field(default_factory=dict)


@dataclass
class GTVerdict:
    index: int
    class_id: int
    cause: str
    stage: str
    detection: int = -1
    box_iou: float = 0.0
    mask_iou: float | None = None
    size: str = "small"
    area: float = 0.0
    proposal_rank: int = -1
    details: dict = field(default_factory=dict)
    evidence: list = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return self.cause == DETECTED


@dataclass
class DetectionVerdict:
    index: int
    class_id: int
    score: float
    type: str
    gt: int = -1
    box_iou: float = 0.0
    mask_iou: float | None = None
    evidence: list = field(default_factory=list)


@dataclass
class Diagnosis:
    """Verdicts of one image; ``gt[i]`` is GT row i, ``detections[j]`` detection row j."""

    gt: list = field(default_factory=list)
    detections: list = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)
    boxes_only: bool = False
    seconds: float = 0.0

    # ---- arrays for drawing / filtering -----------------------------------------------------

    def gt_causes(self) -> np.ndarray:
        """[G] int: index into ``GT_VERDICTS`` (0 = detected)."""
        return np.array([GT_VERDICTS.index(v.cause) for v in self.gt], np.int32)

    def detection_types(self) -> np.ndarray:
        """[N] int: index into ``DETECTION_VERDICTS`` (0 = true positive)."""
        return np.array([DETECTION_VERDICTS.index(v.type) for v in self.detections], np.int32)

    def missed(self) -> list:
        return [v for v in self.gt if not v.detected]

    def false_positives(self) -> list:
        return [v for v in self.detections if v.type != TRUE_POSITIVE]

    def counts(self) -> dict:
        """{"gt": {verdict: n}, "detections": {type: n}} with every key present."""
        return {"gt": {c: sum(v.cause == c for v in self.gt) for c in GT_VERDICTS},
                "detections": {t: sum(v.type == t for v in self.detections)
                               for t in DETECTION_VERDICTS}}

    # ---- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        out = asdict(self)
        out["format_version"] = FORMAT_VERSION
        return json.loads(json.dumps(out, default=_json_default))

    @classmethod
    def from_dict(cls, data: dict) -> "Diagnosis":
        def evidence(items):
            return [Evidence(**e) for e in items]

        gt = [GTVerdict(**{**g, "evidence": evidence(g.get("evidence", []))})
              for g in data.get("gt", [])]
        dets = [DetectionVerdict(**{**d, "evidence": evidence(d.get("evidence", []))})
                for d in data.get("detections", [])]
        return cls(gt=gt, detections=dets, thresholds=dict(data.get("thresholds", {})),
                   boxes_only=bool(data.get("boxes_only", False)),
                   seconds=float(data.get("seconds", 0.0)))

    def attach(self, trace) -> None:
        """Store in ``trace.meta`` so that ``trace.save`` writes it into the same .npz."""
        trace.meta[_META_KEY] = self.to_dict()

    @classmethod
    def from_trace(cls, trace) -> "Diagnosis | None":
        """The diagnosis attached to ``trace`` (also after ``Trace.load``), or None."""
        data = trace.meta.get(_META_KEY)
        return None if data is None else cls.from_dict(data)


def coco_size(area: float) -> str:
    """COCO size name of an object area in pixels²."""
    return "small" if area < SMALL_AREA else "medium" if area < MEDIUM_AREA else "large"


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
