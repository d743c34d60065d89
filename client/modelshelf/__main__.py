"""``python -m modelshelf``: the same as the ``modelshelf`` command."""

import sys

from .cli import main

sys.exit(main())
