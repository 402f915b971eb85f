"""The loaded Keras model stays on the model thread; the GUI thread holds a ``ModelHandle``.

``ModelThreadRunner`` gives its jobs (tracing and the Explain panel's saliency maps) one
``ModelStore``. A job that loads a model hands back ``store.keep(model)``, a handle; the next
job is given that handle and resolves it on the model thread. So the ``Document`` (GUI thread)
never holds the model itself, only something to ask for it by — and nothing on the GUI thread
can call it by mistake. Jobs run elsewhere (the Compare window's own runner) get no store and
pass models as before. No Qt, no TensorFlow here.
"""

from __future__ import annotations

import threading


class ModelHandle:
    """Stands for one model kept in a ``ModelStore``; has no way to reach it by itself."""

    __slots__ = ("description",)

    def __init__(self, description: str = ""):
        self.description = description

    def __repr__(self) -> str:
        return f"<ModelHandle {self.description or id(self)}>"


class ModelStore:
    """The model the model thread keeps (the newest one: a new model replaces, and frees, the
    old). ``keep`` and ``resolve`` are called by jobs on that thread."""

    def __init__(self):
        self._handle: ModelHandle | None = None
        self._model = None
        self._lock = threading.Lock()  # cheap insurance: jobs of one thread never overlap

    def keep(self, model) -> ModelHandle:
        """A handle for ``model`` (the same handle again for the model already kept)."""
        with self._lock:
            if self._handle is None or model is not self._model:
                self._handle = ModelHandle(type(model).__name__)
                self._model = model
            return self._handle

    def resolve(self, model_or_handle):
        """The model a handle stands for (None once a newer model replaced it); anything that
        is not a handle (a model passed directly, None) is returned as it is."""
        if not isinstance(model_or_handle, ModelHandle):
            return model_or_handle
        with self._lock:
            return self._model if model_or_handle is self._handle else None
