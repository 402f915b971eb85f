"""The error types of mrcnn.checks (kept here so they can join one error hierarchy later)."""


class BadInputError(ValueError):
    """Input that cannot be used: the message names what and says what was expected."""


class OptionError(BadInputError):
    """A command-line option has an impossible value (``--steps-per-epoch 0``)."""


class DatasetCheckError(BadInputError):
    """A dataset failed its check before training; ``problems`` lists every one found."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class WeightsRefusedError(BadInputError):
    """A weights file loads too little of the model (another model's file, an empty file)."""


class NonFiniteWeightsError(BadInputError):
    """A weights file holds NaN or Inf values (refused unless --allow-nonfinite)."""
