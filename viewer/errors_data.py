"""The Errors browser's data: the rows of an ``mrcnn analyze`` report and their filters.

Qt-free and TensorFlow-free. ``load_report(path)`` reads ``report.json`` (a folder holding one
works too) into an ``ErrorsReport`` with one ``ErrorRow`` per GT object and per detection of
every analysed image; ``filter_rows`` keeps those matching a cause, a false-positive type, a
class and a size. A row knows the viewer stage to open it at and, when the analysis saved
traces (``--save-traces``), the trace file to open without TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mrcnn.diagnose import DETECTION_VERDICTS, GT_VERDICTS, SIZES, Diagnosis, coco_size
from mrcnn.diagnose import explain_detection, explain_gt
from viewer.diagnosis_view import view_stage_of

GT_KIND, DETECTION_KIND = "gt", "detection"
# "show" filter values.
SHOW_ERRORS, SHOW_MISSES, SHOW_FALSE_POSITIVES, SHOW_ALL = "errors", "misses", "fps", "all"


class ReportError(ValueError):
    """The file is not a readable ``mrcnn analyze`` report (the message says why)."""


@dataclass(frozen=True)
class ErrorRow:
    """One GT object (``kind`` "gt") or detection (``kind`` "detection") of one image."""

    image_id: int
    reference: str
    ap50: float
    kind: str
    index: int            # row of the trace's ``gt`` / ``detections`` stage
    class_id: int
    class_name: str
    size: str             # COCO size of the GT / detection box; "" unknown
    verdict: str          # GT cause ("detected", ...) or detection type ("true_positive", ...)
    iou: float | None     # box IoU with the matched detection / related GT
    score: float | None   # detections only
    stage: str            # viewer stage to open the image at
    explanation: str

    @property
    def is_error(self) -> bool:
        return self.verdict not in ("detected", "true_positive")


@dataclass
class ErrorsReport:
    """A loaded report: its dict, where it came from, its rows and how to reopen its images."""

    path: Path
    data: dict
    rows: list = field(default_factory=list)
    class_names: list = field(default_factory=list)

    @property
    def dataset(self) -> dict | None:
        """The analysed dataset as ``DatasetSpec`` fields, when the report names it."""
        return self.data.get("dataset")

    def trace_file(self, image_id: int) -> Path | None:
        """The saved trace of ``image_id`` (``--save-traces``), or None."""
        name = f"{int(image_id):06d}.npz"
        for folder in (self.data.get("traces_dir"), self.path.parent / "traces"):
            if folder and (Path(folder) / name).is_file():
                return Path(folder) / name
        return None

    def summary(self) -> str:
        data = self.data
        causes = data.get("causes", {}).get("counts", {})
        fps = data.get("fp_types", {}).get("counts", {})
        missed = sum(n for c, n in causes.items() if c != "detected")
        false = sum(n for t, n in fps.items() if t != "true_positive")
        partial = " (interrupted: partial)" if data.get("interrupted") else ""
        failed = len(data.get("failures", []))
        return (f"{data.get('images', 0)} images{partial}, mAP50 {data.get('mAP50', 0.0):.3f}: "
                f"{data.get('gt', 0)} GT objects, {missed} missed; {data.get('detections', 0)} "
                f"detections, {false} false positives"
                + (f"; {failed} images failed" if failed else ""))


def load_report(path) -> ErrorsReport:
    """Read ``report.json`` (or the folder holding it) into an ``ErrorsReport``."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file (expected the report.json written by "
                          "mrcnn analyze --out DIR)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: not a readable JSON report ({error})") from None
    if not isinstance(data, dict) or "worst_images" not in data:
        raise ReportError(f"{path}: not an mrcnn analyze report (no 'worst_images' list)")
    names = list(data.get("confusion", {}).get("labels") or [])
    report = ErrorsReport(path=path, data=data, class_names=names)
    for record in data["worst_images"]:
        report.rows.extend(image_rows(record, names))
    return report


def image_rows(record: dict, class_names) -> list[ErrorRow]:
    """The GT rows, then the detection rows, of one ``worst_images`` record."""
    diagnosis = Diagnosis.from_dict(record["diagnosis"])
    common = {"image_id": int(record["image_id"]), "reference": str(record.get("reference", "")),
              "ap50": float(record.get("ap50", 0.0))}
    names = list(class_names)
    gt_ids = [v.class_id for v in diagnosis.gt]
    areas = record.get("detection_areas")
    rows = []
    for v in diagnosis.gt:
        rows.append(ErrorRow(**common, kind=GT_KIND, index=v.index, class_id=v.class_id,
                             class_name=_name(names, v.class_id), size=v.size, verdict=v.cause,
                             iou=v.box_iou if v.detection >= 0 else None, score=None,
                             stage=view_stage_of(v.cause), explanation=explain_gt(v, names)))
    for v in diagnosis.detections:
        size = coco_size(areas[v.index]) if areas and v.index < len(areas) else \
            diagnosis.gt[v.gt].size if 0 <= v.gt < len(diagnosis.gt) else ""
        rows.append(ErrorRow(**common, kind=DETECTION_KIND, index=v.index, class_id=v.class_id,
                             class_name=_name(names, v.class_id), size=size, verdict=v.type,
                             iou=v.box_iou if v.gt >= 0 else None, score=v.score,
                             stage="detections" if v.type != "true_positive" else "composite",
                             explanation=explain_detection(v, gt_ids, names)))
    return rows


def filter_rows(rows, show: str = SHOW_ERRORS, cause: str | None = None,
                fp_type: str | None = None, class_name: str | None = None,
                size: str | None = None) -> list[ErrorRow]:
    """Rows passing every filter given (None: any).

    ``show``: errors only (misses and false positives), misses, false positives, or all rows.
    ``cause`` keeps GT rows of that verdict and ``fp_type`` detection rows of that type; a
    cause alone hides the detections and a type alone the GT rows (both: either kind).
    ``class_name`` and ``size`` apply to both kinds.
    """
    if show not in (SHOW_ERRORS, SHOW_MISSES, SHOW_FALSE_POSITIVES, SHOW_ALL):
        raise ValueError(f"filter_rows: unknown show {show!r}")
    if cause is not None and cause not in GT_VERDICTS:
        raise ValueError(f"filter_rows: unknown cause {cause!r}; known: {', '.join(GT_VERDICTS)}")
    if fp_type is not None and fp_type not in DETECTION_VERDICTS:
        raise ValueError(f"filter_rows: unknown type {fp_type!r}; known: "
                         f"{', '.join(DETECTION_VERDICTS)}")
    if size is not None and size not in SIZES:
        raise ValueError(f"filter_rows: unknown size {size!r}; known: {', '.join(SIZES)}")
    kinds = {SHOW_MISSES: {GT_KIND}, SHOW_FALSE_POSITIVES: {DETECTION_KIND}}.get(
        show, {GT_KIND, DETECTION_KIND})
    if cause is not None or fp_type is not None:
        kinds &= {k for k, chosen in ((GT_KIND, cause), (DETECTION_KIND, fp_type)) if chosen}
    out = []
    for row in rows:
        if row.kind not in kinds:
            continue
        wanted = cause if row.kind == GT_KIND else fp_type
        if wanted is not None:
            if row.verdict != wanted:
                continue
        elif show != SHOW_ALL and not row.is_error:
            continue
        if class_name is not None and row.class_name != class_name:
            continue
        if size is not None and row.size != size:
            continue
        out.append(row)
    return out


def _name(names, class_id) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


def report_dir_default(out_root, dataset_name: str) -> str:
    """A fresh output folder for an analysis started from the viewer."""
    base = Path(out_root) / f"analyze-{dataset_name}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    return os.fspath(candidate)
