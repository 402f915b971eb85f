"""Dataset inspector: matterport's inspect_data notebook as a window (GT, molded input,
mini-masks, augmentation, anchor matching, statistics). TensorFlow-free.

``DatasetInspector(dataset, config=None, parent=None)`` is the window; ``InspectorData`` and
``compute_statistics`` are its Qt-free computations.
"""

from viewer.inspector.data import InspectorData, default_config
from viewer.inspector.dataset_stats import DatasetStatistics, compute_statistics
from viewer.inspector.window import DatasetInspector

__all__ = ["DatasetInspector", "DatasetStatistics", "InspectorData", "compute_statistics",
           "default_config"]
