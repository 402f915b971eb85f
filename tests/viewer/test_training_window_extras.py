"""Main-window training extras (issue 19, smaller points): the Training dock shows at start when
past runs exist; Compare reuses one window; Esc clears a comparison's selection, then closes it."""

import sys
import types

import shiboken6
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow

from test_compare import compare, traces  # noqa: F401 (fixtures)
from test_training_panel import write_past_run
from viewer.training.panel import RUNS_ROOT_KEY


def _main_window(qtbot, settings):
    from viewer.main_window import MainWindow

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_training_dock_shows_at_start_when_runs_exist(qtbot, settings, tmp_path, dialogs):
    write_past_run(tmp_path / "runs", "earlier", "finished")
    settings.setValue(RUNS_ROOT_KEY, str(tmp_path / "runs"))
    window = _main_window(qtbot, settings)
    dock = window.docks["Training"]
    qtbot.waitUntil(lambda: not dock.isHidden(), timeout=3000)
    assert window.training.model.rowCount() == 1
    # A tab of the right-hand column (the canvas keeps its full height), not raised over the
    # tab the window opened on.
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert dock in window.tabifiedDockWidgets(window.docks["Detections"])
    window.document.runner.cancel()


def test_training_dock_stays_hidden_without_runs(qtbot, settings, tmp_path, dialogs):
    settings.setValue(RUNS_ROOT_KEY, str(tmp_path / "no_runs"))
    window = _main_window(qtbot, settings)
    qtbot.wait(50)
    assert window.docks["Training"].isHidden()
    window.document.runner.cancel()


class FakeCompare(QMainWindow):
    made = []

    def __init__(self, image_path, specs, labels, parent=None):
        super().__init__()  # top level, as the real one
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.labels = labels
        FakeCompare.made.append(self)


def test_compare_reuses_one_window(window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "viewer.compare",
                        types.SimpleNamespace(CompareWindow=FakeCompare))
    FakeCompare.made.clear()
    window.document.image_file = str(tmp_path / "image.png")
    compare_two = window.training.compareCheckpoints.emit
    compare_two("/r/checkpoints/a.h5", "/r/checkpoints/b.h5", "")
    first = FakeCompare.made[-1]
    qtbot.waitExposed(first)
    first.setGeometry(40, 50, 700, 500)
    compare_two("/r/checkpoints/a.h5", "/r/checkpoints/b.h5", "")  # the same again: raised
    assert FakeCompare.made == [first]
    compare_two("/r/checkpoints/a.h5", "/r/checkpoints/c.h5", "")  # another: replaces it
    second = FakeCompare.made[-1]
    assert second is not first and second.labels == ("r/a.h5", "r/c.h5")
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=2000)  # closed and deleted
    assert second.isVisible() and second.geometry().size() == QSize(700, 500)
    assert window.training_actions.compare_slot.current() is second
    second.close()


def test_escape_clears_the_selection_then_closes(compare, qtbot):
    (escape,) = [a for a in compare.findChildren(QAction) if a.shortcut().toString() == "Esc"]
    compare.select_pair(1)
    assert compare.sides[0].session.selection is not None
    escape.trigger()
    assert compare.sides[0].session.selection is None and compare.isVisible()
    assert not compare.pairs_table.selectionModel().hasSelection()
    escape.trigger()
    assert not compare.isVisible()
