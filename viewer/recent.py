"""Recent files (persisted with QSettings) and next / previous image in the same folder."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "mrcnn"
APPLICATION = "mrcnn-viewer"
RECENT_KEY = "recent/files"
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
        self.settings.sync()

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
