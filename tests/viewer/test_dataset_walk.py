"""N / P after opening a dataset (issue 19 item 7): its first image opens at once and N / P walk
the dataset, not the folder of the image shown before; the shortcuts list says so."""

import numpy as np
import skimage.io

from viewer.datasets import DatasetSpec
from viewer.dialogs.shortcuts import SHORTCUTS, ShortcutsDialog

TIMEOUT_MS = 10000


def _idle(window):
    return not window.document.runner.is_busy() and not window.document.dataset_runner.is_busy()


def test_opening_a_dataset_opens_its_first_image_and_n_p_walk_it(window, qtbot, tmp_path):
    for name in ("a.png", "b.png", "c.png"):  # a folder N would walk before the fix
        skimage.io.imsave(tmp_path / name, np.full((40, 50, 3), 60, np.uint8),
                          check_contrast=False)
    window.open_image(tmp_path / "a.png")
    qtbot.waitUntil(lambda: window.session.trace is not None and _idle(window), timeout=TIMEOUT_MS)

    window.open_dataset(DatasetSpec("shapes", count=4, height=64, width=64, seed=3))
    qtbot.waitUntil(lambda: window.session.dataset_row == 0 and _idle(window), timeout=TIMEOUT_MS)
    dataset = window.session.dataset
    np.testing.assert_array_equal(window.session.trace.image, dataset.load_image(0))
    assert window.session.trace.meta["image_name"] == "shapes-3-0"
    assert window.dataset_panel.current_row() == 0

    qtbot.keyClick(window, "n")
    qtbot.waitUntil(lambda: window.session.dataset_row == 1 and _idle(window), timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(window.session.trace.image, dataset.load_image(1))
    qtbot.keyClick(window, "p")
    qtbot.keyClick(window, "p")  # wraps to the last image
    qtbot.waitUntil(lambda: window.session.dataset_row == 3 and _idle(window), timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(window.session.trace.image, dataset.load_image(3))

    # A file opened after the dataset: N / P walk its folder again.
    window.open_image(tmp_path / "a.png")
    qtbot.waitUntil(lambda: window.session.dataset_row is None and _idle(window),
                    timeout=TIMEOUT_MS)
    qtbot.keyClick(window, "n")
    qtbot.waitUntil(lambda: window.document.image_file == str(tmp_path / "b.png")
                    and _idle(window), timeout=TIMEOUT_MS)


def test_shortcuts_list_says_n_p_walk_the_dataset_else_the_folder(qtbot):
    actions = dict(SHORTCUTS)
    for keys in ("N  or  Ctrl+Right", "P  or  Ctrl+Left"):
        assert "dataset" in actions[keys] and "folder" in actions[keys]
    dialog = ShortcutsDialog()
    qtbot.addWidget(dialog)
    shown = [dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())]
    assert actions["N  or  Ctrl+Right"] in shown and any("Open dataset" in t for t in shown)
