"""``python -m steadycron.cli.devserver``: the dev server on its own."""

from __future__ import annotations

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
