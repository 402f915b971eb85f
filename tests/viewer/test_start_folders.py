"""File dialogs start in the last folder used, kept across sessions, not in the folder the
viewer was started from (issue 19, smaller points)."""

import numpy as np
import skimage.io
from PySide6.QtWidgets import QFileDialog

from viewer.dialogs.open_dataset import OpenDatasetDialog
from viewer.dialogs.open_model import OpenModelDialog
from viewer.recent import RecentFiles


def _answering(monkeypatch, answers):
    """QFileDialog file / folder choosers that record where they start and answer in turn."""
    starts = []

    def choose_file(parent, title, start, *args, **kwargs):
        starts.append(start)
        return answers.pop(0), ""

    def choose_folder(parent, title, start, *args, **kwargs):
        starts.append(start)
        return answers.pop(0)

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(choose_file))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(choose_folder))
    return starts


def test_file_dialogs_start_in_the_last_folder_used(window, qtbot, settings, tmp_path,
                                                    monkeypatch):
    install, photos, models, data = (tmp_path / n for n in ("install", "photos", "models", "data"))
    for folder in (install, photos, models, data):
        folder.mkdir()
    monkeypatch.chdir(install)
    skimage.io.imsave(photos / "a.png", np.zeros((32, 32, 3), np.uint8), check_contrast=False)
    (models / "w.h5").write_bytes(b"")
    starts = _answering(monkeypatch, [str(photos / "a.png"), "", str(models / "w.h5"),
                                      str(data)])

    window.open_image_dialog()   # nothing used yet: the working directory
    window.open_trace_dialog()   # cancelled, but it started where the image was chosen
    assert starts == [str(install), str(photos)]
    # Kept across sessions: a new window's settings know the folder.
    assert RecentFiles(settings).last_folder() == str(photos)

    model_dialog = OpenModelDialog(window, recent=window.recent)
    qtbot.addWidget(model_dialog)
    model_dialog.weights_edit.clear()
    model_dialog._browse(model_dialog.weights_edit, "HDF5 (*.h5)")
    assert starts[2] == str(photos) and model_dialog.weights_edit.text() == str(models / "w.h5")
    assert window.recent.last_folder() == str(models)

    dataset_dialog = OpenDatasetDialog(window, recent=window.recent)
    qtbot.addWidget(dataset_dialog)
    dataset_dialog.image_dir_edit.clear()
    dataset_dialog._browse(dataset_dialog.image_dir_edit, True)
    assert starts[3] == str(models) and window.recent.last_folder() == str(data)


def test_start_folder_prefers_the_field_then_the_last_folder(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recent = RecentFiles(settings)
    assert recent.last_folder() == "" and recent.start_folder() == str(tmp_path)
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    recent.add(tmp_path / "runs" / "r1" / "trace.npz")  # opening a file remembers its folder
    assert recent.start_folder() == str(tmp_path / "runs" / "r1")
    assert recent.start_folder(str(tmp_path / "runs" / "x.h5")) == str(tmp_path / "runs")
    assert recent.start_folder("/no/such/folder/x.h5") == str(tmp_path / "runs" / "r1")
    (tmp_path / "runs" / "r1").rmdir()  # a folder that is gone is forgotten
    assert recent.last_folder() == "" and recent.start_folder() == str(tmp_path)


def test_training_dialog_browse_buttons_share_the_last_folder(qtbot, settings, tmp_path,
                                                              monkeypatch):
    """The training dialog's Browse… buttons start where any dialog last chose a file (not the
    working directory), and a folder chosen there is remembered as itself."""
    from PySide6.QtWidgets import QPushButton

    from viewer.dialogs.train_dialog import TrainDialog
    from viewer.training.devices import Device

    install, labels, images = tmp_path / "install", tmp_path / "labels", tmp_path / "images"
    for folder in (install, labels, images):
        folder.mkdir()
    monkeypatch.chdir(install)
    RecentFiles(settings).remember_folder(labels / "earlier.json")  # e.g. chosen in Open dataset
    starts = _answering(monkeypatch, [str(labels / "train.json"), str(images)])
    dialog = TrainDialog(runs_root=str(tmp_path / "runs"), settings=settings,
                         devices=[Device("CPU")], demo_spec=None)
    qtbot.addWidget(dialog)

    def browse_button(edit):
        return [b for b in edit.parentWidget().findChildren(QPushButton)][0]

    dialog.train_json.clear()
    browse_button(dialog.train_json).click()
    assert starts == [str(labels)] and dialog.train_json.text() == str(labels / "train.json")
    dialog.train_images.clear()
    browse_button(dialog.train_images).click()
    assert starts[1] == str(labels) and dialog.train_images.text() == str(images)
    assert RecentFiles(settings).last_folder() == str(images)
