"""Training-dialog defaults that follow the chosen initial weights, and its precise-BN field.

From scratch (no initial weights) every layer must learn, BatchNorm included, and BN's moving
statistics must be recomputed before each checkpoint (``--precise-bn``) or inference falls
apart; so the first stage trains all layers with TRAIN_BN and precise BN on. From a trained
model (the demo model, a file, the last checkpoint) matterport's recipe applies: the heads
first with BatchNorm frozen, then all layers. A choice of weights sets these fields; the user
may change them afterwards, and remembered values (QSettings) are not overridden at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QSpinBox

PRECISE_BN_BATCHES = 20  # default --precise-bn when TRAIN_BN is on


@dataclass(frozen=True)
class InitDefaults:
    first_layers: str    # stage 1's layer selection
    train_bn: bool       # TRAIN_BN
    second_stage: bool   # stage 2 ("all") enabled


FROM_SCRATCH = InitDefaults(first_layers="all", train_bn=True, second_stage=False)
FROM_MODEL = InitDefaults(first_layers="heads", train_bn=False, second_stage=True)


def defaults_for(init_choice: str) -> InitDefaults:
    """The defaults for an initial-weights choice ("none", "demo", "last", "file")."""
    return FROM_SCRATCH if init_choice == "none" else FROM_MODEL


def build_precise_bn(form) -> QSpinBox:
    """``form.precise_bn``: batches averaged into BN statistics before each checkpoint; added
    below TRAIN_BN in the config section and enabled only while TRAIN_BN is on."""
    spin = QSpinBox(minimum=0, maximum=100_000, value=PRECISE_BN_BATCHES)
    spin.setSuffix(" batches")
    spin.setSpecialValueText("off")
    spin.setToolTip("--precise-bn: before each epoch's checkpoint, set BatchNorm's moving "
                    "statistics to the average over this many training batches (needed when "
                    "BN trains from scratch; 0 = off). Only with TRAIN_BN.")
    form.precise_bn = spin
    form.config_form.addRow("Precise BN", spin)
    spin.setEnabled(form.train_bn.isChecked())
    form.train_bn.toggled.connect(spin.setEnabled)
    return spin


def precise_bn_args(form) -> list[str]:
    """``--precise-bn N`` when TRAIN_BN is on and the field is not off, else []."""
    if form.train_bn.isChecked() and form.precise_bn.value() > 0:
        return ["--precise-bn", str(form.precise_bn.value())]
    return []


def apply_init_defaults(form, init_choice: str) -> None:
    """Set stage 1's layers, stage 2, TRAIN_BN and precise BN for ``init_choice``."""
    defaults = defaults_for(init_choice)
    form.stage_layers[0].setCurrentText(defaults.first_layers)
    form.stage_checks[1].setChecked(defaults.second_stage)
    if defaults.second_stage:
        form.stage_layers[1].setCurrentText("all")
    form.train_bn.setChecked(defaults.train_bn)
    if defaults.train_bn and form.precise_bn.value() == 0:
        form.precise_bn.setValue(PRECISE_BN_BATCHES)


def connect_init_defaults(form, init_buttons: dict, base_combo, apply_now: bool) -> None:
    """Apply the defaults whenever another initial-weights choice is made (and now when
    ``apply_now``: nothing remembered); after a base-config change (which refills TRAIN_BN
    from the base) from-scratch training keeps TRAIN_BN on."""
    for choice, button in init_buttons.items():
        button.toggled.connect(
            lambda on, c=choice: apply_init_defaults(form, c) if on else None)
    base_combo.currentIndexChanged.connect(lambda *_: _keep_scratch_bn(form, init_buttons))
    if apply_now:
        apply_init_defaults(form, _checked(init_buttons))


def _checked(init_buttons: dict) -> str:
    return next((c for c, b in init_buttons.items() if b.isChecked()), "none")


def _keep_scratch_bn(form, init_buttons: dict) -> None:
    if defaults_for(_checked(init_buttons)).train_bn:
        form.train_bn.setChecked(True)


def remembered_init(settings, group: str) -> str | None:
    """The initial-weights choice remembered from an earlier session (None: nothing stored)."""
    settings.beginGroup(group)
    try:
        if not settings.childKeys():
            return None
        return str(settings.value("init", "none"))
    finally:
        settings.endGroup()
