"""``python -m viewer``: the same as ``mrcnn-viewer``."""

import sys

from viewer.app import main

sys.exit(main())
