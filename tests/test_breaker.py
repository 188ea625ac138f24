"""API.md §5: an outage is paid for once, not per ping (the circuit breaker).

The cool-down arithmetic runs on a fake clock; what opens and closes the breaker is shown
over real loopback sockets: a refused port, a listener that never answers, a failed TLS
handshake, a connection reset, and servers that answer with errors (which must not open it).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, FakeClock, LoopbackServer, StandIn, closed_port_url, silent_listener

from steadycron import Config, ResolutionUnavailableError, SteadyCron
from steadycron._breaker import PASS, Admission, Breaker
from steadycron._deadline import Deadline
from steadycron._ping import Ping
from steadycron._pinger import Pinger
from steadycron.transports import (
    ConnectError,
    InMemoryTransport,
    Request,
    Response,
    StdlibTransport,
    Transport,
    Urllib3Transport,
)

HOST = "https://ping.example"
PING_TIMEOUT = 0.5
#: Scheduling noise allowed on top of a deadline.
SLACK = 0.5
#: What "at once" means for a ping the breaker holds back.
AT_ONCE = 0.1
TRANSPORTS = [
    pytest.param(Urllib3Transport, id="urllib3"),
    pytest.param(StdlibTransport, id="stdlib"),
]


def fixed_jitter() -> float:
    return 1.0


def opened(breaker: Breaker, cause: str = "refused") -> None:
    """One ordinary exchange with HOST that got no answer."""
    admission = breaker.admit(HOST)
    assert admission is PASS
    breaker.settle(HOST, admission, False, cause)


def probe(breaker: Breaker) -> Admission:
    admission = breaker.admit(HOST)
    assert isinstance(admission, Admission)
    assert admission.probe
    return admission


# -- the arithmetic ---------------------------------------------------------------------------


def test_a_host_that_gave_no_answer_is_left_alone_for_ten_seconds(clock: FakeClock) -> None:
    breaker = Breaker(clock=clock, jitter=fixed_jitter)
    assert breaker.admit(HOST) is PASS
    opened(breaker, "could not reach ping.example (NewConnectionError)")
    clock.now += 9.9
    held = breaker.admit(HOST)
    assert isinstance(held, str)
    assert HOST in held
    assert "NewConnectionError" in held
    assert breaker.admit("https://api.example") is PASS  # other hosts are not affected
    clock.now += 0.1
    probe(breaker)


def test_while_the_probe_runs_everything_else_is_held_back(clock: FakeClock) -> None:
    breaker = Breaker(clock=clock, jitter=fixed_jitter)
    opened(breaker)
    clock.now += 10
    probing = probe(breaker)
    assert isinstance(breaker.admit(HOST), str)
    breaker.settle(HOST, probing, None, "")  # interrupted: it tells nothing about the host
    probe(breaker)  # so another exchange may probe


def test_the_cool_down_doubles_while_the_host_stays_down_up_to_five_minutes(
    clock: FakeClock,
) -> None:
    breaker = Breaker(clock=clock, jitter=fixed_jitter)
    opened(breaker)
    cool_downs = []
    for _ in range(8):
        started = clock.now
        while isinstance(breaker.admit(HOST), str):
            clock.now += 1
        cool_downs.append(clock.now - started)
        breaker.settle(HOST, Admission(probe=True), False, "refused")
    assert cool_downs == [10, 20, 40, 80, 160, 300, 300, 300]


def test_the_cool_down_has_jitter_of_about_ten_percent(clock: FakeClock) -> None:
    lengths = []
    for _ in range(50):
        breaker = Breaker(clock=clock)
        opened(breaker)
        started = clock.now
        while isinstance(breaker.admit(HOST), str):
            clock.now += 0.05
        lengths.append(clock.now - started)
    assert all(8.9 <= length <= 11.1 for length in lengths), lengths
    assert max(lengths) - min(lengths) > 0.5


def test_any_http_answer_closes_it_and_the_next_outage_starts_again_at_ten_seconds(
    clock: FakeClock,
) -> None:
    breaker = Breaker(clock=clock, jitter=fixed_jitter)
    opened(breaker)
    clock.now += 10
    breaker.settle(HOST, probe(breaker), False, "refused")  # 20 s now
    clock.now += 20
    breaker.settle(HOST, probe(breaker), True, "")  # a 503 is an answer too
    assert breaker.admit(HOST) is PASS
    opened(breaker)
    clock.now += 10
    probe(breaker)


def test_a_late_failure_of_an_exchange_begun_before_the_outage_does_not_extend_it(
    clock: FakeClock,
) -> None:
    breaker = Breaker(clock=clock, jitter=fixed_jitter)
    early = breaker.admit(HOST)
    assert isinstance(early, Admission)
    opened(breaker)
    clock.now += 5
    breaker.settle(HOST, early, False, "refused")
    clock.now += 5
    probe(breaker)


def test_the_pinger_holds_back_exchanges_and_says_why(clock: FakeClock) -> None:
    def refuse(request: Request) -> Response:
        clock.now += 0.01
        raise ConnectError("could not reach ping.example (NewConnectionError)")

    transport = InMemoryTransport(handler=refuse)
    pinger = Pinger(clock=clock, sleep=clock.sleep)
    request = Request("POST", f"{HOST}/{TOKEN}")
    first = pinger.exchange(transport, request, Deadline(clock.now + 1, clock=clock))
    assert first.attempts > 1
    sent = len(transport.requests)
    held = pinger.exchange(transport, request, Deadline(clock.now + 1, clock=clock))
    assert held.attempts == 0
    assert len(transport.requests) == sent
    assert held.reason.startswith(f"not attempted: {HOST} gave no answer")
    assert "NewConnectionError" in held.reason


def test_a_new_transport_starts_with_a_closed_breaker(clock: FakeClock) -> None:
    pinger = Pinger(clock=clock, sleep=clock.sleep)
    request = Request("POST", f"{HOST}/{TOKEN}")
    down = InMemoryTransport(handler=lambda request: (_ for _ in ()).throw(ConnectError("x")))
    pinger.exchange(down, request, Deadline(clock.now + 0.1, clock=clock))
    assert pinger.exchange(down, request, Deadline(clock.now + 0.1, clock=clock)).attempts == 0
    assert pinger.exchange(InMemoryTransport(), request, Deadline(clock.now + 1, clock=clock)).ok


# -- over real sockets --------------------------------------------------------------------------


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.DEBUG, logger="steadycron")

    def messages() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "steadycron" and record.levelno >= logging.WARNING
        ]

    return messages


@pytest.fixture
def clients() -> Iterator[Callable[..., SteadyCron]]:
    made: list[SteadyCron] = []

    def make(url: str, transport: Transport, **settings: Any) -> SteadyCron:
        config = Config(
            **{
                "api_key": API_KEY,
                "api_url": url,
                "ping_url": url,
                "ping_timeout": PING_TIMEOUT,
                **settings,
            }
        )
        client = SteadyCron(config, transport=transport)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def timed(work: Callable[[], object]) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_during_a_hard_outage_a_tracked_run_costs_at_most_one_ping_budget(
    clients: Callable[..., SteadyCron],
    transport_class: Callable[[], Transport],
    warnings_logged: Callable[[], list[str]],
) -> None:
    client = clients(closed_port_url(), transport_class(), monitors={KEY: TOKEN})
    ran: list[str] = []
    job = client.job(KEY)(lambda: ran.append("ran"))
    assert timed(job) < PING_TIMEOUT + SLACK
    assert ran == ["ran"]
    start, success = warnings_logged()
    assert "state=start" in start
    assert "attempts=0" not in start
    assert "state=success" in success
    assert "not attempted" in success
    assert "attempts=0" in success
    assert "could not reach" in success  # the cause is named
    # The next runs, and manual pings, cost nothing at all.
    for _ in range(3):
        assert timed(job) < AT_ONCE
        assert timed(lambda: client.ping(KEY)) < AT_ONCE
    assert ran == ["ran"] * 4
    assert len(warnings_logged()) == 2 + 3 * 3  # one warning per discarded ping, still


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_resolves_are_held_back_too(
    clients: Callable[..., SteadyCron],
    transport_class: Callable[[], Transport],
    warnings_logged: Callable[[], list[str]],
) -> None:
    client = clients(closed_port_url(), transport_class())
    with pytest.raises(ResolutionUnavailableError):
        client.resolve(KEY)
    started = time.monotonic()
    with pytest.raises(ResolutionUnavailableError, match="not attempted"):
        client.resolve(KEY)
    ran: list[str] = []
    client.job(KEY)(lambda: ran.append("ran"))()
    assert time.monotonic() - started < AT_ONCE
    assert ran == ["ran"]
    [message] = warnings_logged()
    assert "could not resolve" in message
    assert "not attempted" in message


@pytest.fixture
def no_answer(request: pytest.FixtureRequest, server: LoopbackServer) -> Iterator[str]:
    """A base URL behind which no HTTP answer comes, in one way or another."""
    fault: str = request.param
    if fault == "refused":
        yield closed_port_url()
    elif fault == "never-answers":
        with silent_listener() as url:
            yield url
    else:
        server.respond = lambda received: Answer(reset=True)
        yield server.url


@pytest.mark.parametrize("no_answer", ["refused", "never-answers", "reset"], indirect=True)
def test_every_way_of_getting_no_answer_opens_it(
    clients: Callable[..., SteadyCron], no_answer: str
) -> None:
    client = clients(no_answer, Urllib3Transport(), monitors={KEY: TOKEN})
    assert client.send(Ping(KEY, "start")).delivered is False
    assert timed(lambda: client.send(Ping(KEY, "success")).delivered) < AT_ONCE


def test_a_failed_tls_handshake_opens_it(
    clients: Callable[..., SteadyCron], server_tls: ssl.SSLContext
) -> None:
    with LoopbackServer(StandIn({KEY: TOKEN}), tls=server_tls) as tls_server:
        # No ca_certs: the throwaway CA is not trusted, every handshake fails.
        client = clients(tls_server.url, Urllib3Transport(), monitors={KEY: TOKEN})
        assert client.send(Ping(KEY, "start")).delivered is False
        assert timed(lambda: client.send(Ping(KEY, "success")).delivered) < AT_ONCE
        assert tls_server.received == []


@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_answers_never_open_it(
    clients: Callable[..., SteadyCron], server: LoopbackServer, status: int
) -> None:
    server.respond = lambda received: Answer(status, b"trouble")
    client = clients(server.url, Urllib3Transport(), monitors={KEY: TOKEN})
    assert client.send(Ping(KEY, "start")).delivered is False
    server.respond = lambda received: Answer(200)
    server.received.clear()
    assert client.send(Ping(KEY, "success")).delivered is True
    assert [r.path for r in server.received] == [f"/{TOKEN}"]


def test_after_the_cool_down_one_probe_closes_it(
    clients: Callable[..., SteadyCron], server: LoopbackServer, clock: FakeClock
) -> None:
    server.respond = lambda received: Answer(reset=True)
    client = clients(server.url, Urllib3Transport(), monitors={KEY: TOKEN})
    client._pinger.breaker = Breaker(clock=clock)
    assert client.send(Ping(KEY, "start")).delivered is False
    server.respond = lambda received: Answer(200)  # the host is back
    server.received.clear()
    assert client.send(Ping(KEY, "success")).delivered is False  # within the cool-down: not tried
    assert server.received == []
    clock.now += 11
    assert client.send(Ping(KEY, "start")).delivered is True  # the probe
    assert client.send(Ping(KEY, "success")).delivered is True
    assert [r.path for r in server.received] == [f"/{TOKEN}/start", f"/{TOKEN}"]


def test_each_client_has_its_own_breaker(clients: Callable[..., SteadyCron]) -> None:
    url = closed_port_url()
    down = clients(url, Urllib3Transport(), monitors={KEY: TOKEN})
    other = clients(url, Urllib3Transport(), monitors={KEY: TOKEN})
    down.send(Ping(KEY, "start"))
    assert timed(lambda: down.send(Ping(KEY, "success"))) < AT_ONCE
    assert timed(lambda: other.send(Ping(KEY, "success"))) > AT_ONCE  # it tries for itself


def test_a_send_no_worker_began_does_not_open_it() -> None:
    """A send still waiting for a worker at its deadline (its host's places all taken,
    or the machine too loaded to run one) asked the host nothing."""
    from steadycron._workers import Workers

    release = threading.Event()

    class Slow(InMemoryTransport):
        blocking = True  # so it runs on a worker

        def send(self, request: Request, *, timeout: float) -> Response:
            release.wait(5)
            return super().send(request, timeout=timeout)

    transport = Slow()
    pinger = Pinger()
    request = Request("POST", f"{HOST}/{TOKEN}")
    pinger._dispatcher._workers = Workers(per_host=1)
    first = threading.Thread(target=pinger.exchange, args=(transport, request, Deadline.after(5)))
    first.start()
    time.sleep(0.1)  # the one place for HOST is taken
    waited = pinger.exchange(transport, request, Deadline.after(0.2))
    assert not waited.ok
    assert "no worker began" in waited.reason
    release.set()
    first.join(5)
    assert pinger.exchange(transport, request, Deadline.after(1)).ok  # not held back
