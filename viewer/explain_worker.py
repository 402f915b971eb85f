"""Saliency maps for the Explain panel, computed on a worker thread (run by a JobRunner).

``ExplainWorker`` has TraceWorker's signals (progress, finished, failed, cancelled, done) and
``cancel()``, so ``viewer.workers.JobRunner`` runs it and drops stale results. TensorFlow is
imported only inside ``run`` through the default ``explain_fn`` (``mrcnn.explain.explain``);
tests inject a numpy function instead.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from viewer.workers import describe_error

AUTO_LAYER = ""  # the detection's own FPN level


@dataclass(frozen=True)
class ExplainRequest:
    """One map to compute: which detection (or GT object, ``gt``) of which trace, and how."""

    detection: int | None
    method: str = "gradcam"
    layer: str = AUTO_LAYER
    target: str = "class"
    num_masks: int = 500
    gt: int | None = None  # a GT object instead of a detection (``mrcnn.explain_gt``)

    def key(self) -> tuple:
        """Cache key: (subject, method, layer, target) (+ masks for D-RISE)."""
        extra = (self.num_masks,) if self.method == "drise" else ()
        return (self.subject(), self.method, self.layer, self.target, *extra)

    def subject(self) -> tuple[str, int]:
        """("detection", k) or ("gt", g)."""
        return ("gt", self.gt) if self.gt is not None else ("detection", self.detection)


@dataclass
class ExplainResult:
    request: ExplainRequest
    trace: object           # the Trace it explains (stale when the session moved on)
    saliency: object        # [H, W] float32 map, original-image pixels
    seconds: float


def default_explain(model, image, detection, **options):
    from mrcnn.explain import explain

    return explain(model, image, detection, **options)


def describe_explain_error(error: BaseException) -> tuple[str, str]:
    """(title, message): ExplainError subclasses say what to change; others as describe_error."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if "ExplainError" in names:
        return ("Cannot explain this selection",
                f"{error}\n\nWhat to do: pick another detection or GT object, layer or method.")
    return describe_error(error)


class ExplainWorker(QObject):
    """Computes one ExplainRequest for ``trace`` with ``model``; one job, then done."""

    progress = Signal(str)
    finished = Signal(object)      # ExplainResult
    failed = Signal(str, str)      # title, message
    cancelled = Signal()
    done = Signal()

    def __init__(self, model, trace, request: ExplainRequest, explain_fn=None):
        super().__init__()
        self.model = model
        self.trace = trace
        self.request = request
        self.explain_fn = explain_fn or default_explain
        self.model_store = None  # set by the model thread's runner: resolves a ModelHandle
        self._cancel_requested = False

    def cancel(self) -> None:
        """Stop D-RISE before its next batch; any result is dropped (safe from any thread)."""
        self._cancel_requested = True

    @Slot()
    def run(self) -> None:
        request = self.request
        try:
            kind, index = request.subject()
            self.progress.emit(f"Explaining {'GT object' if kind == 'gt' else 'detection'} "
                               f"{index} ({request.method})…")
            options = dict(method=request.method, layer=request.layer or None,
                           target=request.target, trace=self.trace)
            if request.gt is not None:
                options["gt"] = request.gt
            if request.method == "drise":
                options.update(num_masks=request.num_masks, progress=self._on_progress,
                               cancel=lambda: self._cancel_requested)
            start = time.perf_counter()
            model = self.model_store.resolve(self.model) if self.model_store else self.model
            if model is None:
                raise RuntimeError("the model was replaced while this explanation waited; "
                                   "press Explain again")
            saliency = self.explain_fn(model, self.trace.image, request.detection, **options)
            if self._cancel_requested:
                self.cancelled.emit()
                return
            self.finished.emit(ExplainResult(request, self.trace, saliency,
                                             time.perf_counter() - start))
        except BaseException as error:  # noqa: BLE001 - any failure is shown in the panel
            if type(error).__name__ == "ExplainCancelled":
                self.cancelled.emit()
            else:
                traceback.print_exc(file=sys.stderr)
                self.failed.emit(*describe_explain_error(error))
        finally:
            self.done.emit()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.emit(f"D-RISE: {done}/{total} masks")
