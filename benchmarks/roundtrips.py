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
    return Outcome(rows, targets, _notes(results, medians))


def _notes(results: dict[str, Trips], medians: dict[str, float]) -> list[str]:
    """Split each run into its round trips and the time spent in the process itself."""
    trip_ms = ROUND_TRIP_SECONDS * 1e3

    def split(name: str) -> tuple[float, float, float]:
        result = results[name]
        runs = len(result.seconds)
        # Each TLS connection costs two round trips (TCP, TLS 1.3), each request one.
        trips = (2 * result.connections + result.requests) / runs
        network = trips * trip_ms
        return trips, network, medians[name] * 1e3 - network

    lines = []
    for name in results:
        trips, network, process = split(name)
        lines.append(
            f"- {name}: {trips:.3g} round trips = {network:.0f} ms on the network, "
            f"{process:.0f} ms in the process (interpreter, imports, trust store, TLS, "
            "the job's own code)"
        )
    baseline = medians[BASELINE] * 1e3
    _, warm_network, warm_process = split(WARM)
    _, first_network, first_process = split(FIRST_RUN)
    return [
        f"Cold runs with {trip_ms:.0f} ms round trips, where the time goes (medians):\n\n"
        + "\n".join(lines),
        f"For the warm token cache to take 0.5x the baseline ({baseline / 2:.0f} ms), its "
        f"process would have to finish in {baseline / 2 - warm_network:.0f} ms instead of "
        f"{warm_process:.0f} ms; for the first run to take 0.8x ({baseline * 0.8:.0f} ms), "
        f"in {baseline * 0.8 - first_network:.0f} ms instead of {first_process:.0f} ms. "
        "The round trips themselves are as few as the protocol allows: one connection and "
        "two requests once the token is cached.",
    ]
