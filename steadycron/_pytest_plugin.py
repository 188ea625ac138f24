"""The pytest plugin (entry point ``pytest11``): the ``steadycron_recorder`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import Recorder, record


@pytest.fixture
def steadycron_recorder() -> Iterator[Recorder]:
    """Record the default client's pings for one test; restored afterwards, pass or fail."""
    with record() as recorder:
        yield recorder
