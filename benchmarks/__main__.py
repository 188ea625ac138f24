"""``python -m benchmarks``: run the suite."""

from .run import main

raise SystemExit(main())
