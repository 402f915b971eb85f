"""Activations panel: a layer tree, a paged channel grid, and one channel large with its range.

Only the selected layer is touched, and only the visible page of its channels is rendered to
thumbnails (a ResNet C2 map has 256 channels, P2 maps are large): switching layers or pages costs
one page of small images, never the whole trace.
"""

from __future__ import annotations

import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QSplitter, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from viewer.export import export_widget_png
from viewer.panels.kit import SessionPanel

pg.setConfigOptions(imageAxisOrder="row-major")

CHANNELS_PER_PAGE = 64
THUMBNAIL_SIZE = 48  # pixels; 7 columns, 4 rows of them in a 450 px wide dock at 1600x1000
# Heights of layer tree : channel grid : large view, as shares of the panel (the large view
# took most of it and left the tree ~5 rows, the grid 2).
SPLIT_SHARES = (28, 38, 34)
COLORMAP = "viridis"
LAYER_ROLE = Qt.UserRole
CHANNEL_ROLE = Qt.UserRole

# Tree groups, matched on matterport layer names (res2c_out, fpn_p3, ...) or short names (C2, P3).
GROUPS = (
    ("Backbone (C2-C5)", re.compile(r"^(c\d|conv1|bn_conv1|res\d|bn\d)", re.IGNORECASE)),
    ("FPN (P2-P6)", re.compile(r"^(p\d|fpn_)", re.IGNORECASE)),
)
OTHER_GROUP = "Other"


def group_of(layer: str) -> str:
    """Tree group of an activation layer name."""
    for title, pattern in GROUPS:
        if pattern.match(layer):
            return title
    return OTHER_GROUP


def _natural_key(name: str):
    """Sort res2c before res10a and fpn_p2 before fpn_p10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def channel_to_rgb(channel: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """[h, w, 3] uint8 of one [h, w] channel normalised to its own min..max through ``lut``."""
    values = np.asarray(channel, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape + (3,), np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    span = high - low if high > low else 1.0
    index = np.clip((np.where(finite, values, low) - low) / span * 255.0, 0, 255).astype(np.uint8)
    return lut[index]


def _rgb_pixmap(rgb: np.ndarray, size: int) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(size, size, Qt.KeepAspectRatio, Qt.FastTransformation)


class ActivationsPanel(SessionPanel):
    """Browse ``activations/<layer>`` stages of the session's trace, one page of channels at a time."""

    def __init__(self, session, parent=None):
        super().__init__(session, "No activations in this trace.\nTrace an image with activation "
                                  "layers selected to browse feature maps here.", parent)
        self.layer: str | None = None       # view state: what this panel shows, not session state
        self.page = 0
        self.channel: int | None = None
        self.channel_range: tuple[float, float, float] | None = None  # min, max, mean
        self._lut = (pg.colormap.get(COLORMAP).getLookupTable(0.0, 1.0, 256)[:, :3]
                     .astype(np.uint8))
        self.set_content(self._build())
        self.follow(session.traceChanged, self._on_trace_changed, lambda: session.trace)
        self.sync()

    # ---- construction --------------------------------------------------------------------

    def _build(self) -> QWidget:
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Layer", "Shape (h x w x c)"])
        self.tree.itemSelectionChanged.connect(self._on_tree_selection)

        # Layers, channel grid and the large view stacked top to bottom: the panel is docked in
        # a tall, narrow column beside the canvas.
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self._build_grid())
        splitter.addWidget(self._build_large_view())
        for index, share in enumerate(SPLIT_SHARES):
            splitter.setStretchFactor(index, share)
        splitter.setSizes(list(SPLIT_SHARES))  # proportions: Qt scales them to the height
        splitter.setChildrenCollapsible(False)
        self.tree.setMinimumHeight(90)
        self.tree.setUniformRowHeights(True)
        self.splitter = splitter
        return splitter

    def _build_grid(self) -> QWidget:
        """The page of channel thumbnails and its page controls."""
        self.grid = QListWidget()
        self.grid.setMinimumHeight(THUMBNAIL_SIZE + 30)
        self.grid.setViewMode(QListWidget.IconMode)
        self.grid.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.grid.setResizeMode(QListWidget.Adjust)
        self.grid.setMovement(QListWidget.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(2)
        self.grid.currentItemChanged.connect(self._on_thumbnail_changed)

        self.prev_button = QPushButton("<")
        self.next_button = QPushButton(">")
        self.prev_button.setToolTip("Previous page of channels")
        self.next_button.setToolTip("Next page of channels")
        self.prev_button.clicked.connect(lambda: self.set_page(self.page - 1))
        self.next_button.clicked.connect(lambda: self.set_page(self.page + 1))
        self.page_label = QLabel()
        pager = QHBoxLayout()
        for button in (self.prev_button, self.next_button):
            button.setMaximumWidth(32)
        pager.addWidget(self.prev_button)
        self.page_label.setAlignment(Qt.AlignCenter)
        pager.addWidget(self.page_label, 1)
        pager.addWidget(self.next_button)
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.grid, 1)
        grid_layout.addLayout(pager)
        return grid_box

    def _build_large_view(self) -> QWidget:
        """One channel large with a histogram / colour-bar LUT, and its value range below."""
        # ViewBox + ImageItem + HistogramLUTItem: ImageView's ROI/time-line extras are not needed.
        self.image_view = pg.GraphicsLayoutWidget()
        self.image_box = self.image_view.addViewBox(lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem(colorMap=pg.colormap.get(COLORMAP))
        self.image_box.addItem(self.image_item)
        self.levels = pg.HistogramLUTItem()
        self.levels.setImageItem(self.image_item)
        self.levels.gradient.setColorMap(pg.colormap.get(COLORMAP))
        self.image_view.addItem(self.levels)
        self.range_label = QLabel("Click a channel to see it large.")
        self.range_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.range_label.setWordWrap(True)
        large_box = QWidget()
        large_layout = QVBoxLayout(large_box)
        large_layout.setContentsMargins(0, 0, 0, 0)
        large_layout.addWidget(self.image_view, 1)
        large_layout.addWidget(self.range_label)
        return large_box

    # ---- session -> view -----------------------------------------------------------------

    def _on_trace_changed(self, trace) -> None:
        layers = trace.activation_layers() if trace is not None else []
        self._previous = (self.layer, self.channel)
        self.tree.clear()
        self._clear_layer()
        if not layers:
            self.show_content(False)
            return
        groups: dict[str, QTreeWidgetItem] = {}
        for title in [g[0] for g in GROUPS] + [OTHER_GROUP]:
            members = sorted((l for l in layers if group_of(l) == title), key=_natural_key)
            if not members:
                continue
            groups[title] = QTreeWidgetItem(self.tree, [f"{title}", f"{len(members)} layers"])
            groups[title].setFlags(Qt.ItemIsEnabled)
            for layer in members:
                shape = trace[f"activations/{layer}"]["values"].shape
                item = QTreeWidgetItem(groups[title], [layer, " x ".join(map(str, shape))])
                item.setData(0, LAYER_ROLE, layer)
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        self.show_content(True)
        self._show_default(layers)

    def _show_default(self, layers) -> None:
        """Show the layer and channel shown before (when the new trace has them), else the
        first layer in tree order and its channel 0: the large view is never left empty."""
        previous_layer, previous_channel = self._previous
        ordered = [item.data(0, LAYER_ROLE) for item in self._layer_items()]
        layer = previous_layer if previous_layer in layers else (ordered or sorted(layers))[0]
        self.show_layer(layer)
        values = self._values()
        channels = values.shape[-1] if values is not None else 0
        if channels:
            channel = previous_channel if previous_layer == layer and previous_channel is not None \
                and previous_channel < channels else 0
            if channel // CHANNELS_PER_PAGE != self.page:
                self.set_page(channel // CHANNELS_PER_PAGE)
            self.show_channel(channel)

    def _layer_items(self):
        for group in range(self.tree.topLevelItemCount()):
            parent = self.tree.topLevelItem(group)
            for child in range(parent.childCount()):
                yield parent.child(child)

    def _values(self) -> np.ndarray | None:
        """[h, w, c] activations of the shown layer (a view into the trace, never copied)."""
        trace = self.session.trace
        if trace is None or self.layer is None or f"activations/{self.layer}" not in trace:
            return None
        values = trace[f"activations/{self.layer}"]["values"]
        if values.ndim == 4:  # a stray batch axis: [1, h, w, c]
            return values[0]
        return values[None] if values.ndim == 2 else values

    # ---- user -> view --------------------------------------------------------------------

    def _on_tree_selection(self) -> None:
        items = self.tree.selectedItems()
        layer = items[0].data(0, LAYER_ROLE) if items else None
        if layer:
            self.show_layer(layer)

    def show_layer(self, layer: str) -> None:
        """Show ``layer``'s first page of channels (selects it in the tree too)."""
        trace = self.session.trace
        if trace is None or f"activations/{layer}" not in trace:
            raise KeyError(f"trace has no activations for layer {layer!r}")
        if layer != self.layer:
            self._clear_layer()
            self.layer = layer
            self._select_tree_item(layer)
            self.set_page(0)
            if self._values() is not None and self._values().shape[-1]:
                self.show_channel(0)

    def _select_tree_item(self, layer: str) -> None:
        for item in self.tree.findItems(layer, Qt.MatchExactly | Qt.MatchRecursive, 0):
            if item.data(0, LAYER_ROLE) == layer and not item.isSelected():
                self.tree.blockSignals(True)
                self.tree.setCurrentItem(item)
                self.tree.blockSignals(False)

    def page_count(self) -> int:
        values = self._values()
        return 0 if values is None else max(1, -(-values.shape[-1] // CHANNELS_PER_PAGE))

    def set_page(self, page: int) -> None:
        """Render thumbnails for page ``page`` (clamped) of the shown layer, and only that page."""
        values = self._values()
        if values is None:
            return
        self.page = max(0, min(self.page_count() - 1, page))
        first = self.page * CHANNELS_PER_PAGE
        last = min(values.shape[-1], first + CHANNELS_PER_PAGE)
        self.grid.blockSignals(True)
        self.grid.clear()
        for channel in range(first, last):
            pixmap = _rgb_pixmap(channel_to_rgb(values[:, :, channel], self._lut), THUMBNAIL_SIZE)
            item = QListWidgetItem(QIcon(pixmap), str(channel))
            item.setData(CHANNEL_ROLE, channel)
            item.setToolTip(f"{self.layer} channel {channel}")
            self.grid.addItem(item)
        self.grid.blockSignals(False)
        self.page_label.setText(f"{first}-{last - 1} of {values.shape[-1]}  "
                                f"({self.page + 1}/{self.page_count()})")
        self.page_label.setToolTip(f"channels {first}-{last - 1} of {values.shape[-1]}, "
                                   f"page {self.page + 1} of {self.page_count()}")
        self.prev_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page < self.page_count() - 1)

    def rendered_thumbnails(self) -> int:
        """Number of channel thumbnails currently rendered (the visible page only)."""
        return self.grid.count()

    def _on_thumbnail_changed(self, item, _previous=None) -> None:
        if item is not None:
            self.show_channel(int(item.data(CHANNEL_ROLE)))

    def show_channel(self, channel: int) -> None:
        """Show ``channel`` of the shown layer large, with its min / max / mean in the label."""
        values = self._values()
        if values is None:
            return
        if not 0 <= channel < values.shape[-1]:
            raise IndexError(f"layer {self.layer} has {values.shape[-1]} channels; got {channel}")
        plane = values[:, :, channel]
        self.channel = channel
        self._highlight_thumbnail(channel)
        self.channel_range = (float(plane.min()), float(plane.max()),
                              float(plane.astype(np.float64).mean()))
        self.image_item.setImage(plane.astype(np.float32), autoLevels=True)
        self.image_box.autoRange(padding=0)
        low, high, mean = self.channel_range
        self.range_label.setText(f"{self.layer} channel {channel} ({plane.shape[0]} x "
                                 f"{plane.shape[1]}): min {low:.4g}  max {high:.4g}  "
                                 f"mean {mean:.4g}")

    def _highlight_thumbnail(self, channel: int) -> None:
        row = channel - self.page * CHANNELS_PER_PAGE
        if 0 <= row < self.grid.count() and self.grid.currentRow() != row:
            self.grid.blockSignals(True)
            self.grid.setCurrentRow(row)
            self.grid.blockSignals(False)

    def _clear_layer(self) -> None:
        self.layer, self.page, self.channel, self.channel_range = None, 0, None, None
        self.grid.clear()
        self.page_label.setText("")
        self.prev_button.setEnabled(False)
        self.next_button.setEnabled(False)
        self.image_item.clear()
        self.range_label.setText("Click a channel to see it large.")

    def export_png(self, path):
        """Write the panel as shown to ``path`` (PNG)."""
        return export_widget_png(self, path)
