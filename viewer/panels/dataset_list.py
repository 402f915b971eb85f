"""Dataset panel: the images of the open dataset; choosing one opens it with its ground truth.

A list model reads labels on demand, so a COCO split with 100k images lists at once. The panel
follows ``Session.dataset`` / ``dataset_row`` and asks for an image through ``imageActivated``;
the window does the opening (on its worker thread).
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListView, QVBoxLayout, QWidget

from viewer.panels.kit import SessionPanel


class DatasetImagesModel(QAbstractListModel):
    """One row per dataset image; the label is built when Qt asks for it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset = None

    def set_dataset(self, dataset) -> None:
        self.beginResetModel()
        self.dataset = dataset
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() or self.dataset is None else len(self.dataset)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.dataset is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.dataset.label(index.row())
        if role == Qt.ItemDataRole.ToolTipRole:
            path = self.dataset.image_path(index.row())
            return path or "generated image (no file)"
        return None


class DatasetPanel(SessionPanel):
    """The open dataset's image list; selecting a row emits ``imageActivated(row)``."""

    imageActivated = Signal(int)

    def __init__(self, session, parent=None):
        super().__init__(session, "No dataset open.\nFile > Open dataset… (COCO JSON + images, "
                                  "or generated shapes) to browse images with their ground "
                                  "truth.", parent)
        self.model = DatasetImagesModel(self)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setUniformItemSizes(True)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.selectionModel().currentRowChanged.connect(self._on_current_row)
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(4, 2, 0, 0)
        page_layout.addWidget(self.title)
        page_layout.addWidget(self.list, 1)
        self.set_content(page)
        self._syncing = False
        self.follow(session.datasetChanged, self._on_dataset, lambda: session.dataset)
        session.datasetRowChanged.connect(self._on_row)
        self.sync()

    def _on_dataset(self, dataset) -> None:
        self._syncing = True
        self.model.set_dataset(dataset)
        self._syncing = False
        self.show_content(dataset is not None)
        if dataset is not None:
            names = ", ".join(dataset.class_names[1:9])
            more = len(dataset.class_names) - 9
            names += f" and {more} more" if more > 0 else ""
            self.title.setText(f"{dataset.spec.describe()}: {len(dataset)} images, "
                               f"{len(dataset.class_names) - 1} classes ({names})")
            self.title.setToolTip(", ".join(dataset.class_names))

    def _on_row(self, row) -> None:
        """Follow the session: select the shown image's row without re-opening it."""
        self._syncing = True
        selection = self.list.selectionModel()
        if row is None or row >= self.model.rowCount():
            selection.clear()
        else:
            index = self.model.index(row)
            selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.list.scrollTo(index)
        self._syncing = False

    def _on_current_row(self, current, _previous=None) -> None:
        if not self._syncing and current.isValid():
            self.imageActivated.emit(current.row())

    def current_row(self) -> int | None:
        index = self.list.currentIndex()
        return index.row() if index.isValid() else None
