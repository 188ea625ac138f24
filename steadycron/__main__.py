"""``python -m steadycron``: the same command line as the ``steadycron`` script."""

from __future__ import annotations

import sys

from steadycron.cli import main

if __name__ == "__main__":
    sys.exit(main())
