"""Import cost: ``import steadycron`` against ``import urllib.request`` in fresh processes.

Wall time of whole processes (interpreter start included, alternated), and the
cumulative figure ``-X importtime`` reports for the top-level module.
"""

from __future__ import annotations

import statistics

from .bench import Bench, Outcome
from .processes import child_env, process_batch, python_command, run
from .report import Row, Target, rows_with_ratios
from .timing import Contender, alternate

MODULES = {"urllib.request": "import urllib.request", "steadycron": "import steadycron"}
BASELINE = "urllib.request"


def _importtime_us(python: str, module: str, env: dict[str, str]) -> float:
    """Cumulative microseconds ``-X importtime`` charges to *module*."""
    command = [*python_command(python), "-X", "importtime", "-c", f"import {module}"]
    stderr = run(command, env).stderr.decode()
    for line in stderr.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() == module:
            return float(fields[1])
    raise RuntimeError(f"-X importtime reported nothing for {module}")


def measure(bench: Bench) -> Outcome:
    env = child_env()
    contenders = {
        f"import {module}": Contender(
            process_batch([*python_command(bench.python), "-c", code], env), 1
        )
        for module, code in MODULES.items()
    }
    results = alternate(contenders, bench.scale(41, 3))
    scenario = "import (process wall time)"
    rows = [
        Row(
            scenario,
            name,
            result.median * 1e3,
            "ms",
            reference=None if name == f"import {BASELINE}" else f"import {BASELINE}",
        )
        for name, result in results.items()
    ]
    profile = "import (-X importtime, cumulative)"
    samples: dict[str, list[float]] = {module: [] for module in MODULES}
    for _ in range(bench.scale(9, 1)):
        for module, times in samples.items():
            times.append(_importtime_us(bench.python, module, env))
    rows += [
        Row(
            profile,
            f"import {module}",
            statistics.median(times) / 1e3,
            "ms",
            reference=None if module == BASELINE else f"import {BASELINE}",
        )
        for module, times in samples.items()
    ]
    ratio = results["import steadycron"].median / results[f"import {BASELINE}"].median
    target = Target("import steadycron vs urllib.request", "<= 1.0x", f"{ratio:.2f}x", ratio <= 1.0)
    return Outcome(rows_with_ratios(rows), [target])
