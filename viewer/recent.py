"""Recent files and the last folder used (persisted with QSettings: file dialogs start there),
and next / previous image in the same folder."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "mrcnn"
APPLICATION = "mrcnn-viewer"
RECENT_KEY = "recent/files"
FOLDER_KEY = "recent/folder"   # the folder of the last file opened or chosen in a dialog
MAX_RECENT = 10
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
TRACE_SUFFIXES = (".npz",)


def default_settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


class RecentFiles:
    """Most recently opened files first, at most MAX_RECENT, stored in ``settings``."""

    def __init__(self, settings: QSettings | None = None):
        self.settings = settings if settings is not None else default_settings()

    def paths(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):  # QSettings returns a lone string for one-item lists
            value = [value]
        return [str(v) for v in (value or [])]

    def add(self, path) -> None:
        path = os.path.abspath(os.fspath(path))
        paths = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue(RECENT_KEY, paths[:MAX_RECENT])
        self.remember_folder(path)
        self.settings.sync()

    def last_folder(self) -> str:
        """The folder of the last file opened or chosen (kept across sessions), or "" when
        there is none or it no longer exists."""
        folder = str(self.settings.value(FOLDER_KEY, "") or "")
        return folder if folder and os.path.isdir(folder) else ""

    def remember_folder(self, path) -> None:
        """Remember ``path``'s folder (``path`` itself when it is a folder) for file dialogs."""
        path = os.path.abspath(os.fspath(path))
        self.settings.setValue(FOLDER_KEY, path if os.path.isdir(path) else os.path.dirname(path))

    def start_folder(self, current: str = "") -> str:
        """Where a file dialog opens: beside ``current`` (the path already in its field) when
        that folder exists, else the last folder used, else the working directory."""
        if current:
            folder = current if os.path.isdir(current) else os.path.dirname(current)
            if folder and os.path.isdir(folder):
                return os.path.abspath(folder)
        return self.last_folder() or os.getcwd()

    def remove(self, path) -> None:
        path = os.path.abspath(os.fspath(path))
        self.settings.setValue(RECENT_KEY, [p for p in self.paths() if p != path])

    def clear(self) -> None:
        self.settings.setValue(RECENT_KEY, [])
        self.settings.sync()


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def folder_images(path) -> list[Path]:
    """Image files in the folder of ``path``, sorted by name."""
    folder = Path(path).parent
    try:
        return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)),
                      key=lambda p: p.name.lower())
    except OSError:
        return []


def sibling_image(path, step: int):
    """The image ``step`` places after (negative: before) ``path`` in its folder, wrapping; None
    when the folder has no other image."""
    images = folder_images(path)
    current = Path(path).resolve()
    resolved = [p.resolve() for p in images]
    if not images or (len(images) == 1 and resolved[0] == current):
        return None
    index = resolved.index(current) if current in resolved else (-1 if step > 0 else 0)
    return images[(index + step) % len(images)]
