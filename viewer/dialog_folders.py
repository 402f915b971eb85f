"""The folder a file dialog starts in: the last one the user chose (persisted with QSettings),
not wherever the program happened to be started."""

from __future__ import annotations

import os
from pathlib import Path

from viewer.recent import FOLDER_KEY

# One "last folder" for every dialog: the open dialogs (viewer.recent), the save dialogs and the
# training dialog's Browse buttons all start where the user last chose a file.
LAST_FOLDER_KEY = FOLDER_KEY


def last_folder(settings, fallback=None) -> str:
    """The folder of the last file chosen in a dialog, if it still exists; else ``fallback``
    (when it is a folder), else the home folder."""
    value = settings.value(LAST_FOLDER_KEY, "") if settings is not None else ""
    for folder in (value, fallback):
        if folder and os.path.isdir(str(folder)):
            return str(folder)
    return str(Path.home())


def remember_folder(settings, path) -> None:
    """Remember the folder of ``path`` (a file the user chose) for the next dialog."""
    if settings is None or not path:
        return
    settings.setValue(LAST_FOLDER_KEY, os.path.dirname(os.path.abspath(os.fspath(path))))
    settings.sync()
