"""Training dialog defaults follow the initial weights; the precise-BN field (issue 19, item 8)."""

import json
from pathlib import Path

from mrcnn.train import build_parser
from test_train_dialog import make_dialog, write_weights  # noqa: F401 (fixture)
from viewer.dialogs import train_dialog_sections as sections


def _args(dialog, tmp_path, name):
    dialog.run_dir.setText(str(tmp_path / "runs" / name))
    assert dialog.validate() == []
    return build_parser().parse_args(dialog.request().args)


def test_from_scratch_trains_all_layers_with_bn_and_precise_bn(make_dialog, tmp_path):
    dialog = make_dialog()
    assert dialog.init_choice() == "none"
    assert dialog.stage_layers[0].currentText() == "all"
    assert dialog.train_bn.isChecked()
    assert dialog.precise_bn.isEnabled() and dialog.precise_bn.value() == 20
    assert not dialog.stage_checks[1].isChecked()  # "all, then all" would be one stage
    assert dialog.stages() == [("all", 1)]
    args = _args(dialog, tmp_path, "scratch")
    assert (args.layers, args.precise_bn, args.init) == ("all", 20, "none")
    assert json.loads(Path(args.config).read_text())["TRAIN_BN"] is True


def test_from_a_model_trains_heads_first_without_bn(make_dialog, tmp_path):
    dialog = make_dialog()
    dialog.init_file.setText(write_weights(tmp_path / "w.h5", num_classes=4))
    dialog.init_buttons["file"].setChecked(True)
    assert dialog.stage_layers[0].currentText() == "heads"
    assert dialog.stage_checks[1].isChecked() and dialog.stage_layers[1].currentText() == "all"
    assert not dialog.train_bn.isChecked() and not dialog.precise_bn.isEnabled()
    args = _args(dialog, tmp_path, "model")
    assert (args.layers, args.precise_bn) == ("heads", 0)
    assert json.loads(Path(args.config).read_text())["TRAIN_BN"] is False
    # Back to random weights: back to the from-scratch defaults.
    dialog.init_buttons["none"].setChecked(True)
    assert dialog.stage_layers[0].currentText() == "all" and dialog.train_bn.isChecked()


def test_precise_bn_field_sets_the_option(make_dialog, tmp_path):
    dialog = make_dialog()
    dialog.precise_bn.setValue(64)
    assert _args(dialog, tmp_path, "p64").precise_bn == 64
    dialog.precise_bn.setValue(0)
    assert dialog.precise_bn.text() == "off"
    assert _args(dialog, tmp_path, "p0").precise_bn == 0
    dialog.precise_bn.setValue(8)
    dialog.train_bn.setChecked(False)  # no BN training: nothing to recompute
    assert _args(dialog, tmp_path, "nobn").precise_bn == 0


def test_base_change_keeps_bn_on_from_scratch(make_dialog, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"NAME": "b", "TRAIN_BN": False, "IMAGE_MAX_DIM": 128,
                                "IMAGE_MIN_DIM": 128}))
    dialog = make_dialog()
    dialog.base_file.setText(str(base))
    dialog.base_combo.setCurrentIndex(dialog.base_combo.findData("file"))
    assert dialog.max_dim.value() == 128  # the base was applied ...
    assert dialog.train_bn.isChecked()    # ... but random weights still need TRAIN_BN


def test_remembered_choices_win_over_the_defaults(make_dialog, settings, tmp_path, qtbot):
    first = make_dialog()
    first.stage_layers[0].setCurrentText("heads")  # the user's own choice, from scratch
    first.precise_bn.setValue(33)
    sections.save_settings(settings, first, first.init_choice())
    second = make_dialog()
    assert second.stage_layers[0].currentText() == "heads"
    assert second.precise_bn.value() == 33


def test_remembered_weights_that_are_gone_get_the_defaults(make_dialog, settings, tmp_path):
    """'Last checkpoint' remembered, but no run has one any more: random weights, so the
    remembered heads-first fields give way to the from-scratch defaults."""
    first = make_dialog()
    first.init_file.setText(write_weights(tmp_path / "w.h5", num_classes=4))
    first.init_buttons["file"].setChecked(True)
    sections.save_settings(settings, first, "last")  # as if "last" had been chosen
    second = make_dialog()
    assert second.init_choice() == "none"  # "last" is disabled: nothing under runs/
    assert second.stage_layers[0].currentText() == "all" and second.train_bn.isChecked()


def test_the_init_note_gives_the_same_advice_as_the_defaults(make_dialog):
    dialog = make_dialog()
    assert "all layers with TRAIN_BN and precise BN" in dialog.init_info.text()
