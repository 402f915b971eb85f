"""Issue 19 export points: "Saved …" in the status bar, file names with the stage, dialogs in
the last folder used, exported views with their caption and legend underneath."""

import os
from pathlib import Path

import pytest
import skimage.io
from PySide6.QtGui import QColor, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog

from viewer.export import render_widget
from viewer.export_caption import BACKGROUND, captioned_image


@pytest.fixture
def save_dialog(monkeypatch):
    """getSaveFileName recorded: each call's proposed path; answers with ``answers`` in turn."""
    calls, answers = [], []

    def fake(parent, title, proposed, file_filter, *args, **kwargs):
        calls.append(proposed)
        return (str(answers.pop(0)) if answers else "", file_filter)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake))
    return calls, answers


def _action(window, shortcut):
    sequence = QKeySequence(shortcut)
    return next(a for a in window.actions() if sequence in a.shortcuts())


def test_ctrl_e_and_ctrl_s_confirm_in_the_status_bar(window, trace_file, tmp_path, save_dialog):
    calls, answers = save_dialog
    window.open_trace(trace_file)
    window.session.set_stage("rpn_scores")
    answers.append(tmp_path / "picked" / "rpn.png")
    (tmp_path / "picked").mkdir()
    _action(window, "Ctrl+E").trigger()
    # The proposed name carries the stage; the file is written and the status bar says so.
    assert Path(calls[0]).name == f"{Path(trace_file).stem}_rpn_scores.png"
    assert (tmp_path / "picked" / "rpn.png").stat().st_size > 0
    assert window.status_label.text() == f"Saved the view to {tmp_path / 'picked' / 'rpn.png'}."
    answers.append(tmp_path / "picked" / "again.npz")
    _action(window, "Ctrl+S").trigger()
    # The next dialog starts where the last file went.
    assert os.path.dirname(calls[1]) == str(tmp_path / "picked")
    assert Path(calls[1]).name == f"{Path(trace_file).stem}.npz"
    assert window.status_label.text().startswith("Saved the trace to ")
    _action(window, "Ctrl+E").trigger()            # cancelled: nothing claimed
    assert os.path.dirname(calls[2]) == str(tmp_path / "picked")
    assert window.status_label.text().startswith("Saved the trace to ")


def test_exported_view_carries_caption_and_legend(window, trace_file, tmp_path, qtbot):
    window.open_trace(trace_file)
    window.session.set_stage("composite")
    window.session.select("detection", 0)
    qtbot.wait(50)
    lines = window.canvas.caption_lines()
    assert lines[0].startswith("<b>Final result</b>")
    assert any("Legend:" in line for line in lines) and any("Selected:" in line for line in lines)
    path = window.exports.export_view_png(tmp_path / "view.png")
    image = skimage.io.imread(path)
    plain = render_widget(window.canvas.view)
    assert image.shape[1] == plain.width() and image.shape[0] > plain.height() + 40
    strip = image[plain.height():, :, :3].astype(int)
    # Light text on the dark background below the picture.
    assert (strip.min(axis=2) > 180).sum() > 200


def test_captioned_image_adds_a_text_strip_below():
    image = QImage(200, 100, QImage.Format.Format_RGB32)
    image.fill(QColor(255, 0, 0))
    out = captioned_image(image, ["<b>RPN scores</b> · P4", "second line"], scale=2.0)
    assert out.width() == 200 and out.height() > 100 + 2 * 2 * 10   # two lines at 2x
    assert out.pixelColor(5, 5) == QColor(255, 0, 0)                 # the picture, unchanged
    colours = {out.pixelColor(x, y).rgb() for x in range(0, 200, 2)
               for y in range(100, out.height(), 2)}
    assert BACKGROUND.rgb() in colours and len(colours) > 3           # text drawn on it
    assert captioned_image(image, []) is image
