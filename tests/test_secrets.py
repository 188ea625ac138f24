"""API.md §5 "Secrets stay secret", checked everywhere a secret could slip out.

Each test drives the client through real loopback servers while every record of the
``steadycron`` logger (DEBUG and up) and of any logger (INFO and up) is captured, then
searches those records, the raised exceptions (message, repr and whole traceback chain)
and the reprs of the public objects for the API key and every ping token in play.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
import urllib.parse
from collections.abc import Callable, Iterator

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
)

import steadycron
from steadycron import (
    Config,
    ConfigurationError,
    ResolutionUnavailableError,
    SteadyCron,
    SteadyCronError,
)
from steadycron.testing import record
from steadycron.transports import (
    InMemoryTransport,
    NullTransport,
    Request,
    StdlibTransport,
    Transport,
    Urllib3Transport,
)

DIRECT_KEY = "hourly-report"
DIRECT_TOKEN = "tok_direct_secret_41a7"
ODD_KEY = "odd-token"
ODD_TOKEN = "tok/../odd?secret=9c"  # a token URL quoting must change to fit in a path
HTTP_JOB_KEY = "warm-search-index"
HTTP_JOB_TOKEN = "tok_http_job_secret_77"
RESOLVE = "/api/monitors/resolve"

SECRETS = [API_KEY, TOKEN, DIRECT_TOKEN, ODD_TOKEN, HTTP_JOB_TOKEN]
#: Each secret as it may also appear: percent-encoded in a URL path or query.
SECRET_FORMS = sorted(
    {form for secret in SECRETS for form in (secret, urllib.parse.quote(secret, safe=""))}
)

TRANSPORTS = [
    pytest.param(Urllib3Transport, id="urllib3"),
    pytest.param(StdlibTransport, id="stdlib"),
]


class Capture(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Observed:
    """Everything a secret could leak into, gathered for one search at the end."""

    def __init__(self) -> None:
        self.sdk = Capture(logging.DEBUG)
        self.anywhere = Capture(logging.INFO)
        self.texts: list[str] = []
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def exception(self, exc: BaseException) -> None:
        self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    def reprs(self, *objects: object) -> None:
        self.texts += [repr(obj) for obj in objects]

    def records(self) -> list[logging.LogRecord]:
        return self.sdk.records + self.anywhere.records

    def record_texts(self) -> list[str]:
        texts = []
        for entry in self.records():
            texts += [self._formatter.format(entry), str(entry.msg), repr(entry.args)]
            if entry.exc_info:
                texts.append(self._formatter.formatException(entry.exc_info))
        return texts

    def assert_no_secret(self) -> None:
        everything = self.record_texts() + self.texts
        for text in everything:
            for secret in SECRET_FORMS:
                assert secret not in text, f"{secret!r} leaked into {text!r}"


@pytest.fixture
def observed() -> Iterator[Observed]:
    seen = Observed()
    sdk_logger, root = logging.getLogger("steadycron"), logging.getLogger()
    levels = sdk_logger.level, root.level
    sdk_logger.setLevel(logging.DEBUG)
    root.setLevel(logging.INFO)
    sdk_logger.addHandler(seen.sdk)
    root.addHandler(seen.anywhere)
    try:
        yield seen
    finally:
        sdk_logger.removeHandler(seen.sdk)
        root.removeHandler(seen.anywhere)
        sdk_logger.setLevel(levels[0])
        root.setLevel(levels[1])


def stand_in() -> StandIn:
    return StandIn(
        {KEY: TOKEN, HTTP_JOB_KEY: HTTP_JOB_TOKEN},
        kinds={HTTP_JOB_KEY: "http"},
        api_key=API_KEY,
    )


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LoopbackServer, LoopbackServer, LoopbackServer]]:
    # Shared by the module: starting and stopping servers per test adds up.
    with LoopbackServer() as api, LoopbackServer() as ping, LoopbackServer() as elsewhere:
        yield api, ping, elsewhere


@pytest.fixture
def api(running: tuple[LoopbackServer, ...]) -> LoopbackServer:
    """The API host: resolves with the right bearer key only."""
    return running[0].reuse(stand_in())


@pytest.fixture
def ping_host(running: tuple[LoopbackServer, ...]) -> LoopbackServer:
    """The ping host, a different server from the API: it must never see the key."""
    return running[1].reuse(stand_in())


@pytest.fixture
def elsewhere(running: tuple[LoopbackServer, ...]) -> LoopbackServer:
    """Where redirects point."""
    return running[2].reuse(lambda received: Answer(200, b"followed"))


MakeClient = Callable[..., SteadyCron]


@pytest.fixture
def make_client(api: LoopbackServer, ping_host: LoopbackServer) -> Iterator[MakeClient]:
    clients: list[SteadyCron] = []

    def make(
        transport_class: Callable[[], Transport] = Urllib3Transport, **settings: object
    ) -> SteadyCron:
        options: dict[str, object] = {
            "api_key": API_KEY,
            "api_url": api.url,
            "ping_url": ping_host.url,
            "ping_timeout": 0.5,
            "capture_errors": True,
            "monitors": {DIRECT_KEY: DIRECT_TOKEN, ODD_KEY: ODD_TOKEN},
            **settings,
        }
        client = SteadyCron(Config(**options), transport=transport_class())
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def on_resolve(answer: Answer) -> Respond:
    normal = stand_in()
    return lambda received: answer if received.path == RESOLVE else normal(received)


def run_job(client: SteadyCron, key: str = KEY) -> None:
    """One tracked run of *key* whose body succeeds."""

    @client.job(key)
    def job() -> None:
        """Does nothing, successfully."""

    job()


def warnings_of(observed: Observed) -> list[logging.LogRecord]:
    return [r for r in observed.sdk.records if r.levelno >= logging.WARNING]


def assert_key_stayed_with_the_api(*servers: LoopbackServer) -> None:
    """No request to these servers carried the API key, in any header, path, query or body."""
    for server in servers:
        for received in server.received:
            assert "authorization" not in received.headers, received
            seen = [received.path, *received.query.values(), *received.headers.values()]
            assert not [part for part in seen if API_KEY in part], received
            assert API_KEY.encode() not in received.body


# -- scenarios ------------------------------------------------------------------------


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_successful_runs_and_pings_leak_nothing(
    make_client: MakeClient,
    api: LoopbackServer,
    ping_host: LoopbackServer,
    observed: Observed,
    transport_class: Callable[[], Transport],
) -> None:
    client = make_client(transport_class)

    @client.job(KEY)
    def backup() -> None:
        """A job that succeeds."""

    backup()
    with client.monitor(KEY) as run:
        observed.reprs(run)
    client.ping(DIRECT_KEY, "start")
    client.Monitor(ODD_KEY).ping("fail", "disk full")
    assert client.resolve(KEY) == TOKEN
    observed.reprs(
        client, client.config, client.transport, client.Monitor(KEY), client.monitor(KEY)
    )
    observed.reprs(backup)

    assert [r.path for r in api.received] == [RESOLVE]
    assert api.received[0].headers["authorization"] == f"Bearer {API_KEY}"  # the control
    assert len(ping_host.received) == 6  # two runs, two manual pings
    assert_key_stayed_with_the_api(ping_host)
    observed.assert_no_secret()


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_failing_deliveries_leak_nothing(
    make_client: MakeClient,
    ping_host: LoopbackServer,
    observed: Observed,
    transport_class: Callable[[], Transport],
) -> None:
    ping_host.respond = lambda received: Answer(500, f"no such token {received.path}".encode())
    client = make_client(transport_class)
    client.ping(DIRECT_KEY, "fail", f"exploded near {DIRECT_TOKEN}")
    client.Monitor(ODD_KEY).ping()

    @client.job(KEY)
    def backup() -> None:
        raise RuntimeError("backup failed")

    with pytest.raises(RuntimeError) as raised:
        backup()
    observed.exception(raised.value)

    refused = make_client(transport_class, ping_url=closed_port_url())
    refused.ping(DIRECT_KEY)
    with silent_listener() as url:
        make_client(transport_class, ping_url=url, ping_timeout=0.3).ping(ODD_KEY, "start")

    discarded = [r for r in warnings_of(observed) if "ping discarded" in r.getMessage()]
    assert len(discarded) == 6  # 2 manual, start and fail of the run, refused, silent
    assert [r for r in observed.sdk.records if r.levelno == logging.DEBUG]  # retries logged
    assert_key_stayed_with_the_api(ping_host)
    observed.assert_no_secret()


def test_direct_transport_errors_leak_nothing(observed: Observed) -> None:
    """The errors a transport raises name the host, never the path with its token."""
    with silent_listener() as silent:
        for transport in (Urllib3Transport(), StdlibTransport()):
            for base in (closed_port_url(), silent):
                request = Request("POST", f"{base}/{TOKEN}", {"Authorization": API_KEY})
                with pytest.raises(SteadyCronError) as raised:
                    transport.send(request, timeout=0.3)
                observed.exception(raised.value)
                observed.reprs(request, transport)
            transport.close()
    observed.assert_no_secret()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "unauthorized", "message": f"API key {API_KEY} was revoked"}),
        (403, {"code": "forbidden", "message": f"{API_KEY} lacks the monitors:read scope"}),
        (404, {"error": "not_found", "message": f"no job {KEY} visible to {API_KEY}"}),
        (409, {"error": "ambiguous", "message": f"key {KEY} of {API_KEY} names 2 jobs"}),
    ],
)
def test_resolution_errors_echoing_the_key_leak_nothing(
    make_client: MakeClient,
    api: LoopbackServer,
    observed: Observed,
    status: int,
    body: dict[str, str],
) -> None:
    api.respond = on_resolve(Answer.json(status, body))
    client = make_client()
    with pytest.raises(ConfigurationError) as raised:
        run_job(client)
    assert "***" in str(raised.value)  # the server's message is kept, the key blanked out
    observed.exception(raised.value)
    with pytest.raises(ConfigurationError) as again:
        client.resolve(KEY)
    observed.exception(again.value)
    observed.assert_no_secret()


def test_a_non_heartbeat_job_leaks_its_token_nowhere(
    make_client: MakeClient, observed: Observed
) -> None:
    client = make_client()
    with pytest.raises(ConfigurationError) as raised:
        client.Monitor(HTTP_JOB_KEY).ping()
    assert "'http'" in str(raised.value)
    observed.exception(raised.value)
    observed.assert_no_secret()


def test_no_api_key_leaks_no_token(make_client: MakeClient, observed: Observed) -> None:
    client = make_client(api_key=None)
    with pytest.raises(ConfigurationError) as raised:
        client.ping(KEY)
    observed.exception(raised.value)
    observed.reprs(client, client.config)
    observed.assert_no_secret()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_carries_the_key_nowhere_and_leaks_nothing(
    make_client: MakeClient,
    api: LoopbackServer,
    ping_host: LoopbackServer,
    elsewhere: LoopbackServer,
    observed: Observed,
    status: int,
) -> None:
    location = f"{elsewhere.url}/collect?stolen={API_KEY}&token={TOKEN}"
    api.respond = on_resolve(Answer(status, b"", {"Location": location}))
    ping_host.respond = lambda received: Answer(status, b"", {"Location": location})
    client = make_client()
    run_job(client)
    client.ping(DIRECT_KEY)
    with pytest.raises(ResolutionUnavailableError) as raised:
        client.resolve(KEY)
    observed.exception(raised.value)
    assert len(warnings_of(observed)) == 2
    assert elsewhere.received == []
    assert elsewhere.connections == 0
    assert_key_stayed_with_the_api(ping_host, elsewhere)
    observed.assert_no_secret()


def test_a_malformed_answer_echoing_the_key_leaks_nothing(
    make_client: MakeClient, api: LoopbackServer, observed: Observed
) -> None:
    portal = f"<html>Welcome! Authorization: Bearer {API_KEY} token {TOKEN}</html>"
    api.respond = on_resolve(Answer(200, portal.encode()))
    client = make_client()
    run_job(client)
    with pytest.raises(ResolutionUnavailableError) as raised:
        client.resolve(KEY)
    observed.exception(raised.value)
    assert len(warnings_of(observed)) == 1
    observed.assert_no_secret()


def test_a_server_echoing_the_request_leaks_nothing(
    make_client: MakeClient, api: LoopbackServer, ping_host: LoopbackServer, observed: Observed
) -> None:
    """Error bodies that quote the request back (path, headers) reach no log or error."""

    def echo(received: Received) -> Answer:
        return Answer.json(503, {"message": f"{received.path} {dict(received.headers)}"})

    api.respond = ping_host.respond = echo
    client = make_client(resolve_cache_ttl=0)
    run_job(client)
    client.ping(DIRECT_KEY)
    with pytest.raises(ResolutionUnavailableError) as raised:
        client.resolve(KEY)
    observed.exception(raised.value)
    assert len(warnings_of(observed)) == 2
    observed.assert_no_secret()


# -- reprs of everything a user can hold ------------------------------------------------


def test_reprs_of_public_objects_hide_the_key_and_the_tokens(observed: Observed) -> None:
    config = Config(
        api_key=API_KEY,
        monitors={DIRECT_KEY: DIRECT_TOKEN, ODD_KEY: ODD_TOKEN},
        environment="production",
    )
    transport = InMemoryTransport({KEY: TOKEN, "other": HTTP_JOB_TOKEN})
    client = SteadyCron(config, transport=transport)

    @client.job(KEY)
    def backup() -> None:
        """A job that succeeds."""

    backup()
    client.ping(DIRECT_KEY, "fail", "boom")
    with client.monitor(KEY) as run:
        observed.reprs(run)
    assert len(transport.requests) == 6  # resolve; start, success; fail; start, success
    sent = list(transport.requests)
    observed.reprs(*sent)
    observed.reprs(*[transport.send(request, timeout=1.0) for request in sent])
    observed.reprs(config, client, transport, NullTransport(), client.Monitor(KEY), backup)
    observed.reprs(Urllib3Transport(), StdlibTransport())

    steadycron.api_key = API_KEY
    steadycron.monitors[DIRECT_KEY] = DIRECT_TOKEN
    steadycron.monitors = {DIRECT_KEY: DIRECT_TOKEN, ODD_KEY: ODD_TOKEN}
    observed.reprs(
        steadycron.monitors,
        steadycron.default_client(),
        steadycron.default_client().config,
        steadycron.Monitor(DIRECT_KEY),
    )
    client.close()
    observed.assert_no_secret()


def test_recorded_pings_show_keys_not_tokens(observed: Observed) -> None:
    """The test kit sees pings by key; nothing it shows carries a token."""
    client = SteadyCron(Config(api_key=API_KEY, monitors={DIRECT_KEY: DIRECT_TOKEN}))
    with record(client) as pings:
        run_job(client)
        client.ping(DIRECT_KEY, "fail", "boom")
    assert pings.states(KEY) == ["start", "success"]
    assert pings.states(DIRECT_KEY) == ["fail"]
    observed.reprs(pings, pings.pings, pings.runs(KEY))
    client.close()
    observed.assert_no_secret()


def test_the_search_itself_finds_a_leak(observed: Observed) -> None:
    """Guards the checks above: a secret in a log record's args is caught."""
    logging.getLogger("steadycron").debug("token is %s", urllib.parse.quote(ODD_TOKEN, safe=""))
    with pytest.raises(AssertionError, match="leaked"):
        observed.assert_no_secret()


# -- server text quoting what the client holds ----------------------------------------

OTHER_KEY = "weekly-vacuum"


def test_server_text_echoing_any_token_the_client_holds_leaks_nothing(
    make_client: MakeClient, api: LoopbackServer, observed: Observed
) -> None:
    """A token held directly, one cached from an earlier resolve, and the one in the
    answer itself: each is scrubbed from a 401 message and from a ``kind`` field."""
    client = make_client()
    run_job(client)  # TOKEN is cached now
    echo = f"tokens {TOKEN} {DIRECT_TOKEN} {ODD_TOKEN} and key {API_KEY} were refused"
    normal = stand_in()
    answers = {
        "401": Answer.json(401, {"error": "unauthorized", "message": echo}),
        "kind": Answer.json(
            200, {"kind": f"{TOKEN}{HTTP_JOB_TOKEN}", "ping_token": HTTP_JOB_TOKEN}
        ),
    }
    for name, answer in answers.items():
        api.respond = lambda received, answer=answer: (  # type: ignore[misc]
            answer if received.query.get("key") == OTHER_KEY else normal(received)
        )
        with pytest.raises(ConfigurationError) as raised:
            run_job(client, OTHER_KEY)
        assert "***" in str(raised.value), name
        observed.exception(raised.value)
    observed.assert_no_secret()


def test_huge_keys_and_server_texts_make_no_huge_messages_or_log_records(
    make_client: MakeClient, api: LoopbackServer, observed: Observed
) -> None:
    huge_key = "k" * 50_000  # as long as the stand-in's request line allows
    api.respond = on_resolve(Answer.json(503, {"message": "x" * 2_000_000}))
    client = make_client()
    run_job(client, huge_key)  # an outage: the job runs, warnings are logged
    api.respond = on_resolve(Answer.json(404, {"message": "y" * 2_000_000}))
    with pytest.raises(ConfigurationError) as raised:
        run_job(client, huge_key)
    assert len(str(raised.value)) < 2_000
    texts = observed.record_texts()
    assert warnings_of(observed)
    assert max(len(text) for text in texts) < 2_000


@pytest.mark.parametrize("setting", ["api_url", "ping_url"])
def test_urls_with_credentials_are_refused_without_repeating_them(
    setting: str, observed: Observed
) -> None:
    url = "http://monitoring:hunter2-pa55@127.0.0.1:8080/base"
    for attempt in (
        lambda: Config(**{setting: url}),
        lambda: steadycron.configure(**{setting: url}),
        lambda: setattr(steadycron, setting, url),
    ):
        with pytest.raises(ValueError, match="credentials") as raised:
            attempt()
        assert "hunter2-pa55" not in str(raised.value)
        assert "monitoring:" not in str(raised.value)
    assert getattr(steadycron, setting).startswith("https://")
    observed.assert_no_secret()


NO_CACHE_AFTER_CLOSE = """
import functools, gc
from steadycron import Config, SteadyCron
from steadycron.transports import InMemoryTransport

with SteadyCron(Config(monitors={"k": "tok_cached_4f1a"}), transport=InMemoryTransport()) as client:
    client.ping("k")
caches = [
    wrapper
    for wrapper in gc.get_objects()
    if isinstance(wrapper, functools._lru_cache_wrapper)
    and getattr(wrapper, "__module__", "").startswith("steadycron")
]
print(len(caches), sum(cache.cache_info().currsize for cache in caches))
"""


def test_no_cache_outside_a_client_keeps_a_token_after_close() -> None:
    """Ping URLs are cached per client and emptied by ``close()``: no process-wide cache
    of the SDK holds a token once its client is gone (checked in a process of its own,
    where no other test's client is alive)."""
    result = subprocess.run(
        [sys.executable, "-c", NO_CACHE_AFTER_CLOSE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    caches, entries = map(int, result.stdout.split())
    assert caches >= 1  # the client's own cache is found
    assert entries == 0
