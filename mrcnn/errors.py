"""The errors a user can fix: one base class, one subclass per kind of input.

Each message names the file, field or option and says what was expected. The ``mrcnn``
command prints an ``InputError`` as one line on stderr and exits with code 2; the viewer maps
each subclass to a dialog title and advice (``viewer.error_messages``). Nothing here imports
more than the standard library, so both sides can catch these without loading a model.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input the user can fix: a file, a config field, an option."""


class ConfigError(InputError, ValueError):
    """A config file is missing or unreadable, or a field holds a value the model cannot use."""


class WeightsError(InputError):
    """Base class of weight-file errors."""


class WeightsFileError(WeightsError):
    """The file is not a readable HDF5 weights file in the expected layout."""


class WeightsMismatchError(WeightsError):
    """The file's weight shapes do not fit the model; ``report`` (a WeightsReport) says which."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class ImageFileError(InputError, ValueError):
    """An image file is missing or cannot be read as an image."""


class ClassNamesError(InputError, ValueError):
    """A class-names file is missing, malformed, or lists the wrong number of names."""


class DatasetError(InputError, ValueError):
    """A dataset file or record is malformed; the message names the file and the record."""


class TraceFileError(InputError, ValueError):
    """A file is not a readable trace."""
