"""Exported view pictures that explain themselves: the view with its caption and legend below.

The caption lines are Qt rich text (the canvas's stage note, legend and selection line, coloured
line samples included), laid out by a ``QTextDocument`` under the rendered view on the canvas's
dark background.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QImage, QPainter, QTextDocument

from viewer.export import PNG_SCALE, render_widget, save_png

BACKGROUND = QColor(30, 30, 34)
TEXT_COLOUR = "rgb(225, 225, 230)"
MARGIN = 6  # pixels around the caption, before scaling


def caption_document(lines, width: float) -> QTextDocument:
    """The caption ``lines`` (rich text) laid out ``width`` pixels wide."""
    document = QTextDocument()
    document.setDocumentMargin(MARGIN)
    body = "<br>".join(lines)
    document.setHtml(f'<div style="color: {TEXT_COLOUR}">{body}</div>')
    document.setTextWidth(width)
    return document


def captioned_image(image: QImage, lines, scale: float = 1.0) -> QImage:
    """``image`` with the caption ``lines`` drawn below it (text ``scale`` x, as the image)."""
    lines = [line for line in lines if line]
    if not lines:
        return image
    document = caption_document(lines, image.width() / scale)
    caption_height = int(document.size().height() * scale) + 1
    out = QImage(image.width(), image.height() + caption_height, QImage.Format.Format_RGB32)
    out.fill(BACKGROUND)
    painter = QPainter(out)
    try:
        painter.drawImage(0, 0, image)
        painter.translate(0, image.height())
        painter.scale(scale, scale)
        document.drawContents(painter)
    finally:
        painter.end()
    return out


def export_captioned_png(widget, path, lines, scale: int = PNG_SCALE):
    """Write ``widget`` rendered at ``scale`` x with caption ``lines`` below it to ``path``."""
    image = render_widget(widget, scale)
    # A grabbed (not re-rendered) widget is at 1x whatever ``scale`` says.
    text_scale = image.width() / max(widget.width(), 1)
    return save_png(captioned_image(image, lines, text_scale), path, type(widget).__name__)
