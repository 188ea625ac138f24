"""Rows, targets, and the table they make (as text for the terminal, Markdown for docs)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs


@attrs.frozen
class Row:
    """One contender's median in one scenario, and how it compares with the reference."""

    scenario: str
    contender: str
    median: float
    unit: str
    reference: str | None = None
    ratio: float | None = None
    connections: float | None = None
    is_reference: bool = False
    requests: float | None = None

    def cells(self) -> list[str]:
        if self.is_reference:
            versus = "reference"
        else:
            versus = "" if self.ratio is None else f"{self.ratio:.2f}x {self.reference}"
        connections = "" if self.connections is None else f"{self.connections:.4g}"
        requests = "" if self.requests is None else f"{self.requests:.4g}"
        median = _number(self.median, self.unit)
        return [self.scenario, self.contender, median, versus, connections, requests]


@attrs.frozen
class Target:
    """A promise the figures must keep, and whether this run kept it."""

    name: str
    goal: str
    measured: str
    met: bool

    def cells(self) -> list[str]:
        return [self.name, self.goal, self.measured, "met" if self.met else "MISSED"]


def _number(value: float, unit: str) -> str:
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:,.{digits}f} {unit}"


def rows_with_ratios(rows: Sequence[Row]) -> list[Row]:
    """Fill each row's ratio: its median over its reference row's median (same scenario)."""
    medians = {(row.scenario, row.contender): row.median for row in rows}
    return [
        attrs.evolve(row, ratio=row.median / medians[(row.scenario, row.reference)])
        if row.reference is not None
        else attrs.evolve(row, is_reference=any(other.reference == row.contender for other in rows))
        for row in rows
    ]


ROW_HEADER = ["scenario", "contender", "median", "ratio", "TCP conns/run", "requests/run"]
TARGET_HEADER = ["target", "goal", "measured", "status"]


def text_table(header: list[str], lines: Sequence[list[str]]) -> str:
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *lines]
    ]
    return "\n".join([rendered[0], rule, *rendered[1:]])


def markdown_table(header: list[str], lines: Sequence[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, lines)])


def machine() -> str:
    """CPU model, cores, Python and date: what the figures came from."""
    model = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = f"{platform.python_implementation()} {platform.python_version()}"
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return f"{model}, {os.cpu_count()} cores, {python} on {sys.platform}, {today}"
