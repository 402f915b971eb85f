"""Text on and under the canvas: detection labels placed without collisions, and the legend
lines (box styles and class colours, the selection's lineage) as Qt rich text."""

from __future__ import annotations

import html

import pyqtgraph as pg

from viewer.panels.canvas_labels import place_labels
from viewer.panels.canvas_styles import STYLES, css, rgb_of

# Line drawn in the legend for each pen style, so "dotted orange" reads as it looks.
_PEN_GLYPHS = {"solid": "━━", "dash": "╍╍", "dot": "┅┅", "dashdot": "━┅"}


def glyph(style: str) -> str:
    """Two-character line sample of box style ``style`` ("class:<id>": a solid line)."""
    pen = "solid" if style.startswith("class:") else STYLES[style][2]
    return _PEN_GLYPHS.get(pen, "━━")


def _unbroken_details(text: str) -> str:
    """``text`` escaped, its " · level · score" details bound to what they describe: a wrapped
    line breaks between entries or inside a title, never in "score 0.27"."""
    title, *details = html.escape(text).split(" · ")
    return "&nbsp;·&nbsp;".join([title] + [part.replace(" ", "&nbsp;") for part in details])


def legend_html(entries, prefix: str = "") -> str:
    """Rich text of legend ``entries`` [(style, text)]: a coloured line sample before each."""
    parts = [f'<span style="color:{css(rgb_of(style))}">{glyph(style)}</span>&nbsp;'
             f"{_unbroken_details(text)}" for style, text in entries]
    return (html.escape(prefix) if prefix else "") + " &nbsp; ".join(parts)


class LabelLayer:
    """A pool of ``pg.TextItem`` labels over a view box, placed by ``place_labels``."""

    def __init__(self, view_box):
        self.vb = view_box
        self.items: list[pg.TextItem] = []
        self.labels: list = []          # (box, text, rgb) shown
        self.bounds = (0, 0)            # image (height, width)
        self.hidden = 0                 # labels with no free spot at this zoom

    def show(self, labels, bounds) -> None:
        """Show ``labels`` [(box [4], text, rgb)] (best first) in an image of ``bounds``."""
        self.labels, self.bounds = list(labels), bounds
        while len(self.items) < len(self.labels):
            item = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 160))
            item.setZValue(30)
            self.vb.addItem(item)
            self.items.append(item)
        for item, (_, text, rgb) in zip(self.items, self.labels):
            if getattr(item, "_key", None) != (text, rgb):
                item.setText(text, color=rgb)
                item._key = (text, rgb)
        for item in self.items[len(self.labels):]:
            item.setVisible(False)
        self.place()

    def place(self, *_) -> None:
        """(Re)place the labels for the current zoom: a label's size in image pixels changes
        with it."""
        if not self.labels:
            self.hidden = 0
            return
        pixel_w, pixel_h = self.vb.viewPixelSize()
        sizes = []
        for item in self.items[:len(self.labels)]:
            rect = item.textItem.boundingRect()
            sizes.append((rect.width() * abs(pixel_w), rect.height() * abs(pixel_h)))
        spots = place_labels([box for box, _, _ in self.labels], sizes, self.bounds)
        for item, spot in zip(self.items, spots):
            item.setVisible(spot is not None)
            if spot is not None:
                item.setPos(*spot)
        self.hidden = sum(spot is None for spot in spots)

    def visible_items(self) -> list:
        return [item for item in self.items[:len(self.labels)] if item.isVisible()]
