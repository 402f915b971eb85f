"""Input checks that run before work starts: options, datasets, weights files, debug output.

Every check raises an error whose one-line message names the file, field or option and says
what was expected; the command line turns it into ``<prog>: error: <message>`` and exit code 2
(1 for a training run that already started). ``BadInputError`` is the common base class.
"""

from mrcnn.checks.errors import BadInputError  # noqa: F401  (re-exported)
