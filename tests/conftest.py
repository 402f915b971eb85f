"""Shared test setup: quiet TensorFlow, offscreen Qt, and small configs that run fast on 2 cores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tiny_config import TinyConfig  # noqa: E402,F401  (re-exported for old imports)


@pytest.fixture
def tiny_config():
    """A fresh TinyConfig instance (see TinyConfig)."""
    return TinyConfig()
