"""What explaining a ground-truth object means: the subject its diagnosis points to.

``explain(model, image, gt=g, trace=t)`` asks which pixels the model used for GT object ``g`` of
a trace traced with ground truth. The answer follows the object's diagnosis
(``mrcnn.diagnose``), so the map is about what the model actually did with it:

- found, or lost only at the mask (``detected``, ``mask``): the detection that found it, as
  ``explain(..., detection=k)`` would;
- lost in the heads (``background``, ``wrong_class``, ``low_score``, ``box_regression``,
  ``detection_nms``, ``max_instances``): the covering ROI the diagnosis names
  (``details["roi"]``), for the GT's class - Grad-CAM then shows what the classifier looked at
  when it scored the true class on that ROI (too low, or lower than another class);
- lost in the RPN (``no_anchor``, ``rpn_rank``, ``proposal_refinement``, ``proposal_nms``): no
  ROI that reached the heads covered it, so the GT box itself is held as the ROI - what the
  heads would see had the RPN proposed the true box.

This module picks the subject (numpy and the diagnosis only, so the viewer can name it without
TensorFlow); ``mrcnn.explain.gt_target`` turns it into the graph's target. For the GT subjects
the mask target explains the mask logits over the whole mask grid of the
GT box (the mask head never ran on it), and D-RISE's target is the GT box with a one-hot class
vector, as in the D-RISE paper's target vectors.
"""

from __future__ import annotations

import numpy as np

from mrcnn.explain_errors import GroundTruthIndexError, NoGroundTruthError

HEAD_CAUSES = ("background", "wrong_class", "low_score", "box_regression", "detection_nms",
               "max_instances")


def gt_subject(trace, gt) -> tuple[str, int]:
    """``("detection", k)``, ``("roi", row)`` (a post-NMS ROI) or ``("gt_box", g)``: what GT
    object ``gt`` of ``trace`` is explained through (see the module docstring)."""
    return subject_of_verdict(gt_verdict(trace, gt))


def subject_of_verdict(verdict) -> tuple[str, int]:
    """``gt_subject`` of a diagnosis verdict already at hand (``mrcnn.diagnose.GTVerdict``)."""
    if verdict.detection >= 0:
        return "detection", int(verdict.detection)
    if verdict.cause in HEAD_CAUSES and int(verdict.details.get("roi", -1)) >= 0:
        return "roi", int(verdict.details["roi"])
    return "gt_box", int(verdict.index)


def gt_verdict(trace, gt):
    """The diagnosis verdict (``mrcnn.diagnose.GTVerdict``) of GT object ``gt``."""
    from mrcnn.diagnose import Diagnosis, diagnose

    if "gt" not in trace:
        raise NoGroundTruthError("explain: the trace has no ground truth; trace the image "
                                 "with gt=... (a dataset image) to explain a GT object")
    count = len(trace["gt"]["class_ids"])
    if isinstance(gt, (bool, np.bool_)) or not isinstance(gt, (int, np.integer)):
        raise GroundTruthIndexError(f"explain: gt must be an integer index, got {gt!r}")
    if not 0 <= int(gt) < count:
        raise GroundTruthIndexError(f"explain: GT object {gt} is out of range; the image has "
                                    f"{count} GT objects (0..{count - 1})")
    diagnosis = Diagnosis.from_trace(trace) or diagnose(trace)
    return diagnosis.gt[int(gt)]


def subject_name(gt, kind, row) -> str:
    """How messages and the viewer call subject (``kind``, ``row``) of GT object ``gt``."""
    if kind == "detection":
        return f"detection {row}, which found GT {gt}"
    if kind == "roi":
        return f"GT {gt}'s covering ROI {row}"
    return f"GT {gt}'s own box (no ROI that reached the heads covered it)"
