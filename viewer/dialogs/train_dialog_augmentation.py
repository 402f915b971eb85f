"""The training dialog's augmentation choices as ``mrcnn train`` arguments, and their checks.

``form`` is the dialog (``train_dialog_sections.build_augmentation`` put the widgets on it).
"""

from __future__ import annotations


def augmentation_text(form) -> str:
    """The --augment value ("" for none), in mrcnn.data.augment.parse_augmentation's form."""
    tokens = [name for name, box in (("hflip", form.aug_hflip), ("vflip", form.aug_vflip))
              if box.isChecked()]
    if form.aug_scale.isChecked():
        tokens.append(f"scale={form.aug_scale_low.value():g}-{form.aug_scale_high.value():g}")
    for name, box, spin in (("crop", form.aug_crop, form.aug_crop_value),
                            ("brightness", form.aug_brightness, form.aug_brightness_value),
                            ("contrast", form.aug_contrast, form.aug_contrast_value)):
        if box.isChecked():
            tokens.append(f"{name}={spin.value():g}")
    return ",".join(tokens)


def albumentations_args(form) -> list[str]:
    """The --augment-albumentations arguments of the run ([] when the field is empty)."""
    spec = form.aug_albumentations.text().strip()
    return ["--augment-albumentations", spec] if spec else []


def albumentations_problems(form) -> list[str]:
    """Why the albumentations pipeline cannot be used (with the options above, or unloadable)."""
    spec = form.aug_albumentations.text().strip()
    if not spec:
        return []
    if augmentation_text(form):
        return ["Augmentation: an albumentations pipeline replaces the options above; "
                "untick them or clear the albumentations field"]
    from mrcnn.data.albumentations_aug import albumentations_problem

    problem = albumentations_problem(spec)
    return [f"Augmentation: {problem}"] if problem else []
