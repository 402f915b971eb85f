"""The compare window's PNG export: both sides' views as one image, each under its heading.

``render_side_by_side`` re-renders the two canvases (at ``PNG_SCALE`` times their on-screen
size); a side without a trace shows its empty-view hint instead (its error when it failed).
``save_side_by_side`` writes that image atomically (a temporary file, then a rename), raising an
OSError that names the path. No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

PNG_SCALE = 2               # the export re-renders both views at twice their on-screen size
BACKGROUND = QColor(30, 30, 34)


def render_side_by_side(sides, scale: int = PNG_SCALE) -> QImage:
    """``sides`` (CompareSide, left to right) as one image, each view under its heading."""
    views = [side.canvas.view for side in sides]
    width = max(max(v.width() for v in views), 2) * scale
    height = max(max(v.height() for v in views), 2) * scale
    header, gap = 26 * scale, 4 * scale
    image = QImage(len(views) * width + (len(views) - 1) * gap, height + header,
                   QImage.Format.Format_RGB32)
    image.fill(BACKGROUND)
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(painter.font())
        font.setPixelSize(14 * scale)
        painter.setFont(font)
        for index, (side, view) in enumerate(zip(sides, views)):
            left = index * (width + gap)
            painter.setPen(QColor(235, 235, 240))
            painter.drawText(QRectF(left + 8 * scale, 0, width - 16 * scale, header),
                             Qt.AlignmentFlag.AlignVCenter, side.heading)
            target = QRectF(left, header, width, height)
            if side.trace is not None:
                view.render(painter, target, view.viewport().rect())
            else:
                painter.setPen(QColor(255, 140, 140) if side.error else QColor(200, 200, 205))
                painter.drawText(target.adjusted(16 * scale, 0, -16 * scale, 0),
                                 Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                                 side.canvas.empty_hint.text())
    finally:
        painter.end()
    return image


def save_side_by_side(sides, path, scale: int = PNG_SCALE) -> Path:
    """Write ``render_side_by_side(sides, scale)`` to ``path`` as PNG; the path.

    Raises OSError naming ``path`` when its folder is missing or Qt cannot save; a failed write
    leaves no file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if not path.parent.is_dir():
            raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
        if not render_side_by_side(sides, scale).save(str(tmp), "PNG"):
            raise OSError(f"cannot write PNG {path}: Qt failed to save the image")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path
