"""Pipelines named by "module:attribute" in the albumentations tests."""

import albumentations as A

FLIP = A.Compose([A.HorizontalFlip(p=1.0)])


def make_vertical_flip():
    return A.Compose([A.VerticalFlip(p=1.0)])


NOT_A_PIPELINE = 42
