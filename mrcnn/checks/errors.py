"""The error types of mrcnn.checks: bad-input kinds of ``mrcnn.errors.InputError``."""

from mrcnn.errors import DatasetError, InputError, WeightsError


class BadInputError(InputError, ValueError):
    """Input that cannot be used: the message names what and says what was expected."""


class OptionError(BadInputError):
    """A command-line option has an impossible value (``--steps-per-epoch 0``)."""


class DatasetCheckError(DatasetError, BadInputError):
    """A dataset failed its check before training; ``problems`` lists every one found."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class WeightsRefusedError(WeightsError, BadInputError):
    """A weights file loads too little of the model (another model's file, an empty file)."""


class NonFiniteWeightsError(WeightsError, BadInputError):
    """A weights file holds NaN or Inf values (refused unless --allow-nonfinite)."""
