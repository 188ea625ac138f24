"""Cold runs against a distant SteadyCron: round trips are what a cron user pays.

On loopback a new connection costs nothing, so the other scenarios cannot show what a
crontab line pays. Here the API and the ping host are distant listeners (``server.py``):
each TCP handshake, TLS handshake and answer takes one round trip of
:data:`ROUND_TRIP_SECONDS`, as for a server a continent away. Each contender is a fresh
process running one monitored job (import, resolve if it must, start, success, exit):
the standard-library job with a fresh connection per request, and the SDK job with an
empty and with a warm token cache (``cold.py``). Connections and requests are counted
by the servers, around each run.
"""

from __future__ import annotations

import statistics
import time

import attrs

from .bench import Bench, Outcome
from .cold import BASELINE, FIRST_RUN, WARM, launches
from .processes import run
from .report import Row, Target, rows_with_ratios
from .server import ROUND_TRIP_SECONDS

API, PING = "distant-https-api", "distant-https"


@attrs.define
class Trips:
    """Wall seconds of each run, and the round trips all runs made."""

    seconds: list[float] = attrs.Factory(list)
    connections: int = 0
    requests: int = 0


def measure(bench: Bench) -> Outcome:
    jobs = launches(bench, API, PING)
    for launch in jobs.values():  # untimed: compiled bytecode, as an installed package
        run(*launch())
    servers = bench.servers
    results = {name: Trips() for name in jobs}
    names = list(jobs)
    for round_number in range(bench.scale(15, 2)):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            argv, env = jobs[name]()
            connections = servers.connections(API) + servers.connections(PING)
            requests = servers.requests(API) + servers.requests(PING)
            started = time.perf_counter()
            run(argv, env)
            result = results[name]
            result.seconds.append(time.perf_counter() - started)
            result.connections += servers.connections(API) + servers.connections(PING)
            result.connections -= connections
            result.requests += servers.requests(API) + servers.requests(PING) - requests
    scenario = f"cold run, {ROUND_TRIP_SECONDS * 1e3:.0f} ms round trips, HTTPS"
    medians = {name: statistics.median(result.seconds) for name, result in results.items()}
    rows = rows_with_ratios(
        [
            Row(
                scenario,
                name,
                medians[name] * 1e3,
                "ms",
                reference=None if name == BASELINE else BASELINE,
                connections=result.connections / len(result.seconds),
                requests=result.requests / len(result.seconds),
            )
            for name, result in results.items()
        ]
    )
    warm_ratio = medians[WARM] / medians[BASELINE]
    first_ratio = medians[FIRST_RUN] / medians[BASELINE]
    warm_connections = results[WARM].connections / len(results[WARM].seconds)
    targets = [
        Target(
            f"{scenario}, warm token cache vs stdlib",
            "<= 0.5x",
            f"{warm_ratio:.2f}x",
            warm_ratio <= 0.5,
        ),
        Target(
            f"{scenario}, first run vs stdlib", "<= 0.8x", f"{first_ratio:.2f}x", first_ratio <= 0.8
        ),
        Target(
            f"{scenario}, warm token cache, TCP connections",
            "1 per run",
            f"{warm_connections:.3g} per run",
            warm_connections == 1,
        ),
    ]
    return Outcome(rows, targets)
