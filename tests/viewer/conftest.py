"""Viewer test fixtures: a fake trace (built once), its .npz, isolated settings, recorded dialogs."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from mrcnn.synthetic_trace import make_fake_trace  # noqa: E402


@pytest.fixture(scope="session")
def fake_trace():
    """The default fake trace (256x320, 5 detections); treat as read-only."""
    return make_fake_trace()


@pytest.fixture(scope="session")
def trace_file(tmp_path_factory):
    # A fresh copy, not the shared fake_trace: a test that hands fake_trace to the window (as a
    # worker's result for "x.png") may have stamped its meta before this fixture first runs.
    return make_fake_trace().save(tmp_path_factory.mktemp("traces") / "fake.npz")


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "viewer.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def dialogs(monkeypatch):
    """Error / about dialogs recorded as (title, message) instead of blocking the test."""
    from PySide6.QtWidgets import QMessageBox

    shown = []

    def record(parent, title, message, *args, **kwargs):
        shown.append((title, message))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(record))
    monkeypatch.setattr(QMessageBox, "about", staticmethod(record))
    return shown


@pytest.fixture
def window(qtbot, settings, dialogs):
    from PySide6.QtWidgets import QApplication

    from viewer.main_window import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.document.runner.cancel()
    win.document.runner.wait(5000)
    # Destroy the Qt objects now: pyqtgraph items met by the garbage collector during
    # interpreter shutdown can crash PySide6 (see viewer.app._dispose).
    from viewer.app import _dispose

    _dispose(QApplication.instance(), win)
