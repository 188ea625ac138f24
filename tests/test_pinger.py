"""The pinger's arithmetic: what is retried, how long it waits, when it stops (fake clock)."""

from __future__ import annotations

import logging

import pytest
from loopback import FakeClock

from steadycron._pinger import MIN_ATTEMPT_SECONDS, Pinger, retry_after_seconds
from steadycron.transports import (
    ConnectError,
    InMemoryTransport,
    ProtocolError,
    Request,
    Response,
)

REQUEST = Request("POST", "https://ping.example/tok")


def scripted(
    clock: FakeClock, answers: list[Response | Exception], cost: float = 0.01
) -> InMemoryTransport:
    """A transport that answers from a script, each attempt taking *cost* seconds."""

    def answer(request: Request) -> Response:
        clock.now += cost
        item = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(item, Exception):
            raise item
        return item

    return InMemoryTransport(handler=answer)


def pinger(clock: FakeClock) -> Pinger:
    return Pinger(clock=clock, sleep=clock.sleep)


def test_a_2xx_is_delivered_at_the_first_attempt(clock: FakeClock) -> None:
    transport = scripted(clock, [Response(202)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert exchange.ok
    assert exchange.attempts == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_final(clock: FakeClock, status: int) -> None:
    transport = scripted(clock, [Response(status)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert not exchange.ok
    assert exchange.attempts == 1
    assert exchange.reason.partition(":")[0] == f"HTTP {status}"


@pytest.mark.parametrize(
    "first",
    [
        Response(500),
        Response(503),
        Response(408),
        Response(429),
        ConnectError("refused"),
        ProtocolError("reset"),
    ],
)
def test_retryable_failures_are_retried_until_success(
    clock: FakeClock, first: Response | Exception
) -> None:
    transport = scripted(clock, [first, first, Response(200)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert exchange.ok
    assert exchange.attempts == 3
    assert len(clock.sleeps) == 2
    # exponential backoff plus up to 50 ms of jitter: 50-100 ms, then 100-150 ms
    assert 0.05 <= clock.sleeps[0] <= 0.1
    assert 0.1 <= clock.sleeps[1] <= 0.15


def test_retries_stop_before_the_deadline_but_not_too_early(clock: FakeClock) -> None:
    start = clock.now
    transport = scripted(clock, [Response(503)], cost=0.01)
    exchange = pinger(clock).exchange(transport, REQUEST, start + 2.0)
    assert not exchange.ok
    assert exchange.reason == "HTTP 503"
    assert exchange.attempts >= 4
    assert clock.now <= start + 2.0
    # it gave up only because the next sleep (at most 1 s + jitter) would not fit
    assert start + 2.0 - clock.now < 1.05 + MIN_ATTEMPT_SECONDS


def test_a_retry_after_that_fits_is_waited_for(clock: FakeClock) -> None:
    transport = scripted(clock, [Response(429, {"Retry-After": "1"}), Response(200)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert exchange.ok
    assert clock.sleeps == [1.0]


def test_a_retry_after_that_does_not_fit_ends_the_ping_at_once(clock: FakeClock) -> None:
    start = clock.now
    transport = scripted(clock, [Response(429, {"Retry-After": "120"}), Response(200)])
    exchange = pinger(clock).exchange(transport, REQUEST, start + 5)
    assert not exchange.ok
    assert exchange.attempts == 1
    assert clock.sleeps == []
    assert clock.now - start < 0.1


def test_a_retry_after_on_a_later_attempt_is_honoured_too(clock: FakeClock) -> None:
    transport = scripted(clock, [Response(500), Response(503, {"retry-after": "2"}), Response(200)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert exchange.ok
    assert clock.sleeps[1] == 2.0


def test_a_misbehaving_custom_transport_never_raises(clock: FakeClock) -> None:
    transport = scripted(clock, [ZeroDivisionError("bug")])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert not exchange.ok
    assert "ZeroDivisionError" in exchange.reason


def test_a_passed_deadline_sends_nothing(clock: FakeClock) -> None:
    transport = scripted(clock, [Response(200)])
    exchange = pinger(clock).exchange(transport, REQUEST, clock.now - 1)
    assert not exchange.ok
    assert transport.requests == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_parsing(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(Response(429, {"Retry-After": header})) == seconds


def test_retry_after_as_an_http_date() -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_seconds(Response(503, {"Retry-After": when}))
    assert seconds is not None
    assert 25 < seconds <= 31


def test_retries_are_logged_at_debug_only(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="steadycron")
    transport = scripted(clock, [Response(500), Response(200)])
    pinger(clock).exchange(transport, REQUEST, clock.now + 5)
    assert caplog.records
    assert all(record.levelno == logging.DEBUG for record in caplog.records)
