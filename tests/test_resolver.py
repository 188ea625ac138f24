"""Resolution: TTL cache, single flight, typed errors, and outages that never stop a job."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.parse

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import FakeClock, wait_for

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
from steadycron._resolver import Resolver
from steadycron.transports import ConnectError, InMemoryTransport, Request, Response


def answer(status: int, payload: object) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())


def client_with(handler: object = None, **settings: object) -> tuple[SteadyCron, InMemoryTransport]:
    transport = InMemoryTransport({KEY: TOKEN}, handler=handler)  # type: ignore[arg-type]
    config = Config(**{"api_key": API_KEY, "ping_timeout": 1.0, **settings})
    return SteadyCron(config, transport=transport), transport


def resolves(transport: InMemoryTransport) -> int:
    return sum("/api/monitors/resolve" in r.url for r in transport.requests)


def test_resolve_sends_the_bearer_key_and_user_agent() -> None:
    client, transport = client_with()
    assert client.resolve(KEY) == TOKEN
    request = transport.requests[0]
    assert request.method == "GET"
    assert request.url == f"https://api.steadycron.com/api/monitors/resolve?key={KEY}"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"].startswith("steadycron-python/")


def test_the_key_is_url_encoded() -> None:
    client, transport = client_with()
    with pytest.raises(MonitorNotFoundError):
        client.resolve("a b&c=d/é")
    assert transport.requests[0].url.endswith("?key=a+b%26c%3Dd%2F%C3%A9")


def test_resolution_is_cached_per_client() -> None:
    client, transport = client_with()
    other, other_transport = client_with()
    for _ in range(3):
        client.ping(KEY)
    other.ping(KEY)
    assert resolves(transport) == 1
    assert resolves(other_transport) == 1
    client.clear_cache()
    client.ping(KEY)
    assert resolves(transport) == 2


def test_direct_tokens_skip_resolution_and_need_no_api_key() -> None:
    transport = InMemoryTransport()
    client = SteadyCron(Config(monitors={KEY: "direct"}), transport=transport)
    client.ping(KEY)
    assert [r.url for r in transport.requests] == ["https://ping.steadycron.com/direct"]


def test_cache_expires_after_the_ttl(clock: FakeClock) -> None:
    calls: list[Request] = []

    def fetch(request: Request, deadline: float) -> object:
        from steadycron._pinger import Exchange

        calls.append(request)
        return Exchange(answer(200, {"kind": "heartbeat", "ping_token": TOKEN}), 1)

    resolver = Resolver(fetch, clock=clock)  # type: ignore[arg-type]
    config = Config(api_key=API_KEY, resolve_cache_ttl=60)
    assert resolver.resolve(KEY, config, clock.now + 5) == TOKEN
    clock.now += 59
    resolver.resolve(KEY, config, clock.now + 5)
    assert len(calls) == 1
    clock.now += 2
    resolver.resolve(KEY, config, clock.now + 5)
    assert len(calls) == 2
    uncached = Config(api_key=API_KEY, resolve_cache_ttl=0)
    resolver.clear(uncached)
    resolver.resolve(KEY, uncached, clock.now + 5)
    resolver.resolve(KEY, uncached, clock.now + 5)
    assert len(calls) == 4


def test_concurrent_first_uses_send_one_request() -> None:
    release = threading.Event()

    def slow_resolve(request: Request) -> Response | None:
        if "/api/monitors/resolve" in request.url:
            release.wait(2)
        return None

    client, transport = client_with(slow_resolve)
    transport.blocking = True
    tokens: list[str] = []
    threads = [
        threading.Thread(target=lambda: tokens.append(client.resolve(KEY))) for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join()
    assert tokens == [TOKEN] * 16
    assert resolves(transport) == 1


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (401, {"error": "unauthorized", "message": "API key revoked"}, AuthenticationError),
        (403, {"code": "forbidden", "message": "key lacks monitors:read"}, AuthenticationError),
        (404, {"error": "not_found", "message": "no job nightly"}, MonitorNotFoundError),
        (409, {"error": "ambiguous", "message": "2 jobs match"}, AmbiguousJobKeyError),
    ],
)
def test_refusals_raise_typed_errors_with_key_and_server_message(
    status: int, payload: dict[str, str], error: type[Exception]
) -> None:
    client, _ = client_with(lambda request: answer(status, payload))
    ran = []
    with pytest.raises(error) as caught:
        client.job(KEY)(lambda: ran.append(1))()
    assert KEY in str(caught.value)
    assert payload["message"] in str(caught.value)
    assert caught.value.key == KEY  # type: ignore[attr-defined]
    assert ran == []
    assert isinstance(caught.value, ConfigurationError)


def test_a_job_that_is_not_a_heartbeat_is_refused() -> None:
    payload = {"key": KEY, "job_id": "j1", "kind": "http", "ping_token": TOKEN}
    client, _ = client_with(
        lambda request: answer(200, payload) if "resolve" in request.url else None
    )
    with pytest.raises(InvalidMonitorKindError, match="'http'") as caught:
        client.ping(KEY)
    assert caught.value.kind == "http"


def test_no_api_key_and_no_direct_token_is_a_configuration_error() -> None:
    client = SteadyCron(Config(), transport=InMemoryTransport({KEY: TOKEN}))
    with pytest.raises(ConfigurationError, match="API key"):
        client.ping(KEY)


def test_server_message_echoing_the_api_key_is_scrubbed() -> None:
    payload = {"error": "unauthorized", "message": f"key {API_KEY} revoked"}
    client, _ = client_with(lambda request: answer(401, payload))
    with pytest.raises(AuthenticationError) as caught:
        client.resolve(KEY)
    assert API_KEY not in str(caught.value)
    assert "revoked" in str(caught.value)


OUTAGES = [
    pytest.param(lambda: Response(200, {}, b"<html>captive portal</html>"), id="html-200"),
    pytest.param(lambda: answer(200, ["not", "an", "object"]), id="list-200"),
    pytest.param(lambda: answer(200, {"kind": "heartbeat"}), id="no-token-200"),
    pytest.param(lambda: answer(200, {"ping_token": 5}), id="number-token-200"),
    pytest.param(lambda: answer(503, {}), id="503"),
    pytest.param(lambda: Response(429, {"Retry-After": "300"}), id="429"),
    pytest.param(lambda: Response(302, {"Location": "https://elsewhere.example/"}), id="302"),
    pytest.param(lambda: Response(418), id="418"),
]


@pytest.mark.parametrize("outage", OUTAGES)
def test_an_outage_lets_the_job_run_unpinged_and_warns(
    outage: object, caplog: pytest.LogCaptureFixture
) -> None:
    client, transport = client_with(
        lambda request: outage() if "resolve" in request.url else None,  # type: ignore[operator]
        ping_timeout=0.3,
    )
    result = client.job(KEY)(lambda: "job result")()
    assert result == "job result"
    assert all("/api/monitors/resolve" in r.url for r in transport.requests)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unpinged" in warnings[0].getMessage()
    with pytest.raises(ResolutionUnavailableError):
        client.resolve(KEY)


def test_an_outage_uses_the_stale_token_and_tries_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = threading.Event()

    def maybe_down(request: Request) -> Response | None:
        if down.is_set() and "resolve" in request.url:
            raise ConnectError("refused")
        return None

    client, transport = client_with(maybe_down, resolve_cache_ttl=0.05, ping_timeout=0.2)
    client.ping(KEY)
    time.sleep(0.1)
    down.set()
    client.ping(KEY)
    assert wait_for(lambda: "last known token" in caplog.text)
    pings = [r for r in transport.requests if "resolve" not in r.url]
    assert [p.url.rsplit("/", 1)[-1] for p in pings] == [TOKEN, TOKEN]
    before = resolves(transport)
    down.clear()
    time.sleep(0.1)  # a failed refresh is tried again after a while, not at every ping
    client.ping(KEY)
    assert wait_for(lambda: resolves(transport) == before + 1)


def test_resolution_is_bounded_by_the_ping_timeout() -> None:
    client, _ = client_with(
        lambda request: (_ for _ in ()).throw(ConnectError("refused")), ping_timeout=0.3
    )
    started = time.monotonic()
    with pytest.raises(ResolutionUnavailableError):
        client.resolve(KEY)
    assert time.monotonic() - started < 0.3 + 0.5


def test_a_short_placeholder_key_does_not_mangle_the_server_message() -> None:
    transport = InMemoryTransport(
        handler=lambda request: answer(404, {"error": "not_found", "message": "no key 'nope'"})
    )
    client = SteadyCron(Config(api_key="k"), transport=transport)
    with pytest.raises(MonitorNotFoundError, match="no key 'nope'"):
        client.resolve("nope")


def test_a_kind_that_is_not_a_string_is_nonsense_not_a_wrong_kind() -> None:
    payload = {"key": KEY, "kind": ["heartbeat"], "ping_token": TOKEN}
    client, _ = client_with(
        lambda request: answer(200, payload) if "resolve" in request.url else None
    )
    with pytest.raises(ResolutionUnavailableError, match="kind"):
        client.resolve(KEY)
    assert client.job(KEY)(lambda: "ran")() == "ran"


def test_a_failed_exchange_leaves_no_reference_cycle() -> None:
    """A failed send's error (and the socket its frames hold) is freed at once."""
    import gc
    import weakref

    from steadycron._pinger import Pinger

    errors: list[weakref.ref[Exception]] = []

    def tracked(error: Exception) -> Exception:
        errors.append(weakref.ref(error))
        return error

    def refuse(request: Request) -> Response:
        raise tracked(ConnectError("refused"))

    gc.collect()
    gc.disable()
    try:
        # Too short a budget for a retry: one attempt, on our code alone.
        deadline = time.monotonic() + 0.05
        exchange = Pinger().exchange(
            InMemoryTransport(handler=refuse), Request("POST", "http://x/t"), deadline
        )
        assert not exchange.ok
        assert len(errors) == 1
        assert errors[0]() is None
    finally:
        gc.enable()


def test_a_wrong_kind_is_refused_whatever_the_token_field_holds() -> None:
    payload = {"key": KEY, "job_id": "j1", "kind": "http", "ping_token": None}
    client, transport = client_with(
        lambda request: answer(200, payload) if "resolve" in request.url else None
    )
    ran: list[str] = []
    with pytest.raises(InvalidMonitorKindError, match="'http'"):
        client.job(KEY)(lambda: ran.append("ran"))()
    assert ran == []
    assert resolves(transport) == len(transport.requests) == 1


@pytest.mark.parametrize("kind", ["browser", "HEARTBEAT", ""])
def test_a_kind_the_sdk_cannot_ping_is_refused(kind: str) -> None:
    payload = {"key": KEY, "kind": kind, "ping_token": TOKEN}
    client, _ = client_with(
        lambda request: answer(200, payload) if "resolve" in request.url else None
    )
    with pytest.raises(InvalidMonitorKindError) as caught:
        client.resolve(KEY)
    assert caught.value.kind == kind


def test_an_agent_monitor_is_pinged_like_a_heartbeat_and_its_kind_is_kept() -> None:
    payload = {"key": KEY, "job_id": "j1", "kind": "agent", "ping_token": TOKEN}
    client, transport = client_with(
        lambda request: answer(200, payload) if "resolve" in request.url else None
    )
    assert client.job(KEY)(lambda: "ran")() == "ran"
    pings = [r.url.split("?")[0] for r in transport.requests if "resolve" not in r.url]
    base = "https://ping.steadycron.com"
    assert pings == [f"{base}/{TOKEN}/start", f"{base}/{TOKEN}"]
    assert client._resolver.kind(KEY, client.config) == "agent"


def waiting_in(thread: threading.Thread, function: str) -> bool:
    """Whether *thread* is inside *function* right now."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def test_an_interrupt_of_the_thread_leading_a_resolve_stays_in_that_thread() -> None:
    """Ctrl-C while the main thread resolves a key that a worker thread also waits for:
    the main thread is interrupted; the worker asks again and its job runs."""
    waiter_outcome: list[object] = []

    def worker_job() -> None:
        try:
            waiter_outcome.append(client.job(KEY)(lambda: "ran")())
        except BaseException as exc:
            waiter_outcome.append(exc)

    worker = threading.Thread(target=worker_job)
    leading = threading.Event()

    def interrupted_once(request: Request) -> Response | None:
        if "resolve" in request.url and not leading.is_set():
            leading.set()
            worker.start()
            assert wait_for(lambda: waiting_in(worker, "_wait_for_flight"))
            raise KeyboardInterrupt
        return None

    client, transport = client_with(interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        client.resolve(KEY)
    worker.join(5)
    assert waiter_outcome == ["ran"]
    assert resolves(transport) == 2
    assert [r.url.split("?")[0].rsplit("/", 1)[-1] for r in transport.requests[2:]] == [
        "start",
        TOKEN,
    ]


TENANT_A = "sc_ro_account_a_1111"
TENANT_B = "sc_ro_account_b_2222"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("api_key", TENANT_B), ("api_url", "https://api.eu.steadycron.example")],
)
def test_a_resolve_started_under_other_settings_never_feeds_the_new_ones(
    setting: str, value: str
) -> None:
    """A resolve under account A still in flight when the settings switch to B: its answer
    must not become B's token."""
    import steadycron

    in_flight, release = threading.Event(), threading.Event()

    def per_account(request: Request) -> Response | None:
        if "resolve" not in request.url:
            return None
        account = request.headers["Authorization"].removeprefix("Bearer ")
        host = urllib.parse.urlsplit(request.url).hostname
        if account == TENANT_A and host == "api.steadycron.com":
            in_flight.set()
            release.wait(5)
        key = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)["key"][0]
        return answer(200, {"kind": "heartbeat", "ping_token": f"{key}-{account}-{host}"})

    transport = InMemoryTransport(handler=per_account)
    steadycron.configure(api_key=TENANT_A, transport=transport)
    first = threading.Thread(target=steadycron.ping, args=(KEY,))
    first.start()
    assert in_flight.wait(5)
    setattr(steadycron, setting, value)
    steadycron.ping("another-key")  # the default client has taken up the new settings
    release.set()
    first.join(5)
    for _ in range(5):
        steadycron.ping(KEY)
    config = steadycron.default_client().config
    expected = f"{KEY}-{config.api_key}-{urllib.parse.urlsplit(config.api_url).hostname}"
    pinged = [r.url.rsplit("/", 1)[-1] for r in transport.requests if "resolve" not in r.url]
    tokens = [token for token in pinged if token.startswith(KEY)]
    assert tokens[0] == f"{KEY}-{TENANT_A}-api.steadycron.com"  # the ping that was under way
    assert tokens[1:] == [expected] * 5
