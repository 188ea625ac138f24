"""API.md §5: a ping swallows its own exchange's trouble, never what is raised into it.

A ``SIGALRM`` handler that raises the application's own job timeout (an ordinary
``Exception``), or ``KeyboardInterrupt``, arriving while a ping waits must reach the
caller at once, wherever the exchange runs: on a worker thread (a new connection), on the
caller's thread (an open connection), or inline (an in-memory transport). And the
exchange it interrupted is abandoned: nothing is sent for it afterwards.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from conftest import KEY, TOKEN
from loopback import Answer, LoopbackServer, Received

from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import (
    InMemoryTransport,
    Request,
    Response,
    StdlibTransport,
    Transport,
    Urllib3Transport,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers")

#: When the alarm goes off, and how late the interruption may reach the caller.
ALARM = 0.3
SLACK = 0.7
#: Far longer than the alarm: a ping that is not interrupted takes this long.
SLOW = 3.0
HUNG_HOST = "hangs.steadycron-test.invalid"


class JobTimeout(Exception):
    """What an application's SIGALRM handler raises when a job runs too long."""


def raise_job_timeout(signum: int, frame: FrameType | None) -> None:
    raise JobTimeout("the job ran out of time")


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@pytest.fixture
def alarm() -> Iterator[Callable[[Callable[[int, FrameType | None], None]], None]]:
    """Arm SIGALRM to go off after ALARM seconds with the given handler."""
    previous = signal.getsignal(signal.SIGALRM)

    def arm(handler: Callable[[int, FrameType | None], None]) -> None:
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, ALARM)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def slow_server() -> Iterator[LoopbackServer]:
    """Answers pings after SLOW seconds, unless a test says otherwise."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def server(slow_server: LoopbackServer) -> LoopbackServer:
    return slow_server.reuse(lambda received: Answer(200, delay=SLOW))


def client_for(url: str, transport: Transport, **settings: Any) -> SteadyCron:
    config = Config(ping_url=url, monitors={KEY: TOKEN}, ping_timeout=5.0, **settings)
    return SteadyCron(config, transport=transport)


NETWORK = [
    pytest.param(Urllib3Transport, False, id="urllib3-new-connection"),
    pytest.param(Urllib3Transport, True, id="urllib3-open-connection"),
    pytest.param(StdlibTransport, False, id="stdlib"),
]


def opened(client: SteadyCron, server: LoopbackServer, open_connection: bool) -> None:
    """Leave a pooled connection open (one quick ping) when the case asks for it."""
    if open_connection:
        respond = server.respond
        server.respond = lambda received: Answer(200)
        assert client.send(Ping(KEY, "success")).delivered
        assert server.connections == 1
        server.respond = respond


@pytest.mark.parametrize(("transport_class", "open_connection"), NETWORK)
def test_a_signal_handlers_exception_during_a_manual_ping_propagates_at_once(
    server: LoopbackServer,
    transport_class: Callable[[], Transport],
    open_connection: bool,
    alarm: Callable[..., None],
) -> None:
    with client_for(server.url, transport_class()) as client:
        opened(client, server, open_connection)
        alarm(raise_job_timeout)
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            client.Monitor(KEY).ping()
        assert time.monotonic() - started < ALARM + SLACK


@pytest.mark.parametrize(("transport_class", "open_connection"), NETWORK)
def test_a_signal_handlers_exception_during_a_tracked_runs_pings_propagates(
    server: LoopbackServer,
    transport_class: Callable[[], Transport],
    open_connection: bool,
    alarm: Callable[..., None],
) -> None:
    """During the start ping (its request sent, its answer slow) the job never runs and
    its run is closed with a fail, answered at once here, before the timeout goes on;
    during the outcome ping the timeout reaches the caller at once."""
    ran: list[str] = []
    with client_for(server.url, transport_class()) as client:
        opened(client, server, open_connection)
        server.reuse(
            lambda received: (
                Answer(200, delay=SLOW) if received.path.endswith("/start") else Answer(200)
            )
        )

        @client.job(KEY)
        def job() -> None:
            ran.append("ran")

        alarm(raise_job_timeout)
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            job()
        assert time.monotonic() - started < ALARM + SLACK
        assert ran == []
        assert [r.path for r in server.received] == [f"/{TOKEN}/start", f"/{TOKEN}/fail"]

        server.reuse(
            lambda received: (
                Answer(200) if received.path.endswith("/start") else Answer(200, delay=SLOW)
            )
        )
        alarm(raise_job_timeout)
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            job()
        assert time.monotonic() - started < ALARM + SLACK
        assert ran == ["ran"]


def test_a_signal_handlers_exception_during_an_in_memory_send_propagates(
    alarm: Callable[..., None],
) -> None:
    def slow(request: Request) -> Response | None:
        time.sleep(SLOW)
        return None

    with client_for("http://127.0.0.1:9", InMemoryTransport(handler=slow)) as client:
        alarm(raise_job_timeout)
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            client.ping(KEY)
        assert time.monotonic() - started < ALARM + SLACK


@pytest.mark.parametrize(("transport_class", "open_connection"), NETWORK)
def test_keyboard_interrupt_during_a_ping_propagates_at_once(
    server: LoopbackServer,
    transport_class: Callable[[], Transport],
    open_connection: bool,
    alarm: Callable[..., None],
) -> None:
    with client_for(server.url, transport_class()) as client:
        opened(client, server, open_connection)
        alarm(raise_keyboard_interrupt)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            client.ping(KEY)
        assert time.monotonic() - started < ALARM + SLACK


@pytest.fixture
def hung_lookup(monkeypatch: pytest.MonkeyPatch, slow_server: LoopbackServer) -> Iterator[str]:
    """A base URL whose name lookup takes 1 s, then finds the loopback server."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HUNG_HOST:
            release.wait(1.0)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield f"http://{HUNG_HOST}:{slow_server.port}"
    release.set()


@pytest.mark.parametrize("transport_class", [Urllib3Transport, StdlibTransport])
def test_a_run_interrupted_before_its_start_was_sent_leaves_at_once_and_sends_nothing(
    server: LoopbackServer,
    hung_lookup: str,
    transport_class: Callable[[], Transport],
    alarm: Callable[..., None],
) -> None:
    """Nothing of the start went out (its name lookup still hung): there is no run to
    close, so the timeout goes on at once, and nothing is ever sent for it."""
    server.reuse(lambda received: Answer(200))
    ran: list[str] = []
    with client_for(hung_lookup, transport_class()) as client:

        @client.job(KEY)
        def job() -> None:
            ran.append("ran")

        alarm(raise_job_timeout)
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            job()
        assert time.monotonic() - started < ALARM + SLACK
        time.sleep(1.5)  # the lookup has long returned: a late send would have arrived
    assert ran == []
    assert server.received == []


@pytest.mark.parametrize("transport_class", [Urllib3Transport, StdlibTransport])
def test_an_interrupted_exchange_sends_nothing_afterwards(
    server: LoopbackServer,
    hung_lookup: str,
    transport_class: Callable[[], Transport],
    alarm: Callable[..., None],
) -> None:
    received: list[Received] = []
    server.respond = lambda request: received.append(request) or Answer(200)  # type: ignore[func-returns-value]
    with client_for(hung_lookup, transport_class()) as client:
        alarm(raise_job_timeout)
        with pytest.raises(JobTimeout):
            client.ping(KEY, "start")
        time.sleep(1.5)  # the lookup has long returned: a late send would have arrived
    assert received == []


SIGNAL_STORM = """
import os, random, signal, sys, threading, time
from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import StdlibTransport, Urllib3Transport

class JobTimeout(Exception):
    pass

armed = False

def on_alarm(signum, frame):
    global armed
    if armed:
        armed = False
        raise JobTimeout

def stuck():  # a deadlock never ends the script: report it instead
    time.sleep(60)
    print("stuck", flush=True)
    os._exit(3)

threading.Thread(target=stuck, daemon=True).start()
signal.signal(signal.SIGALRM, on_alarm)
url, seconds = sys.argv[1], float(sys.argv[2])
clients = [
    SteadyCron(Config(ping_url=url, monitors={"k": "tok"}, ping_timeout=5), transport=transport)
    for transport in (Urllib3Transport(), Urllib3Transport(maxsize=1), StdlibTransport())
]
rng = random.Random(7)
interrupted = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for client in clients:
        signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00005, 0.003))
        armed = True
        try:
            client.ping("k")
            armed = False
        except JobTimeout:
            interrupted += 1
signal.setitimer(signal.ITIMER_REAL, 0)
armed = False
delivered = [client.send(Ping("k", "success")).delivered for client in clients]
print(interrupted, delivered, flush=True)
"""


def test_a_storm_of_interrupts_never_leaves_a_lock_held(slow_server: LoopbackServer) -> None:
    """Signal handlers' exceptions landing anywhere in thousands of pings (on the caller's
    thread, in the pool, the watchdog, the worker hand-off) never wedge a later ping."""
    server = slow_server.reuse(lambda received: Answer(200))
    ran = subprocess.run(
        [sys.executable, "-c", SIGNAL_STORM, server.url, "3"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    interrupted, delivered = ran.stdout.split(" ", 1)
    assert int(interrupted) > 100
    assert delivered.strip() == "[True, True, True]"
