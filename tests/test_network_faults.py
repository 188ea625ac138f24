"""API.md §5, the reliability contract, through the whole client over real loopback sockets.

Every fault the network can throw at a ping or a resolution is staged on 127.0.0.1; each
test fails when its promise breaks: a ping that raises, that outlives ``ping_timeout``,
that logs more or less than one warning, a job that runs when it must not or does not run
when it must.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import (
    Answer,
    LoopbackServer,
    Received,
    Respond,
    StandIn,
    closed_port_url,
    silent_listener,
    wait_for,
)

from steadycron import (
    AmbiguousJobKeyError,
    AuthenticationError,
    Config,
    ConfigurationError,
    InvalidMonitorKindError,
    MonitorNotFoundError,
    ResolutionUnavailableError,
    SteadyCron,
)
from steadycron._ping import Ping
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

#: Short, so that the faults that use the whole budget keep this file fast.
PING_TIMEOUT = 0.3
#: Scheduling noise allowed on top of a deadline: generous, so nothing flakes.
SLACK = 0.5
RESOLVE = "/api/monitors/resolve"
HUNG_HOST = "steadycron-test.invalid"

TRANSPORTS = [
    pytest.param(Urllib3Transport, id="urllib3"),
    pytest.param(StdlibTransport, id="stdlib"),
]

MakeClient = Callable[..., SteadyCron]


def stand_in() -> StandIn:
    return StandIn({KEY: TOKEN, "http-job": "tok_http_job"}, kinds={"http-job": "http"})


def on_resolve(answer: Answer) -> Respond:
    """Answer resolves with *answer*; pings as SteadyCron would."""
    normal = stand_in()
    return lambda received: answer if received.path == RESOLVE else normal(received)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    # Shared by the module: starting and stopping servers per test adds up.
    with LoopbackServer() as api, LoopbackServer() as elsewhere:
        yield api, elsewhere


@pytest.fixture
def api(running: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
    """SteadyCron's API and ping host in one, knowing ``KEY`` -> ``TOKEN``."""
    return running[0].reuse(stand_in())


@pytest.fixture
def elsewhere(running: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
    """Where redirects point: it must never hear from us."""
    return running[1].reuse(lambda received: Answer(200, b"followed"))


@pytest.fixture
def make_client(api: LoopbackServer) -> Iterator[MakeClient]:
    """Clients with the API key, both hosts on ``api`` and a short ``ping_timeout``."""
    clients: list[SteadyCron] = []

    def make(
        transport_class: Callable[[], Transport] = Urllib3Transport, **settings: Any
    ) -> SteadyCron:
        settings = {
            "api_key": API_KEY,
            "api_url": api.url,
            "ping_url": api.url,
            "ping_timeout": PING_TIMEOUT,
            **settings,
        }
        client = SteadyCron(Config(**settings), transport=transport_class())
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The WARNING (and worse) messages of the ``steadycron`` logger so far."""
    caplog.set_level(logging.DEBUG, logger="steadycron")

    def messages() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "steadycron" and record.levelno >= logging.WARNING
        ]

    return messages


def tracked(client: SteadyCron, ran: list[str]) -> Callable[[], None]:
    """A job of ``KEY`` that notes in *ran* each time its body runs."""

    @client.job(KEY)
    def job() -> None:
        ran.append("ran")

    return job


def pings_received(server: LoopbackServer) -> list[str]:
    return [path for path in server.paths() if path != RESOLVE]


def resolves_received(server: LoopbackServer) -> int:
    return server.paths().count(RESOLVE)


def one_discard_warning(messages: list[str], state: str) -> str:
    """The single warning a discarded ping logs, checked to name key, state, reason and
    attempts."""
    assert len(messages) == 1, messages
    [message] = messages
    assert f"key={KEY!r}" in message
    assert f"state={state}" in message
    assert "reason=" in message
    assert "attempts=" in message
    return message


def attempts_in(message: str) -> int:
    return int(message.rsplit("attempts=", 1)[1].split()[0])


# -- faults that must not hold a ping or a resolution beyond ping_timeout --------------

FAULTS = [
    "refused",
    "black-hole",
    "accept-then-silent",
    "slow-drip",
    "hung-name-lookup",
    "reset",
    "5xx-storm",
    "429-long-retry-after",
]


@pytest.fixture(params=FAULTS)
def faulty_url(
    request: pytest.FixtureRequest, api: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A base URL behind which the network misbehaves in one way."""
    fault: str = request.param
    staged = {
        "accept-then-silent": Answer(silent=True),
        "slow-drip": Answer(200, b"OK", drip_seconds_per_byte=0.02),
        "reset": Answer(reset=True),
        "5xx-storm": Answer(503, b"unavailable"),
        "429-long-retry-after": Answer(429, b"slow down", {"Retry-After": "120"}),
    }
    with ExitStack() as stack:
        if fault in staged:
            answer = staged[fault]
            api.respond = lambda received: answer
            yield api.url
        elif fault == "refused":
            yield closed_port_url()
        elif fault == "black-hole":
            yield stack.enter_context(silent_listener())
        else:
            release = threading.Event()
            stack.callback(release.set)  # lets the stuck worker threads finish
            monkeypatch.setattr(socket, "getaddrinfo", hung_lookup(release, socket.getaddrinfo))
            yield f"http://{HUNG_HOST}:{api.port}"


def hung_lookup(release: threading.Event, real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HUNG_HOST:
            release.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "never resolved in tests")
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_ping_ends_within_the_timeout_raises_nothing_and_warns_once(
    make_client: MakeClient,
    faulty_url: str,
    transport_class: Callable[[], Transport],
    warnings_logged: Callable[[], list[str]],
) -> None:
    client = make_client(transport_class, ping_url=faulty_url, monitors={KEY: TOKEN})
    started = time.monotonic()
    client.Monitor(KEY).ping("fail", "disk full")
    assert time.monotonic() - started < PING_TIMEOUT + SLACK
    assert attempts_in(one_discard_warning(warnings_logged(), "fail")) >= 1


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_resolution_outage_ends_within_the_timeout_and_the_job_runs(
    make_client: MakeClient,
    faulty_url: str,
    transport_class: Callable[[], Transport],
    warnings_logged: Callable[[], list[str]],
) -> None:
    client = make_client(transport_class, api_url=faulty_url)
    ran: list[str] = []
    started = time.monotonic()
    tracked(client, ran)()
    assert time.monotonic() - started < PING_TIMEOUT + SLACK
    assert ran == ["ran"]
    [message] = warnings_logged()
    assert "could not resolve" in message
    assert repr(KEY) in message


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_explicit_resolve_reports_the_outage_within_the_timeout(
    make_client: MakeClient, faulty_url: str, transport_class: Callable[[], Transport]
) -> None:
    client = make_client(transport_class, api_url=faulty_url)
    started = time.monotonic()
    with pytest.raises(ResolutionUnavailableError) as raised:
        client.resolve(KEY)
    assert time.monotonic() - started < PING_TIMEOUT + SLACK
    assert raised.value.key == KEY


# -- retries live inside the budget -----------------------------------------------------


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_5xx_storm_is_retried_and_stops_inside_the_budget(
    make_client: MakeClient,
    api: LoopbackServer,
    transport_class: Callable[[], Transport],
    warnings_logged: Callable[[], list[str]],
) -> None:
    api.respond = lambda received: Answer(503, b"unavailable")
    client = make_client(transport_class, ping_timeout=1.0, monitors={KEY: TOKEN})
    started = time.monotonic()
    client.ping(KEY)
    assert time.monotonic() - started < 1.0 + SLACK
    attempts = len(pings_received(api))
    assert attempts >= 3
    message = one_discard_warning(warnings_logged(), "success")
    assert "HTTP 503" in message
    assert attempts_in(message) == attempts


def test_5xx_then_2xx_is_delivered_without_a_warning(
    make_client: MakeClient, api: LoopbackServer, warnings_logged: Callable[[], list[str]]
) -> None:
    answers = iter([Answer(502), Answer(500)])
    api.respond = lambda received: next(answers, Answer(200))
    client = make_client(ping_timeout=2.0, monitors={KEY: TOKEN})
    assert client.send(Ping(KEY, "success")).delivered is True
    assert pings_received(api) == [f"/{TOKEN}"] * 3
    assert warnings_logged() == []


def test_429_with_a_long_retry_after_ends_the_ping_at_once(
    make_client: MakeClient, api: LoopbackServer, warnings_logged: Callable[[], list[str]]
) -> None:
    api.respond = lambda received: Answer(429, b"slow down", {"Retry-After": "30"})
    client = make_client(ping_timeout=2.0, monitors={KEY: TOKEN})
    started = time.monotonic()
    client.ping(KEY)
    assert time.monotonic() - started < SLACK  # not waited for, not even up to the timeout
    assert len(pings_received(api)) == 1
    message = one_discard_warning(warnings_logged(), "success")
    assert "HTTP 429" in message
    assert attempts_in(message) == 1


def test_429_with_a_retry_after_that_fits_is_waited_for_then_delivered(
    make_client: MakeClient, api: LoopbackServer, warnings_logged: Callable[[], list[str]]
) -> None:
    answers = iter([Answer(429, b"slow down", {"Retry-After": "1"})])
    api.respond = lambda received: next(answers, Answer(200))
    client = make_client(ping_timeout=2.0, monitors={KEY: TOKEN})
    started = time.monotonic()
    assert client.send(Ping(KEY, "start")).delivered is True
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.0 + SLACK
    assert pings_received(api) == [f"/{TOKEN}/start"] * 2
    assert warnings_logged() == []


@pytest.mark.parametrize("status", [400, 404, 410])
def test_other_4xx_on_a_ping_is_final_logged_and_not_raised(
    make_client: MakeClient,
    api: LoopbackServer,
    status: int,
    warnings_logged: Callable[[], list[str]],
) -> None:
    api.respond = lambda received: Answer(status, b"no")
    client = make_client(ping_timeout=2.0, monitors={KEY: TOKEN})
    assert client.send(Ping(KEY, "success")).delivered is False
    assert len(pings_received(api)) == 1
    assert attempts_in(one_discard_warning(warnings_logged(), "success")) == 1


# -- a ping is done when it returns -------------------------------------------------------


def test_a_tracked_run_has_delivered_its_pings_when_it_returns(
    make_client: MakeClient, api: LoopbackServer
) -> None:
    normal = stand_in()
    api.respond = lambda received: (
        Answer(200, delay=0.2) if received.method == "POST" else normal(received)
    )
    client = make_client(ping_timeout=2.0)
    started = time.monotonic()
    tracked(client, [])()
    assert time.monotonic() - started >= 0.4  # both answers were waited for
    assert pings_received(api) == [f"/{TOKEN}/start", f"/{TOKEN}"]


def test_a_process_that_exits_right_after_its_job_has_delivered_the_outcome(
    api: LoopbackServer,
) -> None:
    script = textwrap.dedent(
        f"""
        import os
        import steadycron

        steadycron.configure(api_key={API_KEY!r}, api_url={api.url!r}, ping_url={api.url!r})

        @steadycron.job({KEY!r})
        def work():
            pass

        work()
        os._exit(0)  # no atexit hooks, no flushing of anything queued
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert api.paths() == [RESOLVE, f"/{TOKEN}/start", f"/{TOKEN}"]


# -- resolution: misconfiguration raises and the job does not run ------------------------


def resolved(key: str, token: str, kind: str = "heartbeat") -> dict[str, str]:
    return {"key": key, "job_id": f"j-{key}", "kind": kind, "ping_token": token}


REFUSALS = [
    pytest.param(
        Answer.json(401, {"error": "unauthorized", "message": "key revoked on 2024-05-01"}),
        AuthenticationError,
        "key revoked on 2024-05-01",
        id="401",
    ),
    pytest.param(
        Answer.json(403, {"code": "forbidden", "message": "key lacks monitors:read"}),
        AuthenticationError,
        "key lacks monitors:read",
        id="403",
    ),
    pytest.param(
        Answer.json(404, {"error": "not_found", "message": "no job nightly-db-backup"}),
        MonitorNotFoundError,
        "no job nightly-db-backup",
        id="404",
    ),
    pytest.param(
        Answer.json(409, {"error": "ambiguous", "message": "2 jobs share this key"}),
        AmbiguousJobKeyError,
        "2 jobs share this key",
        id="409",
    ),
    pytest.param(
        Answer.json(200, resolved(KEY, TOKEN, kind="http")),
        InvalidMonitorKindError,
        "'http'",
        id="kind-http",
    ),
]


@pytest.mark.parametrize(("answer", "error", "server_said"), REFUSALS)
def test_resolution_error_raises_typed_with_key_and_message_and_job_does_not_run(
    make_client: MakeClient,
    api: LoopbackServer,
    answer: Answer,
    error: type[ConfigurationError],
    server_said: str,
) -> None:
    api.respond = on_resolve(answer)
    client = make_client(ping_timeout=2.0)
    ran: list[str] = []
    with pytest.raises(error) as raised:
        tracked(client, ran)()
    assert ran == []
    assert raised.value.key == KEY
    assert KEY in str(raised.value)
    assert server_said in str(raised.value)
    assert pings_received(api) == []
    with pytest.raises(error), client.monitor(KEY):
        ran.append("block ran")
    assert ran == []
    with pytest.raises(error):
        client.Monitor(KEY).ping()


def test_no_api_key_and_no_direct_token_is_a_configuration_error(
    make_client: MakeClient, api: LoopbackServer
) -> None:
    client = make_client(api_key=None)
    ran: list[str] = []
    with pytest.raises(ConfigurationError) as raised:
        tracked(client, ran)()
    assert type(raised.value) is ConfigurationError
    assert raised.value.key == KEY
    assert ran == []
    assert api.received == []


# -- resolution outages: warn, run the job, fall back to the cache -----------------------

MALFORMED = [
    pytest.param(Answer(200, b"<html>Sign in to the hotel wifi</html>"), id="not-json"),
    pytest.param(Answer.json(200, [resolved(KEY, TOKEN)]), id="a-list"),
    pytest.param(Answer.json(200, {"key": KEY, "kind": "heartbeat"}), id="no-ping-token"),
    pytest.param(Answer.json(200, {**resolved(KEY, TOKEN), "ping_token": ""}), id="empty-token"),
    pytest.param(Answer.json(200, {**resolved(KEY, TOKEN), "ping_token": 7}), id="number-token"),
]


@pytest.mark.parametrize("answer", MALFORMED)
def test_malformed_200_on_resolve_warns_and_the_job_runs_unpinged(
    make_client: MakeClient,
    api: LoopbackServer,
    answer: Answer,
    warnings_logged: Callable[[], list[str]],
) -> None:
    api.respond = on_resolve(answer)
    client = make_client()
    ran: list[str] = []
    tracked(client, ran)()
    assert ran == ["ran"]
    assert pings_received(api) == []
    [message] = warnings_logged()
    assert "could not resolve" in message
    with pytest.raises(ResolutionUnavailableError):
        client.resolve(KEY)


def outage_on_resolve(received: Received) -> Answer:
    if received.path == RESOLVE:
        return Answer(503, b"down for maintenance")
    return stand_in()(received)


def test_outage_with_a_stale_cached_token_pings_with_it(
    make_client: MakeClient, api: LoopbackServer, warnings_logged: Callable[[], list[str]]
) -> None:
    client = make_client(resolve_cache_ttl=0.1)
    tracked(client, [])()
    time.sleep(0.2)  # the cached token is now stale
    api.respond = outage_on_resolve
    api.received.clear()
    ran: list[str] = []
    tracked(client, ran)()
    assert ran == ["ran"]
    assert pings_received(api) == [f"/{TOKEN}/start", f"/{TOKEN}"]
    # The refresh runs beside the run, and ends on its own.
    assert wait_for(lambda: bool(warnings_logged()))
    assert resolves_received(api) >= 1
    [message] = warnings_logged()
    assert "last known token" in message


def test_outage_without_a_cache_runs_unpinged_and_the_next_use_tries_again(
    make_client: MakeClient, api: LoopbackServer, warnings_logged: Callable[[], list[str]]
) -> None:
    api.respond = outage_on_resolve
    client = make_client()
    ran: list[str] = []
    job = tracked(client, ran)
    job()
    assert ran == ["ran"]
    assert pings_received(api) == []
    [message] = warnings_logged()
    assert "unpinged" in message
    api.respond = stand_in()
    api.received.clear()
    job()
    assert ran == ["ran", "ran"]
    assert api.paths() == [RESOLVE, f"/{TOKEN}/start", f"/{TOKEN}"]


def test_a_fresh_cache_entry_means_no_resolve_request(
    make_client: MakeClient, api: LoopbackServer
) -> None:
    client = make_client()
    job = tracked(client, [])
    job()
    job()
    assert resolves_received(api) == 1
    assert len(pings_received(api)) == 4


# -- concurrency --------------------------------------------------------------------------


def test_answers_are_not_mixed_up_between_threads(
    make_client: MakeClient, api: LoopbackServer
) -> None:
    tokens = {f"key-{index}": f"tok{index}" for index in range(12)}
    api.respond = lambda received: Answer(
        200 if received.path.startswith("/tok") and int(received.path[4:]) % 2 else 404
    )
    client = make_client(ping_timeout=3.0, monitors=tokens)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = pool.map(lambda key: client.send(Ping(key, "success")).delivered, tokens)
        delivered = dict(zip(tokens, outcomes, strict=True))
    assert delivered == {key: int(token[3:]) % 2 == 1 for key, token in tokens.items()}


# -- nothing is sent after a ping's deadline ----------------------------------------------

SLOW_LOOKUP_HOST = "slow-lookup.steadycron-test.invalid"


@pytest.fixture
def slow_lookup(api: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A base URL whose name lookup takes 0.6 s (twice the budget), then finds ``api``."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == SLOW_LOOKUP_HOST:
            release.wait(0.6)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield f"http://{SLOW_LOOKUP_HOST}:{api.port}"
    release.set()


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_a_ping_abandoned_in_a_slow_name_lookup_is_never_sent_late(
    make_client: MakeClient,
    api: LoopbackServer,
    slow_lookup: str,
    transport_class: Callable[[], Transport],
) -> None:
    client = make_client(transport_class, ping_url=slow_lookup, monitors={KEY: TOKEN})
    started = time.monotonic()
    assert client.send(Ping(KEY, "start")).delivered is False
    assert time.monotonic() - started < PING_TIMEOUT + SLACK
    time.sleep(1.0)  # the lookup returned long ago: a late request would be here by now
    assert api.received == []


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_a_run_whose_pings_outlive_a_slow_lookup_never_reaches_the_server_out_of_order(
    make_client: MakeClient,
    api: LoopbackServer,
    slow_lookup: str,
    transport_class: Callable[[], Transport],
) -> None:
    client = make_client(transport_class, ping_url=slow_lookup, monitors={KEY: TOKEN})
    ran: list[str] = []
    started = time.monotonic()
    tracked(client, ran)()
    assert time.monotonic() - started < 2 * PING_TIMEOUT + SLACK
    assert ran == ["ran"]
    time.sleep(1.0)
    assert pings_received(api) == []


# -- no request storms --------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after",
    ["0", "Wed, 21 Oct 2015 07:28:00 GMT"],  # nothing to wait, a date long past (clock skew)
    ids=["zero", "date-in-the-past"],
)
def test_a_retry_after_of_nothing_never_retries_faster_than_the_backoff(
    make_client: MakeClient, api: LoopbackServer, retry_after: str
) -> None:
    api.respond = lambda received: Answer(429, b"slow down", {"Retry-After": retry_after})
    client = make_client(ping_timeout=2.0, monitors={KEY: TOKEN})
    started = time.monotonic()
    assert client.send(Ping(KEY, "success")).delivered is False
    assert time.monotonic() - started < 2.0 + SLACK
    # 50, 100, 200, 400 and 800 ms of backoff (plus jitter) fit in 2 s; a second more does not.
    assert 4 <= len(pings_received(api)) <= 7
