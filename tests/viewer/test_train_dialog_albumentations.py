"""The training dialog's albumentations field: checked, passed to mrcnn train, remembered."""

import albumentations as A
import numpy as np

from mrcnn.data.albumentations_aug import AlbumentationsAugmentation, training_augmentation
from mrcnn.data.augment import Augmentation
from mrcnn.train import build_parser, parse_args
from viewer.dialogs.train_dialog import TrainDialog
from viewer.training.devices import list_devices


def make_dialog(qtbot, settings, tmp_path):
    devices = list_devices(runner=lambda command, timeout: "", which=lambda name: None)
    dialog = TrainDialog(runs_root=str(tmp_path / "runs"), settings=settings, devices=devices,
                         demo_spec=None)
    qtbot.addWidget(dialog)
    return dialog


def test_albumentations_pipeline_file_goes_to_mrcnn_train(qtbot, settings, tmp_path):
    pipeline = tmp_path / "pipeline.json"
    A.save(A.Compose([A.HorizontalFlip(p=1.0)]), str(pipeline), data_format="json")
    dialog = make_dialog(qtbot, settings, tmp_path)
    assert dialog.validate() == [] and dialog.albumentations_args() == []

    dialog.aug_albumentations.setText(str(pipeline))
    assert dialog.validate() == []
    request = dialog.request()
    args = build_parser().parse_args(request.args)
    assert args.augment == "" and args.augment_albumentations == str(pipeline)
    parse_args(request.args)
    augmentation = training_augmentation(args.augment, args.augment_albumentations)
    assert isinstance(augmentation, AlbumentationsAugmentation)
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(augmentation.apply(image, np.zeros((2, 3, 0), bool))[0],
                                  image[:, ::-1])

    from viewer.dialogs import train_dialog_sections as sections

    sections.save_settings(settings, dialog, dialog.init_choice())
    dialog2 = make_dialog(qtbot, settings, tmp_path)  # restores from the settings
    assert dialog2.aug_albumentations.text() == str(pipeline)


def test_albumentations_problems_are_named(qtbot, settings, tmp_path):
    dialog = make_dialog(qtbot, settings, tmp_path)
    dialog.aug_albumentations.setText(str(tmp_path / "missing.yaml"))
    problems = dialog.validate()
    assert len(problems) == 1 and problems[0].startswith("Augmentation:")
    assert "missing.yaml" in problems[0] and "does not exist" in problems[0]
    dialog.aug_albumentations.setText("not a spec")
    assert "module:attribute" in dialog.validate()[0]
    dialog.aug_albumentations.setText("albumentations:HorizontalFlip")  # a class: called
    assert dialog.validate() == []
    dialog.aug_hflip.setChecked(True)
    assert dialog.validate() == ["Augmentation: an albumentations pipeline replaces the options "
                                 "above; untick them or clear the albumentations field"]


def test_cli_keeps_its_own_spec_as_default_and_refuses_both():
    assert training_augmentation("hflip", "") == Augmentation(hflip=0.5)
    assert training_augmentation("", None) is None
    try:
        training_augmentation("hflip", "albumentations:HorizontalFlip")
    except ValueError as error:
        assert "choose one augmentation" in str(error)
    else:
        raise AssertionError("both augmentations were accepted")
