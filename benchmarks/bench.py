"""What every scenario is given: the servers, the TLS files, and how long to take."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from .report import Row, Target
from .server import Servers
from .tls import TlsFiles

USER_AGENT = {"User-Agent": "steadycron-benchmarks"}
API_KEY = "sc_ro_benchmarks"


@attrs.frozen
class Bench:
    """The shared setting of one suite run."""

    servers: Servers
    tls: TlsFiles
    workdir: Path
    quick: bool
    python: str = sys.executable

    def scale(self, full: int, quick: int) -> int:
        """An iteration or round count: *full* normally, *quick* in a smoke run."""
        return quick if self.quick else full


@attrs.frozen
class Outcome:
    """What a scenario found: table rows, the targets it checked, and what explains the
    figures (Markdown paragraphs made from the measurements)."""

    rows: list[Row]
    targets: list[Target] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
