"""``ModelThreadRunner``: the Document's job runner, one long-lived worker thread for every job.

A Keras model is built, loaded and called only on that thread, job after job, so the model never
runs on the GUI thread nor on two threads at once (a per-job thread would let a superseded job
and its successor call the same model together). Jobs run in the order they were started; a
cancelled or superseded job stops at its next step boundary, and its results are dropped like
``JobRunner``'s. ``shutdown()`` ends the thread (window close, application quit).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from viewer.model_store import ModelStore
from viewer.workers import JobRunner


class _Executor(QObject):
    """Lives on the model thread; runs each worker handed to it there."""

    @Slot(object)
    def execute(self, worker) -> None:
        worker.run()


class ModelThreadRunner(JobRunner):
    """A ``JobRunner`` whose jobs all run, in order, on one thread that lives until
    ``shutdown()``. Same signals and the same cancel / supersede rules.

    ``companion()`` gives another runner on the same thread (its own signals and current job):
    other model jobs, such as the Explain panel's saliency maps, queue behind the tracing jobs
    instead of calling the model from a second thread at the same time.
    """

    _dispatch = Signal(object)  # worker -> _Executor.execute on the model thread

    def __init__(self, parent=None, share_thread_of: "ModelThreadRunner | None" = None):
        super().__init__(parent)
        self._idle = threading.Condition()
        self._pending: list = []  # started workers that have not ended yet
        self._companions: list = []
        self._owner = share_thread_of
        if share_thread_of is not None:
            self._thread, self._executor = share_thread_of._thread, share_thread_of._executor
            self.model_store = share_thread_of.model_store
        else:
            self.model_store = ModelStore()  # the model this thread's jobs load and reuse
            self._thread = QThread()
            self._thread.setObjectName("mrcnn-model")
            self._executor = _Executor()
            self._executor.moveToThread(self._thread)
        self._dispatch.connect(self._executor.execute, Qt.ConnectionType.QueuedConnection)
        if share_thread_of is None:
            self._thread.start()

    def companion(self, parent=None) -> "ModelThreadRunner":
        """A runner whose jobs run on this runner's thread, in the same queue; shut down with it."""
        runner = ModelThreadRunner(parent, share_thread_of=self)
        self._companions.append(runner)
        return runner

    def start(self, worker):
        self.cancel()
        worker.model_store = self.model_store  # models stay here; the GUI thread gets handles
        worker.moveToThread(self._thread)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        # Direct: runs on the model thread, so wait() works while the GUI thread blocks in it.
        worker.done.connect(lambda w=worker: self._job_ended(w),
                            Qt.ConnectionType.DirectConnection)
        with self._idle:
            self._pending.append(worker)
        self._current = worker
        self.busyChanged.emit(True)
        self._dispatch.emit(worker)
        return worker

    def _job_ended(self, worker) -> None:
        with self._idle:
            if worker in self._pending:
                self._pending.remove(worker)
            self._idle.notify_all()

    def wait(self, msecs: int = 10000) -> bool:
        """Wait until every started job has ended; True if they all did within ``msecs``."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, msecs / 1000.0)

    def shutdown(self, msecs: int = 10000) -> bool:
        """Cancel the current job (and the companions'), let the running one end, and stop the
        thread (a companion leaves the thread to its owner)."""
        for companion in self._companions:
            companion.cancel()
        self.cancel()
        ended = self.wait(msecs) and all(c.wait(msecs) for c in self._companions)
        if self._owner is not None:
            return ended
        self._thread.quit()
        return self._thread.wait(msecs) and ended

    def is_running(self) -> bool:
        """Whether the model thread still runs (False after ``shutdown``)."""
        return self._thread.isRunning()
