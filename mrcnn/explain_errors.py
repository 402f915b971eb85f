"""Errors of ``mrcnn.explain``: each names the bad argument and what was expected."""

from __future__ import annotations


class ExplainError(ValueError):
    """Bad input to explain(): a detection, layer, method or target it cannot explain."""


class NoDetectionsError(ExplainError):
    """The trace (image) has no detections, so there is nothing to explain."""


class DetectionIndexError(ExplainError, IndexError):
    """The detection index is outside 0..N-1 of the trace's detections."""


class NoGroundTruthError(ExplainError):
    """A GT object was asked for, but the trace was traced without ground truth."""


class GroundTruthIndexError(ExplainError, IndexError):
    """The GT index is outside 0..G-1 of the trace's ground truth."""


class UnknownLayerError(ExplainError):
    """No layer of that name in the model."""


class LayerNotFeedingError(ExplainError):
    """The layer exists but the detection's score does not depend on it (a head layer, P6, or
    an FPN level other than the one the detection's ROI is pooled from)."""


class ExplainCancelled(Exception):
    """D-RISE was cancelled through its ``cancel`` callback."""
