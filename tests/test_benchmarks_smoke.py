"""The benchmark suite's quick mode runs to the end and reports every scenario.

Only that it runs: timing figures live in benchmarks/, never in assertions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_ROWS = [
    "warm run, HTTP ",
    "warm run, HTTPS",
    "cold process, HTTP ",
    "cold process, HTTPS",
    "cold run, 20 ms round trips, HTTPS",
    "import (process wall time)",
    "import (-X importtime, cumulative)",
    "decorator overhead",
    "8 threads, HTTP",
    "worst case: never answers",
    "worst case: drips a byte at a time",
    "worst case: name lookup hangs",
]


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_quick_mode_exits_cleanly(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, quick_run.stderr


@pytest.mark.parametrize("scenario", SCENARIO_ROWS)
def test_quick_mode_reports_scenario(
    quick_run: subprocess.CompletedProcess[str], scenario: str
) -> None:
    rows = [line for line in quick_run.stdout.splitlines() if line.startswith(scenario)]
    assert rows, f"no row for {scenario!r} in:\n{quick_run.stdout}"
