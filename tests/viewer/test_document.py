"""Document: open -> worker -> trace -> session -> panels, without a window (fake loaders)."""

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal

from mrcnn.trace_data import Trace
from viewer.datasets import DatasetSpec
from viewer.document import Document
from viewer.model_store import ModelHandle
from viewer.panels.detections_table import DetectionsTablePanel
from viewer.recent import RecentFiles
from viewer.session import Session
from viewer.weight_stats_cache import WeightStatsCache
from viewer.workers import DatasetWorker, ModelSpec, TraceWorker

TIMEOUT_MS = 10000
STATS = [{"layer": "conv1", "std": 0.1}]


class _Model:
    """Stands in for a loaded MaskRCNN: only its config's class count is read."""

    def __init__(self, num_classes=4):
        self.config = type("C", (), {"NUM_CLASSES": num_classes})()


@pytest.fixture
def document(qtbot, settings, fake_trace):
    """A Document on a fresh session whose workers read, load and trace with fakes; ``calls``
    records every load and trace."""
    session = Session()
    calls = {"load": [], "trace": [], "stats": 0}

    def load(spec, step):
        step("Loading weights")
        calls["load"].append(spec)
        return _Model(), ["BG", "square", "circle", "triangle"]

    def trace(model, image, names, gt=None):
        calls["trace"].append({"model": model, "shape": image.shape, "gt": gt})
        return Trace(stages=dict(fake_trace.stages), meta=dict(fake_trace.meta))

    def stats(model):
        calls["stats"] += 1
        return STATS

    def factory(image_path, spec, model, names, source=None):
        return TraceWorker(image_path, spec, model, names, source=source,
                           read_image_fn=lambda path: np.zeros((24, 40, 3), np.uint8),
                           load_model_fn=load, trace_fn=trace, stats_fn=stats)

    doc = Document(session, RecentFiles(settings), worker_factory=factory)
    doc.calls = calls
    yield doc
    doc.close(5000)


def _wait_trace(qtbot, document, previous=None):
    qtbot.waitUntil(lambda: document.session.trace is not previous
                    and not document.runner.is_busy(), timeout=TIMEOUT_MS)


def test_open_image_with_a_model_reaches_the_session_and_a_panel(document, qtbot, tmp_path):
    table = DetectionsTablePanel(document.session)
    qtbot.addWidget(table)
    statuses = []
    document.session.statusChanged.connect(statuses.append)
    spec = ModelSpec(weights=str(tmp_path / "w.h5"))
    (tmp_path / "w.h5").write_bytes(b"x")  # the statistics cache keys on the file's mtime
    document.open_image(tmp_path / "a.png", spec)
    _wait_trace(qtbot, document)

    trace = document.session.trace
    assert trace.meta["image_path"] == str(tmp_path / "a.png")
    assert document.session.image_path == str(tmp_path / "a.png")
    assert document.calls["load"] == [spec] and document.calls["trace"][0]["shape"] == (24, 40, 3)
    # The model stays on the model thread: the document holds a handle, the jobs the model.
    assert document.model_spec == spec and isinstance(document.model, ModelHandle)
    assert isinstance(document.calls["trace"][0]["model"], _Model)
    assert document.session.weight_stats == STATS
    assert document.recent.paths()[0] == str(tmp_path / "a.png")
    assert any(s.startswith("Traced a.png with w.h5") for s in statuses)
    # The panel followed the session: one row per detection (threshold 0).
    assert table.model.rowCount() == len(trace["detections"]["scores"])

    # The next image reuses the loaded model: no second load, no second statistics pass.
    document.open_image(tmp_path / "b.png")
    _wait_trace(qtbot, document, trace)
    assert len(document.calls["load"]) == 1 and document.calls["stats"] == 1
    assert document.calls["trace"][1]["model"] is document.calls["trace"][0]["model"]

    # Reloading the same file: a new model, but the statistics come from the cache.
    previous = document.session.trace
    document.set_model(spec)
    _wait_trace(qtbot, document, previous)
    assert len(document.calls["load"]) == 2 and document.calls["stats"] == 1
    assert document.session.weight_stats is STATS


def test_image_without_a_model_shows_its_input_only(document, qtbot):
    document.open_image("c.png")
    _wait_trace(qtbot, document)
    assert set(document.session.trace.stages) == {"input"}
    assert document.calls["load"] == [] and document.model is None


def test_dataset_row_traces_with_ground_truth_and_is_not_a_recent_file(document, qtbot):
    opened = []
    document.datasetOpened.connect(opened.append)
    document.open_dataset(DatasetSpec("shapes", count=3, height=64, width=64, seed=2), row=1,
                          model=ModelSpec(weights="w.h5"))
    _wait_trace(qtbot, document)
    dataset = document.session.dataset
    assert opened == [dataset] and document.session.dataset_row == 1
    gt = dataset.ground_truth(1)
    np.testing.assert_array_equal(document.calls["trace"][0]["gt"]["boxes"], gt["boxes"])
    assert document.session.trace.meta["image_name"] == document.dataset_image.name
    assert document.recent.paths() == []

    previous = document.session.trace
    document.next_image(1)  # walks the dataset, wrapping around
    _wait_trace(qtbot, document, previous)
    assert document.session.dataset_row == 2 and document.dataset_image.row == 2


def test_unreadable_trace_is_reported_and_keeps_the_session(document, tmp_path, trace_file):
    errors = []
    document.session.errorRaised.connect(lambda title, message: errors.append(title))
    bad = tmp_path / "bad.npz"
    bad.write_text("not a trace")
    assert not document.open_trace(bad)
    assert errors == ["Cannot open trace"] and document.session.trace is None
    document.pending_stage = "proposals"
    assert document.open_trace(trace_file)
    assert document.session.stage == "proposals" and document.pending_stage is None
    assert document.image_file is None  # the fake trace's image is not a file here


def test_dataset_worker_is_injectable(qtbot, settings):
    session = Session()
    loaded = []

    def factory(spec):
        return DatasetWorker(spec, load_fn=lambda s: loaded.append(s) or _FakeDataset(s))

    document = Document(session, RecentFiles(settings), dataset_worker_factory=factory)
    spec = DatasetSpec("shapes", count=2)
    document.open_dataset(spec)
    qtbot.waitUntil(lambda: session.dataset is not None, timeout=TIMEOUT_MS)
    # Its first image opens at once (N / P then walk the dataset).
    assert loaded == [spec] and session.dataset.spec is spec and session.dataset_row == 0
    qtbot.waitUntil(lambda: session.trace is not None, timeout=TIMEOUT_MS)
    assert session.trace.image.shape == (8, 8, 3)
    document.close(5000)


class _FakeDataset:
    class_names = ["BG", "a"]

    def __init__(self, spec):
        self.spec = spec

    def __len__(self):
        return 2

    def image_path(self, row):
        return None

    def name(self, row):
        return f"fake-{row}"

    def load_image(self, row):
        return np.zeros((8, 8, 3), np.uint8)

    def ground_truth(self, row):
        return {"boxes": np.zeros((0, 4), np.int32), "class_ids": np.zeros(0, np.int32),
                "masks": np.zeros((8, 8, 0), bool)}


def test_weight_stats_cache_keys_on_the_weights_file(tmp_path):
    import os

    cache = WeightStatsCache()
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    spec = ModelSpec(weights=str(weights))
    assert cache.get(spec) is None and cache.update(spec, None) is None
    assert cache.update(spec, STATS) is STATS and cache.get(spec) is STATS
    assert cache.update(spec, None) is STATS
    os.utime(weights, (1, 1))  # rewritten file: a different mtime misses
    assert cache.get(spec) is None
    assert cache.get(ModelSpec(weights=str(tmp_path / "missing.h5"))) is None
    assert cache.get(None) is None


def test_model_thread_runs_every_job_on_one_thread_in_order(qtbot, fake_trace):
    import threading

    from viewer.model_thread import ModelThreadRunner

    release = threading.Event()
    threads, order, finished = [], [], []

    def make(name, block=False):
        def load(spec, step):
            threads.append(threading.get_ident())
            return _Model(), None

        def trace(model, image, names):
            threads.append(threading.get_ident())
            order.append(name)
            if block:
                release.wait(10)
            return fake_trace

        return TraceWorker(name, ModelSpec(weights="w.h5"), load_model_fn=load, trace_fn=trace,
                           read_image_fn=lambda path: np.zeros((8, 8, 3), np.uint8),
                           stats_fn=False)

    runner = ModelThreadRunner()
    runner.finished.connect(finished.append)
    first = runner.start(make("first", block=True))
    qtbot.waitUntil(lambda: order == ["first"], timeout=TIMEOUT_MS)
    second = runner.start(make("second"))  # supersedes: first's result will be dropped
    assert first.cancel_requested and runner.is_busy()
    release.set()
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=TIMEOUT_MS)
    assert finished[0].image_path == "second" and order == ["first", "second"]
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert runner.wait(TIMEOUT_MS) and not second.cancel_requested
    qtbot.wait(50)
    assert len(finished) == 1  # nothing late from the first job
    assert runner.shutdown(TIMEOUT_MS) and not runner.is_running()


def test_companion_runner_queues_on_the_model_thread_and_shuts_down_with_it(qtbot, fake_trace):
    """A companion's jobs (the Explain panel's) run on the owner's thread, after the owner's
    running job, never beside it; each runner reports only its own jobs."""
    import threading

    from viewer.model_thread import ModelThreadRunner

    release = threading.Event()
    events, finished, explained = [], [], []

    def load(spec, step):
        return _Model(), None

    def trace(model, image, names):
        events.append(("trace start", threading.get_ident()))
        release.wait(10)
        events.append(("trace end", threading.get_ident()))
        return fake_trace

    class _Job(QObject):
        progress, finished, failed = Signal(str), Signal(object), Signal(str, str)
        cancelled, done = Signal(), Signal()
        cancel_requested = False

        def cancel(self):
            self.cancel_requested = True

        def run(self):
            events.append(("explain", threading.get_ident()))
            self.finished.emit("map")
            self.done.emit()

    owner = ModelThreadRunner()
    companion = owner.companion()
    owner.finished.connect(finished.append)
    companion.finished.connect(explained.append)
    owner.start(TraceWorker("a.png", ModelSpec(weights="w.h5"), load_model_fn=load,
                            trace_fn=trace, stats_fn=False,
                            read_image_fn=lambda path: np.zeros((8, 8, 3), np.uint8)))
    qtbot.waitUntil(lambda: len(events) == 1, timeout=TIMEOUT_MS)
    companion.start(_Job())
    qtbot.wait(100)
    assert [name for name, _ in events] == ["trace start"]  # queued behind the trace
    release.set()
    qtbot.waitUntil(lambda: explained == ["map"] and len(finished) == 1, timeout=TIMEOUT_MS)
    assert [name for name, _ in events] == ["trace start", "trace end", "explain"]
    assert len({thread for _, thread in events}) == 1
    assert finished[0].image_path == "a.png"
    assert owner.shutdown(TIMEOUT_MS) and not owner.is_running()


def test_model_store_hands_out_handles_and_frees_a_replaced_model():
    """The GUI thread holds handles; only the store (on the model thread) maps them to models,
    and a newer model replaces the old one, whose handle then resolves to None."""
    from viewer.model_store import ModelStore

    store, first, second = ModelStore(), _Model(), _Model()
    handle = store.keep(first)
    assert isinstance(handle, ModelHandle) and handle is not first
    assert store.keep(first) is handle  # the same model: the same handle
    assert store.resolve(handle) is first
    assert store.resolve(None) is None and store.resolve(second) is second  # not handles
    newer = store.keep(second)
    assert newer is not handle and store.resolve(newer) is second
    assert store.resolve(handle) is None  # the replaced model is no longer reachable
