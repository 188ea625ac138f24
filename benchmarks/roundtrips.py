"""Cold runs against a distant SteadyCron: round trips are what a cron user pays.

On loopback a new connection costs nothing, so the other scenarios cannot show what a
crontab line pays. Here the API and the ping host are distant listeners (``server.py``):
each TCP handshake, TLS handshake and answer takes one round trip of
:data:`ROUND_TRIP_SECONDS`, as for a server a continent away. Each contender is a fresh
process running one monitored job (import, resolve if it must, start, success, exit):
the standard-library job with a fresh connection per request, and the SDK job with an
empty and with a warm token cache (``cold.py``). Connections and requests are counted
by the servers around each run, and the CPU time each run used is read from the kernel
(``RUSAGE_CHILDREN``), so the notes can tell network, CPU and waiting for a CPU apart.
"""

from __future__ import annotations

import resource
import statistics
import time

import attrs

from .bench import Bench, Outcome
from .cold import BASELINE, FIRST_RUN, WARM, launches
from .processes import run
from .report import Row, Target, rows_with_ratios
from .server import ROUND_TRIP_SECONDS, Servers

API, PING = "distant-https-api", "distant-https"


@attrs.define
class Trips:
    """Each run's wall and CPU seconds, and the round trips all runs made."""

    seconds: list[float] = attrs.Factory(list)
    cpu_seconds: list[float] = attrs.Factory(list)
    connections: int = 0
    requests: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def round_trips(self) -> float:
        """Round trips per run: two per TLS connection (TCP, TLS 1.3), one per request."""
        return (2 * self.connections + self.requests) / len(self.seconds)


def _cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _counted(servers: Servers) -> tuple[int, int]:
    return (
        servers.connections(API) + servers.connections(PING),
        servers.requests(API) + servers.requests(PING),
    )


def measure(bench: Bench) -> Outcome:
    jobs = launches(bench, API, PING)
    for launch in jobs.values():  # untimed: compiled bytecode, as an installed package
        run(*launch())
    results = {name: Trips() for name in jobs}
    names = list(jobs)
    for round_number in range(bench.scale(15, 1)):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            argv, env = jobs[name]()
            connections, requests = _counted(bench.servers)
            cpu = _cpu_seconds_of_children()
            started = time.perf_counter()
            run(argv, env)
            result = results[name]
            result.seconds.append(time.perf_counter() - started)
            result.cpu_seconds.append(_cpu_seconds_of_children() - cpu)
            after = _counted(bench.servers)
            result.connections += after[0] - connections
            result.requests += after[1] - requests
    scenario = f"cold run, {ROUND_TRIP_SECONDS * 1e3:.0f} ms round trips, HTTPS"
    rows = rows_with_ratios(
        [
            Row(
                scenario,
                name,
                result.median * 1e3,
                "ms",
                reference=None if name == BASELINE else BASELINE,
                connections=result.connections / len(result.seconds),
                requests=result.requests / len(result.seconds),
            )
            for name, result in results.items()
        ]
    )
    warm_ratio = results[WARM].median / results[BASELINE].median
    first_ratio = results[FIRST_RUN].median / results[BASELINE].median
    warm_connections = results[WARM].connections / len(results[WARM].seconds)
    targets = [
        Target(
            f"{scenario}, warm token cache vs stdlib",
            "<= 0.5x",
            f"{warm_ratio:.2f}x",
            warm_ratio <= 0.5,
        ),
        Target(
            f"{scenario}, first run vs stdlib",
            "<= 0.8x",
            f"{first_ratio:.2f}x",
            first_ratio <= 0.8,
        ),
        Target(
            f"{scenario}, warm token cache, TCP connections",
            "1 per run",
            f"{warm_connections:.3g} per run",
            warm_connections == 1,
        ),
    ]
    return Outcome(rows, targets, _notes(results))


def _notes(results: dict[str, Trips]) -> list[str]:
    """Split each run into network, CPU, and the rest (waiting for a CPU on a busy
    machine), and say what the targets would need."""
    trip_ms = ROUND_TRIP_SECONDS * 1e3
    network = {name: result.round_trips * trip_ms for name, result in results.items()}
    cpu = {name: statistics.median(result.cpu_seconds) * 1e3 for name, result in results.items()}
    wall = {name: result.median * 1e3 for name, result in results.items()}
    idle = {name: network[name] + cpu[name] for name in results}
    lines = [
        f"- {name}: {results[name].round_trips:.3g} round trips = {network[name]:.0f} ms on "
        f"the network; {cpu[name]:.0f} ms of CPU (interpreter, imports, trust store, TLS); "
        f"{wall[name] - idle[name]:.0f} ms more waiting (for a CPU, on a shared machine)"
        for name in results
    ]
    baseline = idle[BASELINE]
    return [
        f"Cold runs with {trip_ms:.0f} ms round trips, where the time goes (medians):\n\n"
        + "\n".join(lines),
        "Network plus CPU is what a run takes on an idle machine: "
        f"{baseline:.0f} ms for the baseline, {idle[FIRST_RUN]:.0f} ms "
        f"({idle[FIRST_RUN] / baseline:.2f}x) for the first run, {idle[WARM]:.0f} ms "
        f"({idle[WARM] / baseline:.2f}x) with a warm token cache. The round trips are as few "
        "as the protocol allows (one connection and two requests once the token is "
        f"cached); for 0.5x the warm run's CPU would have to fit in "
        f"{baseline / 2 - network[WARM]:.0f} ms, and for 0.8x the first run's in "
        f"{baseline * 0.8 - network[FIRST_RUN]:.0f} ms.",
    ]
