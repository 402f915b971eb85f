"""The open document: which image, model, dataset row and trace the viewer shows, and the jobs
that produce them. Qt-light (a QObject with signals, no widgets), so the open -> trace -> panels
path runs and is tested without a window.

``Document`` owns the two job runners (tracing, and datasets that open beside a running trace),
the loaded model and its class names, the weight-statistics cache and the dataset image shown.
Tracing jobs all run on one long-lived model thread (``viewer.model_thread``): the model is
built, loaded and called there only; the Document keeps it as an opaque handle to give the
next job, never calling it.
Results go into the ``Session`` (trace, weight statistics, dataset, dataset row); what to tell
the user goes out as ``session.set_status`` / ``session.report_error``. The window adds menus,
docks and dialogs on top (``viewer.main_window``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Signal

from viewer.model_thread import ModelThreadRunner
from viewer.recent import TRACE_SUFFIXES, sibling_image
from viewer.weight_stats_cache import WeightStatsCache
from viewer.workers import DatasetWorker, JobRunner, ModelSpec, TraceWorker, describe_error


class Document(QObject):
    """Opens images, models, traces and datasets into ``session``.

    ``worker_factory(image_path, spec, model, class_names[, source=DatasetImage])`` -> a
    TraceWorker; ``dataset_worker_factory(spec)`` -> a DatasetWorker. Both are injectable, so
    tests trace without TensorFlow.
    """

    modelChanged = Signal(object)      # the ModelSpec now loaded
    datasetOpened = Signal(object)     # viewer.datasets.LoadedDataset, after it is in the session

    def __init__(self, session, recent, worker_factory=None, dataset_worker_factory=None,
                 parent=None):
        super().__init__(parent)
        self.session = session
        self.recent = recent
        self.worker_factory = worker_factory or TraceWorker
        self.dataset_worker_factory = dataset_worker_factory or DatasetWorker
        self.runner = ModelThreadRunner(self)
        self.dataset_runner = JobRunner(self)  # datasets open beside a running trace
        self.model_spec: ModelSpec | None = None
        self.model = None                 # the loaded MaskRCNN, handed to the next job
        self.class_names = None
        self.image_file: str | None = None  # the image file a model (re)traces, or None
        self.dataset_image = None         # viewer.datasets.DatasetImage shown, or None
        self.dataset_spec = None
        self.pending_stage: str | None = None  # stage to show once the next trace arrives
        self.stats = WeightStatsCache()
        self._job_spec: ModelSpec | None = None
        self._pending_dataset_image = None
        self._connect()
        app = QCoreApplication.instance()
        if app is not None:  # the model thread must end before Qt tears the application down
            app.aboutToQuit.connect(self.close)

    def _connect(self):
        session = self.session
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.failed.connect(session.report_error)
        self.runner.cancelled.connect(lambda: session.set_status("Cancelled."))
        self.runner.busyChanged.connect(session.set_busy)
        self.dataset_runner.progress.connect(self._on_progress)
        self.dataset_runner.finished.connect(self._on_dataset_loaded)
        self.dataset_runner.failed.connect(session.report_error)
        self.dataset_runner.busyChanged.connect(session.set_busy)

    def _on_progress(self, text):
        self.session.set_status(text if text.endswith("…") else f"{text}…")

    # ---- images and models ---------------------------------------------------------------

    def open_path(self, path) -> None:
        """Open an image or (by suffix) a saved trace."""
        if Path(path).suffix.lower() in TRACE_SUFFIXES:
            self.open_trace(path)
        else:
            self.open_image(path)

    def open_image(self, path, spec: ModelSpec | None = None) -> None:
        """Read (and, with a model, trace) ``path`` on the worker thread.

        The model: ``spec``, else the one a running job is loading, else the current one.
        """
        self.image_file = os.fspath(path)
        self.dataset_image = None
        self.session.select(None)  # the selected box belongs to the image being replaced
        self.session.set_dataset_row(None)
        self._start_job(self.image_file, self._model_for_next_job(spec))

    def set_model(self, spec: ModelSpec) -> None:
        """Load ``spec`` on the worker thread; traces the current image if there is one."""
        self.model = None
        self._start_job(self.image_file, spec, self.dataset_image)

    def cancel(self) -> None:
        """Stop the running trace job; its results are dropped."""
        if self.runner.is_busy():
            self.runner.cancel()

    def close(self, wait_ms: int = 10000) -> None:
        """Cancel every job, wait for them, and end the model thread (window close)."""
        self.dataset_runner.cancel()
        self.dataset_runner.wait(wait_ms)
        self.runner.shutdown(wait_ms)

    def _model_for_next_job(self, spec):
        if spec is not None:
            return spec
        return self._job_spec if self.runner.is_busy() and self._job_spec else self.model_spec

    def _start_job(self, image_path, spec, source=None):
        self._job_spec = spec
        model = self.model if spec is not None and spec == self.model_spec else None
        if source is not None:
            worker = self.worker_factory(image_path, spec, model, self.class_names, source=source)
        elif image_path is not None:
            worker = self.worker_factory(image_path, spec, model, self.class_names)
        else:
            worker = self.worker_factory(None, spec, None, None)
        if model is None and self.stats.get(spec) is not None:
            worker.stats_fn = False  # this model's statistics are known: skip the pass
        name = source.name if source is not None else \
            Path(image_path).name if image_path else spec.describe()
        self.session.set_status(f"Opening {name}…")
        self.runner.start(worker)

    def _on_job_finished(self, result):
        if result.model_spec is not None:
            self.model_spec, self.model = result.model_spec, result.model
            self.class_names = result.class_names
        stats = self.stats.update(result.model_spec, result.weight_stats)
        if stats is not None and stats is not self.session.weight_stats:
            self.session.set_weight_stats(stats)
        if result.model_spec is not None:
            self.modelChanged.emit(result.model_spec)
        if result.trace is None:  # a model loaded without an image
            self.session.set_status(f"Model {self.model_spec.describe()} loaded. Open an image "
                                    "(Ctrl+O).")
            return
        from_dataset = result.source is not None
        name = result.source.name if from_dataset else Path(result.image_path or "").name
        if result.image_path and not from_dataset:
            self.recent.add(result.image_path)  # dataset images reopen through their dataset
        self.session.set_trace(result.trace, image_path=result.image_path or name)
        self._apply_pending_stage()
        self.session.set_status(self._traced_status(result, name))

    def _traced_status(self, result, name) -> str:
        total = result.trace.meta.get("timings", {}).get("total")
        if self.model_spec is None:
            status = f"{name}: open a model (Ctrl+M) to trace it."
        else:
            took = f" in {total * 1000:.0f} ms" if total else ""
            status = f"Traced {name} with {self.model_spec.describe()}{took}."
        return status + (f" Note: {result.warning}." if result.warning else "")

    # ---- saved traces ----------------------------------------------------------------------

    def open_trace(self, path) -> bool:
        """Load a saved trace (.npz, numpy only); False and an error report on failure."""
        from mrcnn.trace_data import Trace

        try:
            trace = Trace.load(path)
            if "input" not in trace or "image" not in trace["input"]:
                raise ValueError(f"{path}: the trace has no 'input' image stage")
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported
            self.session.report_error(*describe_error(error, "trace"))
            return False
        self.cancel()
        self.dataset_image = None
        self.session.set_dataset_row(None)
        image_path = trace.meta.get("image_path") or None
        self.image_file = image_path if image_path and os.path.isfile(image_path) else None
        self.recent.add(path)
        self.session.set_trace(trace, image_path=image_path or os.fspath(path))
        self._apply_pending_stage()
        self.session.set_status(f"Opened trace {Path(path).name}.")
        return True

    def _apply_pending_stage(self):
        if self.pending_stage and self.pending_stage in self.session.stage_keys():
            self.session.set_stage(self.pending_stage)
        self.pending_stage = None

    def next_image(self, step: int) -> None:
        """Open the next (``step`` > 0) or previous image of the dataset or of the folder."""
        if self.dataset_image is not None:
            rows = len(self.dataset_image.dataset)
            self.open_dataset_image((self.dataset_image.row + step) % rows)
            return
        if not self.image_file:
            self.session.set_status("Open an image first: next / previous walk its folder.")
            return
        target = sibling_image(self.image_file, step)
        if target is None:
            self.session.set_status("No other image in this folder.")
            return
        self.open_image(target)

    # ---- datasets ---------------------------------------------------------------------------

    def open_dataset(self, spec, row: int | None = None, model: ModelSpec | None = None) -> None:
        """Load dataset ``spec`` (a DatasetSpec) on a worker thread; its list shows when done,
        then image ``row`` (if given) opens, traced with ``model`` (else the current model)."""
        self.dataset_spec = spec
        self._pending_dataset_image = (row, model) if row is not None else None
        self.session.set_status(f"Opening dataset {spec.describe()}…")
        self.dataset_runner.start(self.dataset_worker_factory(spec))

    def _on_dataset_loaded(self, dataset) -> None:
        self.session.set_dataset(dataset)
        self.datasetOpened.emit(dataset)
        self.session.set_status(f"Dataset {dataset.spec.describe()}: {len(dataset)} images, "
                                f"{len(dataset.class_names) - 1} classes. N / P walk it.")
        # Its first image (or the row asked for) opens at once, so N / P walk the dataset,
        # not the folder of an image shown before.
        pending, self._pending_dataset_image = self._pending_dataset_image, None
        row, model = pending if pending is not None else (0, None)
        self.open_dataset_image(min(max(row, 0), len(dataset) - 1), model)

    def open_dataset_image(self, row: int, spec: ModelSpec | None = None) -> None:
        """Open image ``row`` of the session's dataset with its ground truth (and trace it)."""
        from viewer.datasets import DatasetImage

        dataset = self.session.dataset
        if dataset is None or not 0 <= row < len(dataset):
            self.session.set_status("Open a dataset first (File > Open dataset…).")
            return
        self.dataset_image = DatasetImage(dataset, int(row))
        self.session.select(None)
        self.image_file = dataset.image_path(row)
        self.session.set_dataset_row(row)
        self._start_job(self.image_file, self._model_for_next_job(spec), self.dataset_image)
