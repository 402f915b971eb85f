"""The image on screen, as something a TraceWorker can trace again: a file, a dataset row (with
its ground truth), or - for a saved trace whose image file is gone - the trace's own pixels and
ground truth. Qt-free; the compare window traces it with two checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, eq=False)
class TraceImage:
    """The input image of a ``trace`` (mrcnn.trace_data.Trace) and its ground truth, read like a
    ``viewer.datasets.DatasetImage`` (``name``, ``class_names``, ``load_image``,
    ``ground_truth``)."""

    trace: object
    name: str

    @property
    def class_names(self) -> list[str]:
        return self.trace.class_names

    def load_image(self):
        return self.trace.image

    def ground_truth(self):
        """The trace's ``gt`` stage (boxes [G, 4] pixels, class_ids [G], masks), or None."""
        gt = self.trace.stages.get("gt") if "gt" in self.trace else None
        return dict(gt) if gt else None


@dataclass(frozen=True)
class ShownImage:
    """What to trace again: ``image_path`` (a file) and/or ``source`` (a dataset row or a
    TraceImage, read instead of the file), and the ``name`` titles use."""

    image_path: str | None
    source: object
    name: str


def shown_image(document, session) -> ShownImage | None:
    """The image the window shows: the dataset row (with its ground truth), else the image file,
    else the shown trace's pixels; None when nothing is shown."""
    if document.dataset_image is not None:
        source = document.dataset_image
        return ShownImage(document.image_file, source, source.name)
    if document.image_file:  # Document.open_trace keeps it only when the file exists
        return ShownImage(document.image_file, None, Path(document.image_file).name)
    trace = session.trace
    if trace is not None and "input" in trace:
        name = Path(session.image_path or "trace").name
        return ShownImage(None, TraceImage(trace, name), name)
    return None
