"""A key that has a token keeps pinging: stale while revalidate, and errors on first use only.

API.md §5: a cached token past ``resolve_cache_ttl`` is used at once while the
re-resolution runs beside the run; a re-resolution that is refused (401, 403, 404, 409, a
wrong kind) logs an ERROR and keeps the last token; a 429 with a token uses the token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import wait_for

from steadycron import AuthenticationError, Config, SteadyCron
from steadycron.transports import InMemoryTransport, Request, Response

NEW_TOKEN = "tok_rotated_77c1"
TTL = 0.05


def answer(status: int, payload: object, **headers: str) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, {"Content-Type": "application/json", **headers}, body)


def resolved(token: str = NEW_TOKEN, kind: str = "heartbeat") -> Response:
    return answer(200, {"key": KEY, "job_id": "j1", "kind": kind, "ping_token": token})


class Api:
    """An in-memory SteadyCron whose resolve answer the test changes as it goes."""

    def __init__(self) -> None:
        self.resolve_answer: Callable[[], Response | None] = lambda: None
        self.transport = InMemoryTransport({KEY: TOKEN}, handler=self._handle)

    def _handle(self, request: Request) -> Response | None:
        return self.resolve_answer() if "/api/monitors/resolve" in request.url else None

    @property
    def resolves(self) -> int:
        return sum("/api/monitors/resolve" in r.url for r in self.transport.requests)

    def pinged_tokens(self) -> list[str]:
        paths = [r.url.split("?")[0] for r in self.transport.requests if "resolve" not in r.url]
        return [path.removeprefix("https://ping.steadycron.com/") for path in paths]


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def client(api: Api) -> Iterator[SteadyCron]:
    config = Config(api_key=API_KEY, ping_timeout=1.0, resolve_cache_ttl=TTL)
    with SteadyCron(config, transport=api.transport) as client:
        yield client


def stale(client: SteadyCron) -> None:
    """Resolve KEY, then let the TTL pass."""
    client.ping(KEY)
    time.sleep(TTL * 2)


def refreshes_running() -> bool:
    return any(thread.name == "steadycron-resolve" for thread in threading.enumerate())


def test_a_stale_token_is_used_at_once_while_a_slow_re_resolution_runs_beside(
    api: Api, client: SteadyCron
) -> None:
    """A re-resolution that hangs never delays the run's pings; its token is used from the
    next ping on."""
    stale(client)
    release = threading.Event()

    def slow() -> Response:
        release.wait(5)
        return resolved()

    api.resolve_answer = slow
    api.transport.blocking = True  # sent from a worker thread, as a network transport is
    started = time.monotonic()
    assert client.job(KEY)(lambda: "ran")() == "ran"
    elapsed = time.monotonic() - started
    assert api.pinged_tokens() == [TOKEN, f"{TOKEN}/start", TOKEN]
    # The hung resolve would have held the start ping for the whole ping_timeout (1 s).
    assert elapsed < 0.5
    release.set()
    assert wait_for(lambda: not refreshes_running())
    client.ping(KEY)
    assert api.pinged_tokens()[-1] == NEW_TOKEN
    assert api.resolves == 2


def test_a_re_resolution_that_never_answers_ends_within_the_ping_timeout(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(api_key=API_KEY, ping_timeout=0.3, resolve_cache_ttl=TTL)
    client = SteadyCron(config, transport=api.transport)
    stale(client)
    never = threading.Event()

    def hang() -> None:
        never.wait(10)

    api.resolve_answer = hang
    api.transport.blocking = True
    client.ping(KEY)
    started = time.monotonic()
    assert wait_for(lambda: "last known token" in caplog.text, timeout=5)
    assert time.monotonic() - started < 0.3 + 0.5
    assert api.pinged_tokens() == [TOKEN, TOKEN]
    never.set()
    client.close()


def test_no_re_resolution_when_no_thread_can_be_started(
    api: Api, client: SteadyCron, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At interpreter shutdown (an atexit handler on Python 3.12+) threads cannot start:
    the stale token is used and the refresh skipped."""
    stale(client)

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert client.job(KEY)(lambda: "ran")() == "ran"
    assert api.pinged_tokens() == [TOKEN, f"{TOKEN}/start", TOKEN]
    assert api.resolves == 1
    monkeypatch.undo()
    time.sleep(TTL * 2)
    client.ping(KEY)  # threads again: this time the stale token is refreshed
    assert wait_for(lambda: api.resolves == 2)


REFUSALS = [
    pytest.param(
        lambda: answer(401, {"error": "unauthorized", "message": "key revoked"}), id="401"
    ),
    pytest.param(lambda: answer(403, {"code": "forbidden", "message": "no scope"}), id="403"),
    pytest.param(lambda: answer(404, {"error": "not_found", "message": "no job"}), id="404"),
    pytest.param(lambda: answer(409, {"error": "ambiguous", "message": "2 jobs"}), id="409"),
    pytest.param(lambda: resolved(kind="http"), id="kind-http"),
    pytest.param(lambda: resolved(token=None, kind="http"), id="kind-http-no-token"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refused_re_resolution_logs_an_error_and_keeps_the_last_token(
    api: Api,
    client: SteadyCron,
    refusal: Callable[[], Response],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stale(client)
    api.resolve_answer = refusal
    assert client.job(KEY)(lambda: "ran")() == "ran"
    assert wait_for(lambda: not refreshes_running())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert KEY in errors[0].getMessage()
    assert "last known token stays in use" in errors[0].getMessage()
    client.ping(KEY)  # a failed re-resolution is not tried again at every ping
    assert api.pinged_tokens() == [TOKEN, f"{TOKEN}/start", TOKEN, TOKEN]
    assert api.resolves == 2
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_the_error_carries_the_typed_errors_text(
    api: Api, client: SteadyCron, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = answer(401, {"error": "unauthorized", "message": "key revoked yesterday"})
    stale(client)
    api.resolve_answer = lambda: refusal
    client.ping(KEY)
    assert wait_for(lambda: not refreshes_running())
    fresh = SteadyCron(client.config, transport=InMemoryTransport(handler=lambda r: refusal))
    with pytest.raises(AuthenticationError) as first_use:
        fresh.resolve(KEY)
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(first_use.value) in error.getMessage()


def test_without_a_token_a_refusal_still_raises(api: Api, client: SteadyCron) -> None:
    api.resolve_answer = lambda: answer(401, {"error": "unauthorized", "message": "revoked"})
    ran: list[str] = []
    with pytest.raises(AuthenticationError):
        client.job(KEY)(lambda: ran.append("ran"))()
    assert ran == []


def test_a_429_with_a_stale_token_uses_the_token(
    api: Api, client: SteadyCron, caplog: pytest.LogCaptureFixture
) -> None:
    stale(client)
    api.resolve_answer = lambda: Response(429, {"Retry-After": "30"})
    assert client.job(KEY)(lambda: "ran")() == "ran"
    assert wait_for(lambda: "last known token" in caplog.text)
    assert api.pinged_tokens() == [TOKEN, f"{TOKEN}/start", TOKEN]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_429_with_a_fresh_token_is_never_asked_for(api: Api) -> None:
    client = SteadyCron(Config(api_key=API_KEY), transport=api.transport)
    client.ping(KEY)
    api.resolve_answer = lambda: Response(429, {"Retry-After": "30"})
    assert client.job(KEY)(lambda: "ran")() == "ran"
    assert api.resolves == 1
    assert api.pinged_tokens() == [TOKEN, f"{TOKEN}/start", TOKEN]


def test_a_429_without_a_token_runs_the_job_unpinged_with_a_warning(
    api: Api, client: SteadyCron, caplog: pytest.LogCaptureFixture
) -> None:
    api.resolve_answer = lambda: Response(429, {"Retry-After": "30"})
    assert client.job(KEY)(lambda: "ran")() == "ran"
    assert api.pinged_tokens() == []
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "unpinged" in warning.getMessage()


def test_an_explicit_resolve_of_a_stale_key_asks_and_reports(api: Api, client: SteadyCron) -> None:
    """client.resolve() is the call whose job is asking: it does not answer with a stale
    token, and a refusal raises."""
    stale(client)
    api.resolve_answer = lambda: answer(404, {"error": "not_found", "message": "deleted"})
    with pytest.raises(Exception, match="deleted"):
        client.resolve(KEY)
    api.resolve_answer = lambda: None
    assert client.resolve(KEY) == TOKEN
    assert api.resolves == 3
