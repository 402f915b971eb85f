"""Diagnosis of one traced image: why each GT object was missed, what each detection is.

``diagnose(trace) -> Diagnosis`` (pure numpy; see ``records`` for the data model, ``gt_causes``
for the miss causes, ``detection_types`` for TIDE's false-positive types).
"""

from mrcnn.diagnose.core import REQUIRED_STAGES, diagnose
from mrcnn.diagnose.explain import explain_detection, explain_gt
from mrcnn.diagnose.records import (CAUSE_STAGE, DETECTED, DETECTION_VERDICTS, FP_TYPES,
                                    GT_VERDICTS, MISS_CAUSES, SIZES, TRUE_POSITIVE, Diagnosis,
                                    DetectionVerdict, Evidence, GTVerdict, Thresholds, coco_size)

__all__ = ["diagnose", "explain_gt", "explain_detection", "Diagnosis", "GTVerdict", "DetectionVerdict", "Evidence", "Thresholds",
           "CAUSE_STAGE", "MISS_CAUSES", "GT_VERDICTS", "FP_TYPES", "DETECTION_VERDICTS",
           "TRUE_POSITIVE", "DETECTED", "SIZES", "REQUIRED_STAGES", "coco_size"]
