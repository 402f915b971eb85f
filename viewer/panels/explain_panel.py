"""Explain panel: which pixels the selected detection rests on (Grad-CAM / Grad-CAM++ / D-RISE).

A selected GT object (Ground truth or Diagnosis tab) is explained too, through what its diagnosis
points to (``mrcnn.explain_gt``): the detection that found it, the covering ROI the heads scored
too low or as another class, or its own box when no ROI reached the heads.

Pick a method, layer and target; the map is computed by an ExplainWorker on a worker thread
(never TensorFlow here), drawn over the trace's image with an opacity slider, cached per
(trace, detection, method, layer, target) and exportable as PNG. Results for a trace or a
request the panel has moved on from are dropped. Errors (a layer that does not feed the
detection, ...) are shown in the panel; the window keeps working.

The model comes from ``model_provider()`` (default: the window's ``model`` attribute), so the
main window needs only to dock the panel.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from mrcnn.explain_gt import subject_name, subject_of_verdict
from mrcnn.explain_render import overlay, save_png
from viewer.diagnosis_view import diagnosis_of, verdict_title
from viewer.explain_worker import AUTO_LAYER, ExplainRequest, ExplainWorker
from viewer.workers import JobRunner

pg.setConfigOptions(imageAxisOrder="row-major")

METHODS = (("Grad-CAM", "gradcam"), ("Grad-CAM++", "gradcam++"), ("D-RISE (black box)", "drise"))
TARGETS = (("class vs background", "class"), ("mask logits", "mask"))
AUTO_LAYER_TEXT = "auto (detection's FPN level)"
FPN_LAYERS = ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5")
DEFAULT_OPACITY = 60  # percent
SELECT_HINT = ("Select a detection to explain it, or a GT object (Diagnosis tab) to see what "
               "the model looked at where it missed it.")


class ExplainPanel(QWidget):
    """Saliency of the session's selected detection; ``worker_factory(model, trace, request)``."""

    def __init__(self, session, parent=None, model_provider=None, worker_factory=None):
        super().__init__(parent)
        self.session = session
        self.model_provider = model_provider or self._window_model
        self.worker_factory = worker_factory or ExplainWorker
        self.runner = None
        self.cache: dict = {}            # (id(trace), *request.key()) -> [H, W] map
        self.subject: tuple[str, int] | None = None  # ("detection", k) or ("gt", g)
        self.saliency: np.ndarray | None = None
        self.pending: ExplainRequest | None = None
        self._build()
        self.run_on(JobRunner(self))  # the window moves it to the model thread (run_on)
        session.traceChanged.connect(self._on_trace)
        session.selectionChanged.connect(self._on_selection)
        self._on_trace(session.trace)

    def run_on(self, runner) -> None:
        """Run the saliency jobs on ``runner`` (a JobRunner; the window passes a companion of
        the document's model-thread runner, so the model is never called by two threads)."""
        if self.runner is not None:
            self.runner.cancel()
            for signal in (self.runner.progress, self.runner.finished, self.runner.failed,
                           self.runner.cancelled):
                signal.disconnect()
        self.runner = runner
        runner.progress.connect(self.status.setText)
        runner.finished.connect(self._on_result)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(lambda: self._set_busy(False))

    # ---- widgets ----------------------------------------------------------------------------

    def _build(self):
        self.title = QLabel(SELECT_HINT)
        self.title.setWordWrap(True)
        self.method = _combo(METHODS)
        self.target = _combo(TARGETS)
        self.layer = QComboBox()
        self.layer.setEditable(True)  # any backbone / FPN layer name
        self.layer.setToolTip("Grad-CAM layer: a backbone (res*_out) or FPN (fpn_p2..p5) layer "
                              "feeding the level the detection is pooled from")
        self.masks = QSpinBox()
        self.masks.setRange(10, 10000)
        self.masks.setSingleStep(100)
        self.masks.setValue(500)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(DEFAULT_OPACITY)
        form = QFormLayout()
        for label, widget in (("Method", self.method), ("Layer", self.layer),
                              ("Target", self.target), ("D-RISE masks", self.masks),
                              ("Opacity", self.opacity)):
            form.addRow(label, widget)
        self.explain_button = QPushButton("Explain")
        self.cancel_button = QPushButton("Cancel")
        self.export_button = QPushButton("Export PNG…")
        buttons = QHBoxLayout()
        for button in (self.explain_button, self.cancel_button, self.export_button):
            buttons.addWidget(button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.view = pg.GraphicsLayoutWidget()
        self.viewbox = self.view.addViewBox(lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem()
        self.viewbox.addItem(self.image_item)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        self.explain_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(lambda: self.runner.cancel())
        self.export_button.clicked.connect(self._export_dialog)
        self.opacity.valueChanged.connect(self._render)
        for combo in (self.method, self.target):
            combo.currentIndexChanged.connect(self._options_changed)
        self.layer.currentTextChanged.connect(self._options_changed)
        self._set_busy(False)

    def _window_model(self):
        document = getattr(self.window(), "document", None)
        return getattr(document, "model", None)

    # ---- state ------------------------------------------------------------------------------

    def request(self) -> ExplainRequest | None:
        """The map the controls ask for, for the selected detection or GT (None without one)."""
        if self.subject is None:
            return None
        method = self.method.currentData()
        layer = self.layer.currentText().strip()
        layer = AUTO_LAYER if layer in ("", AUTO_LAYER_TEXT) or method == "drise" else layer
        kind, index = self.subject
        return ExplainRequest(index if kind == "detection" else None, method, layer,
                              self.target.currentData(), self.masks.value(),
                              gt=index if kind == "gt" else None)

    def _cache_key(self, request):
        return (id(self.session.trace), *request.key())

    def _on_trace(self, trace):
        self.runner.cancel()
        self.cache.clear()
        self.subject, self.saliency = None, None
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        layers = list(FPN_LAYERS)
        if trace is not None:
            layers += [name for name in trace.activation_layers() if name not in layers
                       and not name.startswith("fpn_p6")]
        self.layer.addItems([AUTO_LAYER_TEXT, *layers])
        self.layer.setCurrentText(current or AUTO_LAYER_TEXT)
        self.layer.blockSignals(False)
        self._show_selection()

    def _on_selection(self, selection):
        subject = (selection.kind, selection.index) if selection is not None and \
            selection.kind in ("detection", "gt") else None
        if subject != self.subject:
            self.subject = subject
            self._show_selection()

    def _options_changed(self, *_):
        self.masks.setEnabled(self.method.currentData() == "drise")
        self.layer.setEnabled(self.method.currentData() != "drise")
        self._show_selection()

    def _show_selection(self):
        """Show the cached map of the current request, or compute it (Grad-CAM: automatically)."""
        trace, request = self.session.trace, self.request()
        self.saliency = None
        if trace is None or request is None or "detections" not in trace:
            self.title.setText(SELECT_HINT if trace is not None
                               else "Open an image and a model, then select a detection.")
            self._render()
            return
        self.title.setText(self._subject_title(trace, request))
        cached = self.cache.get(self._cache_key(request))
        if cached is not None:
            self.saliency = cached
            self.status.setText("(cached)")
        elif request.method != "drise":  # cheap: about one detect(); D-RISE waits for Explain
            self.compute()
        else:
            self.status.setText("Press Explain to run D-RISE.")
        self._render()

    # ---- computing ----------------------------------------------------------------------------

    def compute(self) -> None:
        """Start the worker for the current request (errors are shown in the panel)."""
        trace, request = self.session.trace, self.request()
        if trace is None or request is None:
            return
        model = self.model_provider()
        if model is None:
            self._show_error("No model", "Open a model (Ctrl+M) to explain detections; a saved "
                                         "trace alone has no weights to take gradients of.")
            return
        self.pending = request
        self._set_busy(True)
        self.runner.start(self.worker_factory(model, trace, request))

    @staticmethod
    def _subject_title(trace, request) -> str:
        """'Detection 2: square 0.97', or 'GT 1: square (missed: low score) - explaining GT 1's
        covering ROI 31, for square'."""
        names = trace.class_names

        def name(class_id):
            return names[class_id] if 0 <= class_id < len(names) else str(class_id)
        if request.gt is None:
            det, k = trace["detections"], request.detection
            return f"Detection {k}: {name(int(det['class_ids'][k]))} {float(det['scores'][k]):.2f}"
        diagnosis = diagnosis_of(trace)
        if diagnosis is None or not 0 <= request.gt < len(diagnosis.gt):
            return f"GT {request.gt}"  # the worker's error says why it cannot be explained
        verdict = diagnosis.gt[request.gt]
        class_name = name(verdict.class_id)
        state = ("found" if verdict.cause == "detected"
                 else f"missed: {verdict_title(verdict.cause)}")
        how = subject_name(request.gt, *subject_of_verdict(verdict))
        return f"GT {request.gt}: {class_name} ({state}) — explaining {how}, for {class_name}"

    def _on_result(self, result):
        self._set_busy(False)
        if result.trace is not self.session.trace:
            return  # a trace the session has left
        self.cache[(id(result.trace), *result.request.key())] = result.saliency
        if result.request == self.request():
            self.saliency = result.saliency
            self.status.setText(f"{result.request.method}: {1000 * result.seconds:.0f} ms")
            self._render()

    def _on_failed(self, title, message):
        self._set_busy(False)
        self._show_error(title, message)

    def _show_error(self, title, message):
        self.status.setText(f"<b>{title}</b><br>{message}".replace("\n", "<br>"))
        self.status.setStyleSheet("color: #c0392b;")

    def _set_busy(self, busy: bool):
        if busy:
            self.status.setStyleSheet("")
        self.explain_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    # ---- drawing and export -------------------------------------------------------------------

    def rendered(self) -> np.ndarray | None:
        """[H, W, 3] uint8: the map over the image at the slider's opacity, box outlined."""
        trace = self.session.trace
        if trace is None or "input" not in trace:
            return None
        image = trace.image
        if self.saliency is None or self.subject is None:
            return np.asarray(image)[..., :3]
        kind, index = self.subject
        box = trace["detections" if kind == "detection" else "gt"]["boxes"][index]
        return overlay(image, self.saliency, self.opacity.value() / 100.0, box=box)

    def _render(self, *_):
        pixels = self.rendered()
        self.export_button.setEnabled(self.saliency is not None)
        if pixels is None:
            self.image_item.clear()
            return
        self.image_item.setImage(pixels, levels=(0, 255))

    def export_png(self, path) -> None:
        """Write the shown overlay (the map over the image) to ``path``."""
        pixels = self.rendered()
        if pixels is None or self.saliency is None:
            raise ValueError("nothing to export: explain a detection first")
        save_png(path, pixels)

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export saliency map", "explain.png",
                                              "PNG images (*.png)")
        if path:
            try:
                self.export_png(path)
                self.status.setText(f"Saved {path}")
            except (OSError, ValueError) as error:
                self._show_error("Cannot export", str(error))


def _combo(items) -> QComboBox:
    combo = QComboBox()
    for text, value in items:
        combo.addItem(text, value)
    return combo
