"""The worst case: one ping when SteadyCron accepts and never answers, drips its answer
a byte at a time, or when the name lookup hangs; and a ping on a kept-alive connection
(the first ping was answered) that then stalls.

Socket timeouts bound single reads, so none of these is cut short by them; only the
SDK's hard deadline is. The hung lookup is staged in this process by making
``socket.getaddrinfo`` block for one made-up host name.

And what an outage costs a tracked run (start and outcome ping) when SteadyCron refuses
connections: the first run pays one ping budget, the circuit breaker spares the next.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from steadycron import Config, SteadyCron
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

from .bench import Bench, Outcome
from .report import Row, Target

PING_TIMEOUT = 1.0
ALLOWANCE = 0.05
HUNG_HOST = "lookup-hangs.invalid"
TRANSPORTS: dict[str, Callable[[], Transport]] = {
    "Urllib3Transport": Urllib3Transport,
    "StdlibTransport": StdlibTransport,
}


@contextlib.contextmanager
def hanging_lookup() -> Iterator[None]:
    """Make name lookups of HUNG_HOST block until the block ends (no lookup leaves here)."""
    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HUNG_HOST:
            release.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "lookup released")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real
        release.set()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The SDK logs each discarded ping; here discarding is the point."""
    logger = logging.getLogger("steadycron")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _ping_seconds(ping_url: str, transport: Transport, *, warm: bool) -> float:
    """Wall time of one ping; with *warm*, after a first ping that opened the connection."""
    config = Config(ping_url=ping_url, ping_timeout=PING_TIMEOUT, monitors={"k": "token"})
    with SteadyCron(config, transport=transport) as client:
        if warm:
            client.ping("k", "start")
        started = time.perf_counter()
        client.ping("k")
        return time.perf_counter() - started


def measure(bench: Bench) -> Outcome:
    faults = {
        "never answers": (bench.servers.url("silent"), False),
        "drips a byte at a time": (bench.servers.url("drip"), False),
        "name lookup hangs": (f"http://{HUNG_HOST}:{bench.servers.ports['silent']}", False),
        "open connection stops answering": (bench.servers.url("silent-after-one"), True),
        "open connection starts dripping": (bench.servers.url("drip-after-one"), True),
    }
    rows = []
    worst = 0.0
    with quiet(), hanging_lookup():
        for fault, (url, warm) in faults.items():
            for name, transport in TRANSPORTS.items():
                if warm and name == "StdlibTransport":
                    continue  # it opens a connection per ping: nothing stays open
                rounds = range(bench.scale(3, 1))
                samples = [_ping_seconds(url, transport(), warm=warm) for _ in rounds]
                seconds = statistics.median(samples)
                worst = max(worst, *samples)
                rows.append(Row(f"worst case: {fault}", name, seconds * 1e3, "ms"))
    rows.extend(_outage_rows())
    limit = PING_TIMEOUT + ALLOWANCE
    target = Target(
        f"worst case, ping_timeout={PING_TIMEOUT:g} s, every fault",
        f"<= {limit * 1e3:.0f} ms",
        f"{worst * 1e3:.0f} ms (slowest ping)",
        worst <= limit,
    )
    return Outcome(rows, [target])


def _nothing() -> None:
    """The job: the run is all monitoring."""


def _outage_rows() -> list[Row]:
    """A tracked run against a refused port: the first, then the ones after it."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()  # nobody listens there now: connections are refused at once
    config = Config(ping_url=refused, ping_timeout=PING_TIMEOUT, monitors={"k": "token"})
    rows = []
    with quiet(), SteadyCron(config, transport=Urllib3Transport()) as client:
        run = client.job("k")(_nothing)
        for label in ("first run", "next run"):
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            rows.append(Row("hard outage: refused port", label, seconds * 1e3, "ms"))
    return rows
