"""Precision in the viewer: the model dialog's choice, through the worker into the model config,
and the status bar's label read from the trace's meta."""

import dataclasses

import pytest

from viewer.workers import ModelSpec, TraceWorker, demo_model_spec


def test_dialog_offers_the_four_precisions_and_puts_the_choice_in_the_spec(qtbot, tmp_path):
    from viewer.dialogs.open_model import OpenModelDialog

    weights = tmp_path / "m.h5"
    weights.write_bytes(b"")
    dialog = OpenModelDialog(demo=None)
    qtbot.addWidget(dialog)
    combo = dialog.precision_combo
    assert [combo.itemData(i) for i in range(combo.count())] == ["fp32", "bf16", "fp16", "auto"]
    assert dialog.precision() == "fp32" and "AMX" in combo.toolTip()
    dialog.files_radio.setChecked(True)
    dialog.weights_edit.setText(str(weights))
    combo.setCurrentIndex(combo.findData("bf16"))
    assert dialog.spec() == ModelSpec(weights=str(weights), precision="bf16")
    assert dialog.spec().describe() == "m.h5 (bf16)"

    demo = ModelSpec(weights=str(weights), demo=True)
    with_demo = OpenModelDialog(demo=demo, initial=dataclasses.replace(demo, precision="auto"))
    qtbot.addWidget(with_demo)
    assert with_demo.precision() == "auto"  # the current model's precision preselected
    assert with_demo.spec() == dataclasses.replace(demo, precision="auto")
    assert with_demo.spec().describe() == "built-in demo model (auto)"
    assert ModelSpec(weights="a/w.h5").describe() == "w.h5"  # fp32 says nothing extra


def test_worker_hands_the_spec_with_its_precision_to_the_loader(qtbot, fake_trace):
    seen = []

    def loader(spec, step):
        seen.append(spec.precision)
        return "model", ["BG", "a", "b", "c"]

    worker = TraceWorker("image.png", ModelSpec(weights="w.h5", precision="fp16"),
                         read_image_fn=lambda path: __import__("numpy").zeros((8, 8, 3), "uint8"),
                         load_model_fn=loader, trace_fn=lambda model, image, names: fake_trace,
                         stats_fn=False)
    with qtbot.waitSignal(worker.finished, timeout=10000) as finished:
        worker.run()
    assert seen == ["fp16"] and finished.args[0].model_spec.precision == "fp16"


@pytest.mark.skipif(demo_model_spec() is None, reason="resources/demo is not installed")
def test_load_model_builds_the_demo_in_the_chosen_precision():
    from viewer.workers import load_model

    spec = dataclasses.replace(demo_model_spec(), precision="bf16")
    model, names = load_model(spec, step=lambda text: None)
    assert model.config.COMPUTE_DTYPE == "bfloat16"
    assert model.keras_model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.keras_model.get_layer("ROI").compute_dtype == "float32"
    assert names[0] == "BG"


def test_status_bar_shows_the_trace_precision(window, fake_trace):
    label = window.precision_label
    assert label.text() == ""
    window.session.set_trace(fake_trace)  # a trace from before precisions existed: float32
    assert label.text() == "Precision: fp32"
    bf16 = dataclasses.replace(fake_trace, meta={**fake_trace.meta, "precision": "bfloat16"})
    window.session.set_trace(bf16)
    assert label.text() == "Precision: bf16" and not label.isHidden()
    window.session.set_trace(None)
    assert label.text() == ""
