"""Model loading and tracing on a worker thread, cancellable between steps.

``TraceWorker`` is a QObject moved to a QThread by ``JobRunner``. It reports each step
(``progress``), then ``finished(TraceResult)``, ``failed(title, message)`` or ``cancelled()``.
TensorFlow (through ``mrcnn.model`` / ``mrcnn.trace``) is imported here, inside ``run`` on the
worker thread, never when the viewer starts. The loaders are injectable so tests run without TF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from viewer.error_messages import describe_error  # noqa: F401  (the jobs' failed dialogs)

DEMO_DIR = Path(__file__).resolve().parent.parent / "resources" / "demo"
LOADING_TF = "Loading TensorFlow…"


class Cancelled(Exception):
    """The user cancelled the job; its results are dropped."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to trace with: a weights file and optional config JSON / class names file."""

    weights: str = ""
    config: str = ""
    class_names: str = ""
    demo: bool = False
    # --precision of mrcnn: "fp32", "bf16", "fp16" or "auto" (COMPUTE_DTYPE of the model built).
    precision: str = "fp32"

    def describe(self) -> str:
        name = "built-in demo model" if self.demo else Path(self.weights).name
        return name if self.precision == "fp32" else f"{name} ({self.precision})"


def demo_model_spec(folder=DEMO_DIR) -> ModelSpec | None:
    """The built-in demo model (``resources/demo``: one .h5, config.json, class names), or None."""
    folder = Path(folder)
    weights = sorted(folder.glob("*.h5")) if folder.is_dir() else []
    if not weights:
        return None
    from mrcnn.model_files import find_config  # the one config-lookup rule (TF-free)

    config = find_config(weights[0])
    names = next((p for p in (folder / "class_names.txt", folder / "class_names.json")
                  if p.is_file()), None)
    return ModelSpec(weights=str(weights[0]), config=str(config) if config else "",
                     class_names=str(names) if names else "", demo=True)


@dataclass
class TraceResult:
    trace: object                 # mrcnn.trace_data.Trace
    image_path: str
    model: object = None          # the loaded MaskRCNN, reused by the next job
    model_spec: ModelSpec | None = None
    class_names: list | None = None
    weight_stats: list | None = field(default=None)
    warning: str = ""             # something the user should know, for the status bar
    source: object = None         # the viewer.datasets.DatasetImage traced, or None (a file)


# ---- default steps (lazy imports: TensorFlow only on the worker thread) -------------------

def read_image(path):
    """[H, W, 3] uint8; errors (ImageFileError) name the file."""
    from mrcnn.model_files import read_image as read_image_file

    return read_image_file(path)


def load_model(spec: ModelSpec, step):
    """(inference MaskRCNN with weights, class names or None); ``step(text)`` between steps."""
    from mrcnn.model_files import load_config, model_class_names, read_weight_shapes

    from mrcnn.checks.weights import check_loaded_weights, require_mask_rcnn_layers

    # A bad or foreign file fails here, before TensorFlow loads.
    require_mask_rcnn_layers(read_weight_shapes(spec.weights), spec.weights)
    config = load_config(spec.config or None, spec.weights, "viewer")
    from mrcnn.precision import apply_precision

    config = apply_precision(config, spec.precision)
    # The class names file given, else those of the run the weights come from (a checkpoint
    # of a viewer-started run), else defaults: the same rule as mrcnn detect / trace.
    names = model_class_names(spec.weights, config.NUM_CLASSES, spec.class_names or None)
    step(LOADING_TF)
    from mrcnn.model import MaskRCNN

    step("Building model")
    model = MaskRCNN("inference", config)
    step("Loading weights")
    check_loaded_weights(model.keras_model, model.load_weights(spec.weights))
    return model, names


def trace_image(model, image, class_names=None, gt=None):
    """Trace of ``image`` [H, W, 3]; ``gt`` (boxes, class_ids, masks in pixels) adds targets."""
    from mrcnn.trace import trace

    return trace(model, image, gt=gt, class_names=class_names)


def compute_weight_stats(model):
    from mrcnn.stats import stats_to_dicts, weight_stats

    # Plain dicts: what Session.weight_stats / the weights panel take.
    return stats_to_dicts(weight_stats(model))


def _described(error, step):
    """describe_error; the traceback on stderr only for unexpected errors or with --debug."""
    from mrcnn.checks import debug

    title, message = describe_error(error, step)
    debug.print_traceback(force=title == "Unexpected error")
    return title, message


# ---- the worker -----------------------------------------------------------------------------

class TraceWorker(QObject):
    """Reads an image, loads the model (unless given) and traces; one job, then done.

    ``image_path`` None: only load the model. ``model_spec`` None: only read the image (the
    trace then holds just the ``input`` stage, and ``gt``). ``stats_fn=False``: no weight
    statistics. ``source``: a dataset image (``viewer.datasets.DatasetImage``), traced with its
    ground truth and class names when they fit the model.
    """

    progress = Signal(str)
    finished = Signal(object)      # TraceResult
    failed = Signal(str, str)      # title, message
    cancelled = Signal()
    done = Signal()                # after any of the three above

    def __init__(self, image_path, model_spec: ModelSpec | None = None, model=None,
                 class_names=None, read_image_fn=None, load_model_fn=None, trace_fn=None,
                 stats_fn=None, source=None):
        super().__init__()
        self.source = source  # a viewer.datasets.DatasetImage: read instead of image_path
        self.image_path = None if image_path is None else os.fspath(image_path)
        self.model_spec = model_spec
        self.model = model
        self.class_names = class_names
        self.read_image_fn = read_image_fn or read_image
        self.load_model_fn = load_model_fn or load_model
        self.trace_fn = trace_fn or trace_image
        self.stats_fn = stats_fn if stats_fn is not None else compute_weight_stats
        self.model_store = None  # set by ModelThreadRunner: models stay on its thread
        self._cancel_requested = False

    def cancel(self) -> None:
        """Ask the job to stop at the next step boundary (safe from any thread)."""
        self._cancel_requested = True

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def step(self, text: str) -> None:
        """Report ``text`` as the current step; raises Cancelled if cancel was requested."""
        if self._cancel_requested:
            raise Cancelled()
        self.progress.emit(text)

    @Slot()
    def run(self) -> None:
        kind = "image"
        try:
            model = self.model_store.resolve(self.model) if self.model_store else self.model
            result = TraceResult(trace=None, image_path=self.image_path, model=model,
                                 model_spec=self.model_spec, class_names=self.class_names,
                                 source=self.source)
            image, gt = self._read_input()
            if self.model_spec is not None and result.model is None:
                kind = "weights"
                result.model, result.class_names = self.load_model_fn(self.model_spec, self.step)
                if self.stats_fn:
                    self.step("Computing weight statistics")
                    result.weight_stats = self.stats_fn(result.model)
            kind = ""
            if image is not None:
                result.trace = self._trace(result, image, gt)
                result.trace.meta["image_path"] = self.image_path
                if self.source is not None:
                    result.trace.meta["image_name"] = self.source.name
                else:
                    result.trace.meta.pop("image_name", None)
            self.step("Done")
            if self.model_store is not None and result.model is not None:
                result.model = self.model_store.keep(result.model)  # the GUI gets a handle
            self.finished.emit(result)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as error:  # noqa: BLE001 - any failure becomes a dialog
            self.failed.emit(*_described(error, kind))
        finally:
            self.done.emit()

    def _read_input(self):
        """(image [H, W, 3] or None, ground truth dict or None) from the file or dataset image."""
        if self.source is not None:
            self.step("Reading image and ground truth")
            return self.source.load_image(), self.source.ground_truth()
        if self.image_path is not None:
            self.step("Reading image")
            return self.read_image_fn(self.image_path), None
        return None, None

    def _trace(self, result, image, gt):
        """The trace of ``image`` (just its input and ground truth when there is no model)."""
        names = result.class_names
        if gt is not None:
            gt, names, result.warning = _gt_for_model(result.model, gt, self.source.class_names,
                                                      names)
        if self.model_spec is None:
            from mrcnn.trace_data import Trace

            stages = {"input": {"image": image}}
            if gt is not None:
                stages["gt"] = gt
            return Trace(stages=stages, meta={"class_names": names})
        self.step("Tracing image")
        if gt is None:
            return self.trace_fn(result.model, image, names)
        return self.trace_fn(result.model, image, names, gt=gt)


def _gt_for_model(model, gt, dataset_names, model_names):
    """(gt or None, class names, warning): the dataset's ground truth and names when its classes
    fit the model; otherwise no ground truth (targets need matching class ids) and a warning."""
    config = getattr(model, "config", None)
    num_classes = getattr(config, "NUM_CLASSES", None)
    if num_classes is None or num_classes == len(dataset_names):
        return gt, list(dataset_names), ""
    return None, model_names, (
        f"ground truth not used: the dataset has {len(dataset_names)} classes (with BG), the "
        f"model's NUM_CLASSES is {num_classes}; open a dataset with the model's classes")


class DatasetWorker(QObject):
    """Opens a dataset (``viewer.datasets.load_dataset``) off the GUI thread: a large COCO JSON
    takes seconds to parse. Same signals as TraceWorker; ``finished`` carries a LoadedDataset."""

    progress = Signal(str)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, spec, load_fn=None):
        super().__init__()
        self.spec = spec
        self.load_fn = load_fn
        self._cancel_requested = False

    def cancel(self) -> None:
        self._cancel_requested = True

    @Slot()
    def run(self) -> None:
        try:
            from viewer.datasets import load_dataset

            self.progress.emit(f"Opening dataset {self.spec.describe()}")
            dataset = (self.load_fn or load_dataset)(self.spec)
            if self._cancel_requested:
                self.cancelled.emit()
            else:
                self.finished.emit(dataset)
        except BaseException as error:  # noqa: BLE001 - any failure becomes a dialog
            self.failed.emit(*_described(error, "dataset"))
        finally:
            self.done.emit()


class JobRunner(QObject):
    """Runs one TraceWorker at a time on its own QThread; a newer job cancels an older one.

    Signals are re-emitted only for the current job, so a cancelled or superseded job's results
    never reach the window.
    """

    progress = Signal(str)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    busyChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._current: TraceWorker | None = None
        self._jobs: list[tuple[QThread, TraceWorker]] = []

    def is_busy(self) -> bool:
        return self._current is not None

    def start(self, worker: TraceWorker) -> TraceWorker:
        self.cancel()
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which
        # may itself be waiting for this thread (wait() on close).
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._prune)
        self._jobs.append((thread, worker))
        self._current = worker
        self.busyChanged.emit(True)
        thread.start()
        return worker

    def cancel(self) -> None:
        """Cancel the current job (its results are dropped); the UI is idle at once."""
        worker, self._current = self._current, None
        if worker is not None:
            worker.cancel()
            self.busyChanged.emit(False)
            self.cancelled.emit()

    def wait(self, msecs: int = 10000) -> bool:
        """Wait for every job's thread to end (window close, tests); True if all ended."""
        ok = all(thread.wait(msecs) for thread, _ in self._jobs)
        self._prune()
        return ok

    def _is_current(self) -> bool:
        return self._current is not None and self.sender() is self._current

    @Slot(str)
    def _on_progress(self, text):
        if self._is_current():
            self.progress.emit(text)

    @Slot(object)
    def _on_finished(self, result):
        if self._is_current():
            self._current = None
            self.busyChanged.emit(False)
            self.finished.emit(result)

    @Slot(str, str)
    def _on_failed(self, title, message):
        if self._is_current():
            self._current = None
            self.busyChanged.emit(False)
            self.failed.emit(title, message)

    @Slot()
    def _on_cancelled(self):
        if self._is_current():
            self._current = None
            self.busyChanged.emit(False)
            self.cancelled.emit()

    @Slot()
    def _prune(self):
        self._jobs = [(t, w) for t, w in self._jobs if not t.isFinished()]
