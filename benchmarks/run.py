"""Run the suite: start the loopback servers, measure every scenario, report.

``python -m benchmarks`` runs it in full, checks the targets and writes RESULTS.md;
``--quick`` runs a few iterations of each scenario as a smoke test (no targets checked,
nothing written unless ``--output`` says where).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import cold, faults, imports, overhead, roundtrips, threads, warm
from .bench import Bench, Outcome
from .report import ROW_HEADER, TARGET_HEADER, machine, markdown_table, text_table
from .server import running_servers
from .tls import make_tls_files

SCENARIOS: dict[str, Callable[[Bench], Outcome]] = {
    "warm": warm.measure,
    "cold": cold.measure,
    "roundtrips": roundtrips.measure,
    "import": imports.measure,
    "overhead": overhead.measure,
    "threads": threads.measure,
    "faults": faults.measure,
}
RESULTS = Path(__file__).with_name("RESULTS.md")
COMMAND = "python -m benchmarks"


def _markdown(outcome: Outcome, about: str, system_certs: int) -> str:
    return "\n\n".join(
        [
            "# Benchmark results",
            f"Produced by `{COMMAND}` on {about}.",
            "Medians over alternating rounds, all contenders measured side by side in one "
            "run against loopback servers (a separate process). Ratios are against the "
            "row named. HTTPS clients trust a bundle of the system store "
            f"({system_certs} certificates) plus a throwaway CA, so a client that builds "
            "a TLS context per request pays what it would pay in production.",
            markdown_table(ROW_HEADER, [row.cells() for row in outcome.rows]),
            "## Targets",
            markdown_table(TARGET_HEADER, [target.cells() for target in outcome.targets]),
            *(["## What the figures say", *outcome.notes] if outcome.notes else []),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations, no targets")
    parser.add_argument("--output", type=Path, help=f"where to write Markdown ({RESULTS.name})")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="scenarios to run")
    args = parser.parse_args(argv)
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ.pop(name, None)
    started = time.perf_counter()
    everything = Outcome([], [])
    with tempfile.TemporaryDirectory(prefix="steadycron-bench-") as directory:
        # Clients here and in child processes keep their token caches in this run's own
        # folder (the default one follows XDG_CACHE_HOME), never in the user's.
        os.environ["XDG_CACHE_HOME"] = str(Path(directory, "cache"))
        tls = make_tls_files(Path(directory))
        with running_servers(tls) as servers:
            bench = Bench(servers, tls, Path(directory), quick=args.quick)
            for name in args.only or SCENARIOS:
                print(f"measuring {name} ...", flush=True)
                outcome = SCENARIOS[name](bench)
                everything.rows.extend(outcome.rows)
                everything.targets.extend(outcome.targets)
                everything.notes.extend(outcome.notes)
    about = machine()
    print(f"\n{about}; {time.perf_counter() - started:.0f} s\n")
    print(text_table(ROW_HEADER, [row.cells() for row in everything.rows]))
    if args.quick:
        print("\n(quick run: targets not checked)")
    else:
        print()
        print(text_table(TARGET_HEADER, [target.cells() for target in everything.targets]))
    for note in everything.notes:
        print(f"\n{note}")
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        output.write_text(_markdown(everything, about, tls.system_certs), encoding="utf-8")
        print(f"\nwrote {output}")
    missed = [target for target in everything.targets if not target.met]
    return 1 if missed and not args.quick else 0
