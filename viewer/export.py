"""Export what the viewer shows: panel screenshots (PNG), the trace (.npz), detections (JSON).

Every writer is atomic (a temporary file next to the target, then a rename), so a failed export
never leaves a half-written file behind, and every failure is an OSError naming the path.
No TensorFlow here: detections come from a ``Trace``'s ``detections`` and ``masks`` stages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent

PNG_SCALE = 2  # pyqtgraph plots are re-rendered at twice their on-screen size (crisp in reports)


def _check_writable(path: Path) -> None:
    """Raise OSError naming ``path`` when its folder is missing or not writable."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable")


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _replace_atomically(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {e.strerror or e}") from e


# ---- PNG -----------------------------------------------------------------------------------

def _render_pyqtgraph(widget, scale: int):
    """QImage of a PlotWidget / GraphicsLayoutWidget via pyqtgraph's ImageExporter, or None."""
    import pyqtgraph as pg
    import pyqtgraph.exporters  # noqa: F401  (registers pg.exporters)

    if isinstance(widget, pg.PlotWidget):
        item = widget.getPlotItem()
    elif isinstance(widget, pg.GraphicsLayoutWidget):
        item = widget.scene()
    else:
        return None
    if widget.width() < 2 or widget.height() < 2:
        return None  # never laid out: the exporter would produce an empty image
    exporter = pg.exporters.ImageExporter(item)
    # The exporter keeps the aspect ratio and derives height from width.
    exporter.parameters()["width"] = int(max(widget.width(), 1) * scale)
    image = exporter.export(toBytes=True)
    return image if image is not None and not image.isNull() else None


def render_widget(widget, scale: int = PNG_SCALE):
    """QImage of ``widget``: pyqtgraph plots re-rendered at ``scale`` x, others as grabbed."""
    image = _render_pyqtgraph(widget, scale)
    if image is None:
        # Labels changed just before the export have queued layout requests: apply them first
        # so the picture shows the new text, not the old geometry.
        QCoreApplication.sendPostedEvents(None, QEvent.LayoutRequest)
        image = widget.grab().toImage()
    return image


def save_png(image, path, what: str = "image") -> Path:
    """Write QImage ``image`` as a PNG at ``path``, atomically; ValueError for an empty image,
    OSError naming ``path`` when it cannot be written."""
    path = Path(path)
    _check_writable(path)
    if image.isNull() or image.width() == 0 or image.height() == 0:
        raise ValueError(f"cannot export {what} to {path}: it has no size")
    tmp = _tmp_path(path)
    if not image.save(str(tmp), "PNG"):
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write PNG {path}: Qt failed to save the image")
    _replace_atomically(tmp, path)
    return path


def export_widget_png(widget, path, scale: int = PNG_SCALE) -> Path:
    """Write ``widget`` as a PNG at ``path``; pyqtgraph plots at ``scale`` x, others as grabbed.

    Raises OSError naming ``path`` when it cannot be written, ValueError for an empty widget.
    """
    _check_writable(Path(path))
    return save_png(render_widget(widget, scale), path, type(widget).__name__)


# ---- trace ---------------------------------------------------------------------------------

def export_trace(trace, path) -> Path:
    """Save ``trace`` as .npz at ``path`` (suffix forced to .npz); returns the written path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    _check_writable(path)
    try:
        return trace.save(path)
    except OSError as e:
        raise OSError(f"cannot write trace {path}: {e.strerror or e}") from e


# ---- detections ----------------------------------------------------------------------------

def encode_mask_rle(mask: np.ndarray) -> dict:
    """COCO RLE of one [H, W] mask: {"size": [H, W], "counts": str} (pycocotools compressed)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts)}


def detections_to_dicts(trace, score_threshold: float = 0.0) -> list[dict]:
    """One dict per detection with score >= ``score_threshold``.

    Keys: ``box`` [y1, x1, y2, x2] original-image pixels, ``class_id``, ``class_name``,
    ``score``, ``mask_area`` (pixels) and ``mask_rle`` (see ``encode_mask_rle``); the last two are
    None when the trace has no ``masks`` stage.
    """
    if "detections" not in trace:
        raise ValueError("the trace has no 'detections' stage; run detection before exporting")
    detections = trace["detections"]
    masks = trace["masks"]["masks"] if "masks" in trace else None
    names = trace.class_names
    out = []
    for i, (box, class_id, score) in enumerate(zip(np.asarray(detections["boxes"]).reshape(-1, 4),
                                                   detections["class_ids"], detections["scores"])):
        if float(score) < score_threshold:
            continue
        class_id = int(class_id)
        item = {"box": [float(v) for v in box], "class_id": class_id,
                "class_name": names[class_id] if 0 <= class_id < len(names) else f"class {class_id}",
                "score": float(score), "mask_area": None, "mask_rle": None}
        if masks is not None and i < masks.shape[-1]:
            mask = masks[:, :, i] > 0.5 if masks.dtype != bool else masks[:, :, i]
            item["mask_area"] = int(mask.sum())
            item["mask_rle"] = encode_mask_rle(mask)
        out.append(item)
    return out


def export_detections_json(trace, path, score_threshold: float = 0.0) -> Path:
    """Write ``detections_to_dicts(trace, score_threshold)`` as JSON at ``path``; atomic."""
    path = Path(path)
    _check_writable(path)
    text = json.dumps(detections_to_dicts(trace, score_threshold), indent=1)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text, encoding="utf8")
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write detections JSON {path}: {e.strerror or e}") from e
    _replace_atomically(tmp, path)
    return path
