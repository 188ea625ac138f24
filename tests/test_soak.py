"""A soak run: thousands of monitored jobs, many threads, both transports, random faults.

The core's own tests show each promise of the reliability contract once; this run shows
they hold thousands of times over and mixed together, with nothing leaking:

- no exception ever escapes a ping, and every job hands back exactly what it produced;
- every ping returns within ``ping_timeout`` plus a small margin, whatever the server does;
- once the server is healthy again, runs are delivered with paired start/outcome run ids;
- file descriptors and threads return to their starting counts after the clients close,
  and memory does not grow with the number of jobs.

A loopback server picks a fault per request from a seeded generator (``STEADYCRON_SOAK_SEED``)
and some jobs go to a port nobody listens on or to a listener that never accepts. The
default size (``STEADYCRON_SOAK_JOBS``, 2000) runs in well under a minute on two cores; set
it higher for a long run by hand. Run pytest with ``-s`` to see the summary line; it is also
written as JSON under the test's tmp dir.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import socket
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from loopback import Answer, LoopbackServer, Received, StandIn, closed_port_url, wait_for

from steadycron import Config, SteadyCron
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

pytestmark = pytest.mark.slow

JOBS = int(os.environ.get("STEADYCRON_SOAK_JOBS") or 2000)
SEED = int(os.environ.get("STEADYCRON_SOAK_SEED") or 20240611)
THREADS = 16
PING_TIMEOUT = 0.2
RESOLVE_CACHE_TTL = 0.25
#: Scheduling noise allowed beyond a ping's deadline: 16 job threads, the send workers
#: and the server's own threads share two cores and one interpreter lock.
OVERSHOOT_MARGIN = 0.5
#: Growth of traced memory allowed over the second half of the run (all of it).
MEMORY_SLACK_BYTES = 512 * 1024
HEALTHY_JOBS_PER_THREAD = 8
#: A silent answer resets the connection this long after the request; a dripping one
#: sends a byte per interval: both far beyond PING_TIMEOUT.
SILENT_SECONDS = 1.5
DRIP_SECONDS_PER_BYTE = 0.01

API_KEY = "sc_ro_soak_api_key_73be"
KEYS = [f"soak-job-{n}" for n in range(8)]
TOKENS = {key: f"tok_soak_{n}_c41f" for n, key in enumerate(KEYS)}
#: Half the keys are given as direct tokens to the clients that cannot reach any server,
#: so their pings (not only their resolutions) meet the dead port.
DIRECT = {key: TOKENS[key] for key in KEYS[::2]}
SECRETS = (API_KEY, *TOKENS.values())

#: Per-request faults of the loopback server, with their weights.
SERVER_FAULTS: Mapping[str, int] = {
    "answered": 45,
    "5xx": 12,
    "429": 10,
    "reset": 10,
    "silent": 8,
    "drip": 8,
}
#: Where a job's client sends its requests: the faulty server, or nowhere useful.
ROUTES: Mapping[str, int] = {"server": 84, "refused": 8, "black_hole": 8}


class FaultyServer:
    """Answers like SteadyCron, but each request meets a fault drawn from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.standin = StandIn(TOKENS, api_key=API_KEY)
        self.faulty = True
        self.keep = False
        self.received: list[Received] = []
        self.injected: Counter[str] = Counter()
        self.slow_until = 0.0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def record(self, received: Received) -> None:
        if self.keep:
            with self._lock:
                self.received.append(received)

    def __call__(self, received: Received) -> Answer:
        if not self.faulty:
            return self.standin(received)
        with self._lock:
            kind = self._random.choices(list(SERVER_FAULTS), list(SERVER_FAULTS.values()))[0]
            status = self._random.choice((500, 502, 503, 504))
            retry_after = self._random.choice(("0", "0.05", "120"))
            self.injected[kind] += 1
        if kind == "5xx":
            return Answer(status, b"upstream trouble")
        if kind == "429":
            return Answer(429, b"slow down", {"Retry-After": retry_after})
        if kind == "reset":
            return Answer(reset=True)
        if kind == "silent":
            # The request is read and no answer comes until long after any deadline.
            self._slow_for(SILENT_SECONDS)
            return Answer(delay=SILENT_SECONDS, reset=True)
        answer = self.standin(received)
        if kind == "drip":
            self._slow_for((len(answer.body) + 200) * DRIP_SECONDS_PER_BYTE)
            return attrs.evolve(answer, drip_seconds_per_byte=DRIP_SECONDS_PER_BYTE)
        return answer

    def _slow_for(self, seconds: float) -> None:
        with self._lock:
            self.slow_until = max(self.slow_until, time.monotonic() + seconds)

    def quiesce(self) -> None:
        """Wait until every silent or dripping answer begun so far has ended."""
        time.sleep(max(0.0, self.slow_until - time.monotonic()) + 0.3)


@contextmanager
def faulty_server(plan: FaultyServer) -> Iterator[LoopbackServer]:
    server = LoopbackServer(plan)
    server.record = plan.record  # type: ignore[method-assign]
    # A client that walked away at its deadline breaks the pipe of a dripping answer:
    # expected here, not worth a traceback on stderr.
    server._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    # socketserver's backlog of 5 drops connections of 16 busy threads before any fault does.
    server._server.socket.listen(128)
    with server:
        yield server


@contextmanager
def black_hole() -> Iterator[str]:
    """A listener that never accepts: connections wait in (or beyond) the kernel's backlog."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


class CountingHandler(logging.Handler):
    """Counts warnings by logger and checks every record for secrets, keeping none."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.warnings: Counter[str] = Counter()
        self.leaks = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings[record.name.partition(".")[0]] += 1
        text = record.getMessage()
        if any(secret in text for secret in SECRETS):
            self.leaks += 1


@contextmanager
def logs_counted() -> Iterator[CountingHandler]:
    """Route the SDK's and urllib3's loggers to a counter (pytest's capture would keep
    every record, and memory would grow with the number of jobs)."""
    loggers = [logging.getLogger(name) for name in ("steadycron", "urllib3")]
    handler = CountingHandler()
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, (propagate, level) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)


class JobFailure(Exception):
    """What a failing job raises."""


@attrs.define
class Box:
    """What one call of a job did, seen from inside the job."""

    fail: bool
    number: int
    started: float = 0.0
    ended: float = 0.0
    produced: object = None


def job_body(box: Box) -> object:
    box.started = time.monotonic()
    produced: object = JobFailure(f"job {box.number} failed") if box.fail else [box.number]
    box.produced = produced
    box.ended = time.monotonic()
    if isinstance(produced, BaseException):
        raise produced
    return produced


@attrs.frozen
class Planned:
    number: int
    job: Callable[[Box], object]
    route: str
    fail: bool


class Tally:
    """What the job threads saw; only counters and maxima, so it does not grow."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs = 0
        self.failing_jobs = 0
        self.escaped = 0
        self.escaped_examples: list[str] = []
        self.worst_overshoot = float("-inf")
        self.routes: Counter[str] = Counter()

    def add(self, planned: Planned, overshoot: float, escaped: str | None) -> None:
        with self.lock:
            self.jobs += 1
            self.failing_jobs += planned.fail
            self.routes[planned.route] += 1
            self.worst_overshoot = max(self.worst_overshoot, overshoot)
            if escaped is not None:
                self.escaped += 1
                if len(self.escaped_examples) < 5:
                    self.escaped_examples.append(escaped)


def run_one(planned: Planned, tally: Tally) -> None:
    box = Box(planned.fail, planned.number)
    called = time.monotonic()
    result: object = None
    caught: BaseException | None = None
    try:
        result = planned.job(box)
    except BaseException as exc:  # every escape is counted, not propagated
        caught = exc
    returned = time.monotonic()
    escaped = None
    if not box.started:
        escaped = f"job {planned.number} did not run: {caught!r}"
    elif planned.fail:
        if caught is None or caught is not box.produced:
            escaped = f"job {planned.number} raised {caught!r} instead of its own error"
        elif caught.__context__ is not None or caught.__cause__ is not None:
            escaped = f"job {planned.number}'s error came back with another chained to it"
    elif caught is not None or result is not box.produced:
        escaped = f"job {planned.number} gave {caught or result!r} instead of its own value"
    start_ping = box.started - called if box.started else returned - called
    outcome_ping = returned - box.ended if box.started else 0.0
    tally.add(planned, max(start_ping, outcome_ping) - PING_TIMEOUT, escaped)


def run_in_threads(plans: list[Planned], tally: Tally) -> None:
    """Run *plans* on THREADS threads released together; each thread takes every n-th job."""
    barrier = threading.Barrier(THREADS)

    def work(offset: int) -> None:
        barrier.wait()
        for planned in plans[offset::THREADS]:
            run_one(planned, tally)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a job thread hung"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def traced_after_gc() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def make_client(api_url: str, ping_url: str, transport: Transport, **extra: Any) -> SteadyCron:
    config = Config(
        api_key=API_KEY,
        api_url=api_url,
        ping_url=ping_url,
        ping_timeout=PING_TIMEOUT,
        resolve_cache_ttl=RESOLVE_CACHE_TTL,
        capture_errors=True,
        **extra,
    )
    return SteadyCron(config, transport=transport)


def plan_jobs(
    count: int, rng: random.Random, clients: Mapping[tuple[str, str], SteadyCron], routes: bool
) -> list[Planned]:
    """Deterministic job list: which client, key and outcome each job has."""
    jobs = {
        (route, transport, key): client.job(key)(job_body)
        for (route, transport), client in clients.items()
        for key in KEYS
    }
    plans = []
    for number in range(count):
        route = "server"
        if routes:
            route = rng.choices(list(ROUTES), list(ROUTES.values()))[0]
        transport = rng.choice(("urllib3", "stdlib"))
        key = rng.choice(KEYS)
        fail = rng.random() < 0.3
        plans.append(Planned(number, jobs[route, transport, key], route, fail))
    return plans


def test_the_reliability_contract_holds_under_a_storm_of_faults(tmp_path: Path) -> None:
    started = time.monotonic()
    gc.collect()
    fds_before = open_fds()
    threads_before = threading.active_count()
    rng = random.Random(SEED)
    plan = FaultyServer(SEED)
    clients: dict[tuple[str, str], SteadyCron] = {}
    tracemalloc.start()
    try:
        with faulty_server(plan) as server, black_hole() as hole, logs_counted() as log:
            refused = closed_port_url()
            urls = {"server": server.url, "refused": refused, "black_hole": hole}
            for route, url in urls.items():
                extra = {} if route == "server" else {"monitors": DIRECT}
                clients[route, "urllib3"] = make_client(url, url, Urllib3Transport(), **extra)
                clients[route, "stdlib"] = make_client(url, url, StdlibTransport(), **extra)

            plans = plan_jobs(JOBS, rng, clients, routes=True)
            tally = Tally()
            warm_up, half = len(plans) // 10, len(plans) // 2
            run_in_threads(plans[:warm_up], tally)
            plan.quiesce()
            memory_warm = traced_after_gc()
            run_in_threads(plans[warm_up:half], tally)
            plan.quiesce()
            memory_half, rss_half = traced_after_gc(), rss_bytes()
            run_in_threads(plans[half:], tally)
            storm_seconds = time.monotonic() - started
            plan.quiesce()
            memory_end, rss_end = traced_after_gc(), rss_bytes()

            # The storm is over: the same clients deliver every run, start and outcome paired.
            plan.faulty = False
            plan.keep = True
            healthy_clients = {k: c for k, c in clients.items() if k[0] == "server"}
            healthy = plan_jobs(THREADS * HEALTHY_JOBS_PER_THREAD, rng, healthy_clients, False)
            healthy_tally = Tally()
            run_in_threads(healthy, healthy_tally)
            delivered = list(plan.received)
        for client in clients.values():
            client.close()
    finally:
        tracemalloc.stop()
        for client in clients.values():
            client.close()

    fds_settled = wait_for(lambda: open_fds() <= fds_before, timeout=10)
    threads_settled = wait_for(lambda: threading.active_count() <= threads_before, timeout=10)
    fds_after, threads_after = open_fds(), threading.active_count()

    runs: dict[str, list[tuple[str, bytes]]] = {}
    for request in delivered:
        if request.path.startswith("/tok_"):
            state = request.path.rsplit("/", 1)[-1] if request.path.count("/") > 1 else "success"
            runs.setdefault(request.query.get("run_id", ""), []).append((state, request.body))
    fail_messages = sorted(body.decode() for states in runs.values() for s, body in states if body)
    expected_messages = sorted(
        f"JobFailure: job {planned.number} failed" for planned in healthy if planned.fail
    )

    summary = {
        "seed": SEED,
        "threads": THREADS,
        "jobs_run": tally.jobs + healthy_tally.jobs,
        "storm_jobs": tally.jobs,
        "failing_jobs": tally.failing_jobs + healthy_tally.failing_jobs,
        "requests_answered_normally": plan.injected["answered"],
        "faults_injected": {
            **{kind: n for kind, n in sorted(plan.injected.items()) if kind != "answered"},
            "refused_port_jobs": tally.routes["refused"],
            "black_hole_jobs": tally.routes["black_hole"],
        },
        "exceptions_escaped": tally.escaped + healthy_tally.escaped,
        "worst_overshoot_seconds": round(max(tally.worst_overshoot, 0.0), 4),
        "ping_timeout_seconds": PING_TIMEOUT,
        "warnings_logged": dict(log.warnings),
        "secrets_in_log": log.leaks,
        "healthy_runs_delivered": sum(len(s) == 2 for s in runs.values()),
        "fds": [fds_before, fds_after],
        "live_threads": [threads_before, threads_after],
        "traced_memory_growth_bytes": {
            "first_half": memory_half - memory_warm,
            "second_half": memory_end - memory_half,
        },
        "rss_growth_second_half_bytes": rss_end - rss_half,
        "storm_seconds": round(storm_seconds, 1),
    }
    (tmp_path / "soak-summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nsoak summary: {json.dumps(summary)}")

    assert tally.jobs == JOBS
    assert summary["exceptions_escaped"] == 0, tally.escaped_examples + (
        healthy_tally.escaped_examples
    )
    assert tally.worst_overshoot < OVERSHOOT_MARGIN, summary
    assert all(plan.injected[kind] > 0 for kind in SERVER_FAULTS), summary
    assert log.warnings["steadycron"] > 0
    assert log.leaks == 0

    assert len(runs) == len(healthy), summary
    unpaired = {
        run_id: states
        for run_id, states in runs.items()
        if [state for state, _ in states] not in (["start", "success"], ["start", "fail"])
    }
    assert not unpaired, unpaired
    assert fail_messages == expected_messages
    assert healthy_tally.worst_overshoot < OVERSHOOT_MARGIN

    assert fds_settled, summary
    assert threads_settled, summary
    assert memory_end - memory_half < MEMORY_SLACK_BYTES, summary
