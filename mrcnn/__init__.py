"""Mask R-CNN (FPN, ResNet) on Keras 3 with the TensorFlow backend.

Importing the package is cheap: TensorFlow loads only when a model-building module is imported.
"""

import os

# Keras 3 picks its backend at import time; this package is written for TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
