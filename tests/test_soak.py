"""A soak run: thousands of monitored jobs, many threads, both transports, random faults.

The core's own tests show each promise of the reliability contract once; this run shows
they hold thousands of times over and mixed together, with nothing leaking:

- no exception ever escapes a ping, and every job hands back exactly what it produced;
- every ping returns within ``ping_timeout`` plus a small margin, whatever the server does;
- no ping makes more than ``MAX_ATTEMPTS`` attempts, whatever ``Retry-After`` says (0 too);
- during a hard outage (a refused port, a black hole) a tracked run costs at most one ping
  budget in total: the circuit breaker holds back what follows the first failure;
- a client whose API drips its answers keeps delivering direct-token pings to its healthy
  ping host, every one of them;
- on the main thread, ``SIGALRM`` handlers raise the application's job timeout at random
  moments, during pings or jobs: it always reaches the caller at once; and the process
  forks while a fresh HTTPS client reads its trust store: every child pings over HTTPS;
- once the server is healthy again, pings are delivered within the breaker's cool-down,
  and then every run with paired start/outcome run ids;
- file descriptors and threads return to their starting counts after the clients close,
  and memory does not grow with the number of jobs.

A loopback server picks a fault per request from a seeded generator (``STEADYCRON_SOAK_SEED``)
and some jobs go to a port nobody listens on, to a listener that never accepts, or to a
client whose API drips. The default size (``STEADYCRON_SOAK_JOBS``, 2000) runs in about 45 s
on two cores; set it higher for a long run by hand. Run pytest with ``-s`` to see
the summary line; it is also written as JSON under the test's tmp dir.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from loopback import Answer, LoopbackServer, Received, StandIn, closed_port_url, wait_for
from soak_lanes import MainLane

from steadycron import Config, SteadyCron
from steadycron._breaker import Breaker
from steadycron._ping import Ping
from steadycron._pinger import MAX_ATTEMPTS
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

pytestmark = pytest.mark.slow

JOBS = int(os.environ.get("STEADYCRON_SOAK_JOBS") or 2000)
SEED = int(os.environ.get("STEADYCRON_SOAK_SEED") or 20240611)
THREADS = 16
#: Short, so the faults that use the whole budget keep the run fast; long enough that a
#: healthy loopback answer is not lost to the scheduling of 16 busy threads on 2 cores
#: (a lost one would open a client's breaker and cost the runs behind it too).
PING_TIMEOUT = 0.5
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
#: Where a job's client sends its requests: the faulty server, nowhere useful, or a healthy
#: ping host with an API that drips every answer.
ROUTES: Mapping[str, int] = {"server": 76, "refused": 8, "black_hole": 8, "drip_api": 8}
HARD_OUTAGES = ("refused", "black_hole")
#: The breakers' cool-downs, shortened so the storm's flaky server is probed again and
#: again (exercising the breaker thousands of times) while the hard outages stay closed
#: for longer than any run lasts. The arithmetic of the real ones has its own tests.
FLAKY_COOLDOWNS = (0.05, 0.2)
OUTAGE_COOLDOWNS = (1.0, 2.0)
#: Resolve answers of the dripping API: a byte every 10 ms, seconds for each.
API_DRIP_SECONDS_PER_BYTE = 0.01


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
        self.most_attempts = 0

    def handle(self, record: logging.LogRecord) -> bool:
        # Not logging's acquire()/try: the main lane's alarms could land between the two
        # and leave the handler's lock held; a `with` statement never does.
        if self.filter(record):
            with self.lock:  # type: ignore[union-attr]
                self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.warnings[record.name.partition(".")[0]] += 1
            if "attempts=" in text:
                attempts = int(text.rsplit("attempts=", 1)[1].split()[0])
                self.most_attempts = max(self.most_attempts, attempts)
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
    key: str


class Tally:
    """What the job threads saw; only counters and maxima, so it does not grow."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs = 0
        self.failing_jobs = 0
        self.escaped = 0
        self.escaped_examples: list[str] = []
        self.worst_overshoot = float("-inf")
        self.worst_outage_run = 0.0
        self.routes: Counter[str] = Counter()
        self.direct_drip_route_runs = 0

    def add(self, planned: Planned, overshoot: float, run_cost: float, escaped: str | None) -> None:
        with self.lock:
            self.jobs += 1
            self.failing_jobs += planned.fail
            self.routes[planned.route] += 1
            self.worst_overshoot = max(self.worst_overshoot, overshoot)
            if planned.route in HARD_OUTAGES:
                self.worst_outage_run = max(self.worst_outage_run, run_cost)
            if planned.route == "drip_api" and planned.key in DIRECT:
                self.direct_drip_route_runs += 1
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
    tally.add(
        planned, max(start_ping, outcome_ping) - PING_TIMEOUT, start_ping + outcome_ping, escaped
    )


def run_in_threads(plans: list[Planned], tally: Tally, lane: MainLane | None = None) -> None:
    """Run *plans* on THREADS threads released together; each thread takes every n-th job.
    Meanwhile the main thread works in *lane*."""
    barrier = threading.Barrier(THREADS)

    def work(offset: int) -> None:
        barrier.wait()
        for planned in plans[offset::THREADS]:
            run_one(planned, tally)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    if lane is not None:
        lane.run_until(lambda: not any(thread.is_alive() for thread in threads))
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


def make_client(
    api_url: str,
    ping_url: str,
    transport: Transport,
    cooldowns: tuple[float, float],
    **extra: Any,
) -> SteadyCron:
    config = Config(
        api_key=API_KEY,
        api_url=api_url,
        ping_url=ping_url,
        ping_timeout=PING_TIMEOUT,
        resolve_cache_ttl=RESOLVE_CACHE_TTL,
        capture_errors=True,
        **extra,
    )
    client = SteadyCron(config, transport=transport)
    first, most = cooldowns
    client._pinger.breaker = Breaker(first_cooldown=first, max_cooldown=most)
    return client


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
        plans.append(Planned(number, jobs[route, transport, key], route, fail, key))
    return plans


class PingCounter:
    """Counts the pings a healthy host receives (counts only, so memory stays flat)."""

    def __init__(self) -> None:
        self.starts = 0
        self.outcomes = 0
        self._lock = threading.Lock()

    def record(self, received: Received) -> None:
        with self._lock:
            if received.path.endswith("/start"):
                self.starts += 1
            else:
                self.outcomes += 1


@contextmanager
def dripping_api() -> Iterator[LoopbackServer]:
    """An API whose every answer drips in, a byte at a time, for seconds."""
    standin = StandIn(TOKENS, api_key=API_KEY)

    def drip(received: Received) -> Answer:
        return attrs.evolve(standin(received), drip_seconds_per_byte=API_DRIP_SECONDS_PER_BYTE)

    server = LoopbackServer(drip)
    server.record = lambda received: None  # type: ignore[method-assign]
    server._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    server._server.socket.listen(128)
    with server:
        yield server


@contextmanager
def healthy_ping_host(counter: PingCounter) -> Iterator[LoopbackServer]:
    server = LoopbackServer(StandIn(TOKENS, api_key=API_KEY))
    server.record = counter.record  # type: ignore[method-assign]
    server._server.socket.listen(128)
    with server:
        yield server


def trust_bundle(ca_file: str, folder: Path) -> str:
    """The system's CA bundle plus the test CA: as long to read as a real trust store."""
    import ssl

    paths = ssl.get_default_verify_paths()
    bundle = folder / "trust.pem"
    system = Path(paths.cafile or paths.openssl_cafile)
    text = system.read_text() if system.is_file() else ""
    bundle.write_text(text + Path(ca_file).read_text())
    return str(bundle)


def recovery_seconds(clients: Mapping[tuple[str, str], SteadyCron]) -> float:
    """From now, how long until every client gets a ping (and its resolve) through."""
    started = time.monotonic()
    waiting = dict(clients)
    while waiting and time.monotonic() - started < 30:
        for name, client in list(waiting.items()):
            if client.send(Ping(KEYS[0], "success")).delivered:
                del waiting[name]
        time.sleep(0.01)
    assert not waiting, f"never delivered again: {sorted(waiting)}"
    return time.monotonic() - started


def test_the_reliability_contract_holds_under_a_storm_of_faults(
    tmp_path: Path, server_tls: Any, ca_file: str
) -> None:
    started = time.monotonic()
    gc.collect()
    fds_before = open_fds()
    threads_before = threading.active_count()
    rng = random.Random(SEED)
    plan = FaultyServer(SEED)
    drip_route_pings = PingCounter()
    clients: dict[tuple[str, str], SteadyCron] = {}
    tracemalloc.start()
    try:
        with ExitStack() as servers:
            server = servers.enter_context(faulty_server(plan))
            hole = servers.enter_context(black_hole())
            log = servers.enter_context(logs_counted())
            drip_api = servers.enter_context(dripping_api())
            ping_host = servers.enter_context(healthy_ping_host(drip_route_pings))
            https = servers.enter_context(LoopbackServer(StandIn(TOKENS), tls=server_tls))
            # Answers within the budget, slowly: the main lane's alarms land in its pings.
            # A fail is answered at once: the one that closes a run whose start an alarm
            # interrupted is part of the time the alarm takes to reach its caller.
            slow = servers.enter_context(
                LoopbackServer(
                    lambda received: Answer(
                        delay=0 if received.path.endswith("/fail") else rng.uniform(0, 0.375)
                    )
                )
            )
            refused = closed_port_url()
            hosts = {
                "server": (server.url, server.url, FLAKY_COOLDOWNS, {}),
                "refused": (refused, refused, OUTAGE_COOLDOWNS, {"monitors": DIRECT}),
                "black_hole": (hole, hole, OUTAGE_COOLDOWNS, {"monitors": DIRECT}),
                "drip_api": (drip_api.url, ping_host.url, OUTAGE_COOLDOWNS, {"monitors": DIRECT}),
            }
            for route, (api_url, ping_url, cooldowns, extra) in hosts.items():
                for name, transport_class in (
                    ("urllib3", Urllib3Transport),
                    ("stdlib", StdlibTransport),
                ):
                    clients[route, name] = make_client(
                        api_url, ping_url, transport_class(), cooldowns, **extra
                    )
            interrupted = make_client(
                slow.url, slow.url, Urllib3Transport(), FLAKY_COOLDOWNS, monitors=DIRECT
            )
            clients["alarms", "urllib3"] = interrupted
            lane = MainLane(
                interrupted.job(KEYS[0])(lambda: time.sleep(rng.uniform(0, 0.05))),
                alarm_within=2 * PING_TIMEOUT,
                https_url=https.url,
                ca_bundle=trust_bundle(ca_file, tmp_path),
                key=KEYS[0],
                token=TOKENS[KEYS[0]],
                seed=SEED,
            )

            plans = plan_jobs(JOBS, rng, clients, routes=True)
            tally = Tally()
            warm_up, half = len(plans) // 10, len(plans) // 2
            run_in_threads(plans[:warm_up], tally, lane)
            plan.quiesce()
            memory_warm = traced_after_gc()
            run_in_threads(plans[warm_up:half], tally, lane)
            plan.quiesce()
            memory_half, rss_half = traced_after_gc(), rss_bytes()
            run_in_threads(plans[half:], tally, lane)
            storm_seconds = time.monotonic() - started
            plan.quiesce()
            memory_end, rss_end = traced_after_gc(), rss_bytes()

            # The storm is over: within the breakers' cool-down the same clients get
            # through again, and then deliver every run, start and outcome paired.
            plan.faulty = False
            healthy_clients = {k: c for k, c in clients.items() if k[0] == "server"}
            recovered_in = recovery_seconds(healthy_clients)
            plan.keep = True
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
    most_recovery = FLAKY_COOLDOWNS[1] * 1.1 + PING_TIMEOUT + OVERSHOOT_MARGIN

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
            "dripping_api_jobs": tally.routes["drip_api"],
            "alarms_fired": lane.signals.fired,
            "forks": lane.forks.forks,
            "forks_during_trust_load": lane.forks.during_trust_load,
        },
        "exceptions_escaped": tally.escaped + healthy_tally.escaped,
        "worst_overshoot_seconds": round(max(tally.worst_overshoot, 0.0), 4),
        "ping_timeout_seconds": PING_TIMEOUT,
        "most_attempts_of_a_ping": log.most_attempts,
        "worst_run_during_hard_outage_seconds": round(tally.worst_outage_run, 4),
        "direct_pings_delivered_beside_dripping_api": [
            drip_route_pings.starts + drip_route_pings.outcomes,
            2 * tally.direct_drip_route_runs,
        ],
        "alarms": attrs.asdict(lane.signals),
        "forked_children": attrs.asdict(lane.forks),
        "recovered_within_seconds": round(recovered_in, 3),
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
    assert 1 <= log.most_attempts <= MAX_ATTEMPTS, summary

    # The breaker: a run during a hard outage pays for one ping at most, and the flaky
    # server, healthy again, is reached within its cool-down.
    assert tally.worst_outage_run < PING_TIMEOUT + OVERSHOOT_MARGIN, summary
    assert recovered_in < most_recovery, summary

    # Isolation: the dripping API never cost a direct-token ping its delivery.
    assert tally.direct_drip_route_runs > 0
    assert drip_route_pings.starts == drip_route_pings.outcomes == tally.direct_drip_route_runs

    # The main thread's lane: every alarm reached its caller at once; every child pinged.
    assert lane.signals.fired > 0, summary
    assert lane.signals.swallowed == 0, summary
    assert lane.signals.during_pings > 0, summary
    assert lane.signals.worst_latency_in_pings < OVERSHOOT_MARGIN, summary
    assert lane.forks.forks > 0, summary
    assert lane.forks.children_hung == lane.forks.children_failed == 0, summary

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
