"""What a failed job tells the user: dialog title, the error, and what to do. Qt- and TF-free.

Errors are recognised by type (``mrcnn.errors``: one class per kind of bad input), not by
message text. TensorFlow's out-of-memory error is told by its class name, since importing
TensorFlow here would defeat the point of a viewer that starts without it.
"""

from __future__ import annotations

from mrcnn.errors import (ClassNamesError, ConfigError, DatasetError, ImageFileError,
                          TraceFileError, WeightsError, WeightsMismatchError)

_ADVICE = {
    "image": ("Cannot open image", "Choose a PNG, JPEG, BMP or TIFF image file."),
    "weights": ("Cannot read weights", "Choose a Keras HDF5 (.h5) weights file saved by mrcnn or "
                                       "by matterport's Mask_RCNN."),
    "mismatch": ("Weights do not fit the model",
                 "Use the config the weights were trained with (NUM_CLASSES, BACKBONE and head "
                 "sizes must match), or leave the config empty to infer it from the weights."),
    "config": ("Invalid config", "Fix the field named above in the config JSON, or leave the "
                                 "config empty to infer it from the weights."),
    "class_names": ("Cannot read class names", "Choose a text file with one class name per "
                                               "line (or a JSON list), 'BG' optional, one name "
                                               "per class of the model."),
    "memory": ("Out of memory", "Use a smaller image size (IMAGE_MAX_DIM / IMAGE_MIN_DIM in the "
                                "config), close other programs using the GPU, or run on the CPU "
                                "(start the viewer with CUDA_VISIBLE_DEVICES= )."),
    "dataset": ("Cannot open dataset", "Choose a COCO instances JSON and the folder holding its "
                                       "images (file_name in the JSON is relative to it), or "
                                       "generate a Shapes dataset."),
    "trace": ("Cannot open trace", "Choose a .npz file written by 'mrcnn trace' or by the viewer's "
                                   "File > Save trace."),
}

# Most specific first: WeightsMismatchError is a WeightsError.
_KIND_OF_ERROR = ((WeightsMismatchError, "mismatch"), (ConfigError, "config"),
                  (ClassNamesError, "class_names"), (WeightsError, "weights"),
                  (TraceFileError, "trace"), (ImageFileError, "image"))
# TensorFlow's error classes for running out of (GPU) memory, by name.
_OUT_OF_MEMORY_NAMES = ("ResourceExhaustedError",)
# The step a job was in -> the kind of an error that has no type of its own there.
_KIND_OF_STEP = {"weights": "weights", "trace": "trace", "image": "image"}


def error_kind(error: BaseException, step: str = "") -> str | None:
    """The ``_ADVICE`` key for ``error`` raised in job step ``step``; None when unexpected."""
    if type(error).__name__ in _OUT_OF_MEMORY_NAMES or isinstance(error, MemoryError):
        return "memory"
    if isinstance(error, WeightsMismatchError):
        return "mismatch"
    if step == "dataset":  # a dataset's own files: image, JSON and format errors alike
        return "dataset"
    for error_type, kind in _KIND_OF_ERROR:
        if isinstance(error, error_type):
            return kind
    if isinstance(error, DatasetError):  # an image (record) of a dataset that will not read
        return "image"
    return _KIND_OF_STEP.get(step)


def describe_error(error: BaseException, step: str = "") -> tuple[str, str]:
    """(title, message) for a dialog: what happened and what to do. No TensorFlow import."""
    name = type(error).__name__
    text = str(error).strip() or name
    kind = error_kind(error, step)
    if kind is None:
        return ("Unexpected error", f"{name}: {text}\n\nThe window keeps working; the details "
                                    "were printed to the terminal.")
    title, advice = _ADVICE[kind]
    return title, f"{text}\n\nWhat to do: {advice}"
