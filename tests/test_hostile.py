"""Hostile answers: whatever comes back over the wire, a run survives it intact.

A resolve answer may be huge, not JSON, or JSON of the wrong shape, or may hand out a
token made of ``/ ? # ..`` CR/LF and non-ASCII. A ping answer may carry thousands of
headers, enormous ones, or no valid status line at all. For every one of them:

- nothing is raised out of a run or a ping (misconfiguration answers raise their own
  typed error, nothing else);
- no request goes anywhere but the resolve path or ``/`` + the percent-encoded token
  (+ ``/start`` or ``/fail``), checked on the raw request target the server read;
- neither the API key nor a token appears in a log record.

The servers here are raw sockets, so that they can send what no HTTP library would.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator

import attrs
import pytest
from conftest import API_KEY, KEY, TOKEN

from steadycron import (
    AuthenticationError,
    Config,
    MonitorNotFoundError,
    SteadyCron,
)
from steadycron.transports import StdlibTransport, Urllib3Transport

RESOLVE_TARGET = f"/api/monitors/resolve?{urllib.parse.urlencode({'key': KEY})}"
PING_TIMEOUT = 0.25
#: Scheduling noise allowed beyond a run's two ping deadlines.
MARGIN = 0.7
TRANSPORTS = [
    pytest.param(Urllib3Transport, id="urllib3"),
    pytest.param(StdlibTransport, id="stdlib"),
]


@attrs.frozen
class RawRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Answerer = Callable[[RawRequest], Iterable[bytes]]


class RawServer:
    """A TCP server on 127.0.0.1 that reads one HTTP request per connection, records its
    raw request target, sends whatever bytes *answer* yields, and closes."""

    def __init__(self, answer: Answerer) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests: list[RawRequest] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._thread.join(5)
        self._listener.close()

    def targets(self) -> list[str]:
        return [request.target for request in self.requests]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                request = self._read(connection)
                if request is None:
                    return
                self.requests.append(request)
                for chunk in self._answer(request):
                    if self.stopping.is_set():
                        return
                    connection.sendall(chunk)
            except OSError:
                return  # the client walked away at its deadline: expected

    @staticmethod
    def _read(connection: socket.socket) -> RawRequest | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk or len(data) > 1 << 20:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            body += chunk
        return RawRequest(method, target, headers, body)


def http_answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n").encode("latin-1") + body


def resolve_answer(token: str) -> bytes:
    payload = {"key": KEY, "job_id": "j-1", "kind": "heartbeat", "ping_token": token}
    return http_answer(200, json.dumps(payload).encode(), "Content-Type: application/json")


def path_segment(token: str) -> str:
    """The one path segment a token must become (PROTOCOL.md), worked out independently."""
    special = {".": "%2E", "..": "%2E%2E"}
    return special.get(token) or "".join(
        char
        if char.isascii() and (char.isalnum() or char in "-._~")
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in token
    )


def make_client(url: str, transport: type[Urllib3Transport | StdlibTransport]) -> SteadyCron:
    config = Config(
        api_key=API_KEY,
        api_url=url,
        ping_url=url,
        ping_timeout=PING_TIMEOUT,
        capture_errors=True,
    )
    return SteadyCron(config, transport=transport())


@pytest.fixture
def secrets_checked(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every log record of the test: the SDK's at any level and any logger's at INFO and
    above must not contain the API key or a token (raw or percent-encoded). A test adds
    the tokens it hands out to the yielded list."""
    caplog.set_level(logging.DEBUG)
    secrets = [API_KEY, TOKEN, path_segment(TOKEN)]
    yield secrets
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        if record.name.startswith("steadycron") or record.levelno >= logging.INFO:
            text = formatter.format(record)
            leaked = [secret for secret in secrets if secret and secret in text]
            assert not leaked, f"{leaked} in a log record: {text}"


def run_a_job(client: SteadyCron, *, fail: bool) -> float:
    """Run one monitored job; check it hands back exactly its own result; return how long
    the whole run took."""
    produced = ValueError("the job's own error") if fail else object()

    @client.job(KEY)
    def job() -> object:
        if isinstance(produced, BaseException):
            raise produced
        return produced

    started = time.monotonic()
    result: object = None
    caught: BaseException | None = None
    try:
        result = job()
    except ValueError as exc:
        caught = exc
    elapsed = time.monotonic() - started
    if fail:
        assert caught is produced
        assert caught is not None
        assert caught.__context__ is None
    else:
        assert caught is None
        assert result is produced
    return elapsed


# -- hostile resolve answers -------------------------------------------------------

DEEP = b"[" * 30_000 + b"]" * 30_000
NONSENSE_200 = {
    "huge": b'{"ping_token": "' + b"x" * 5_000_000 + b'"}',
    "huge junk": b"\x00\xff" * 2_000_000,
    "not json": b"<html><body>Please log in to the Wi-Fi</body></html>",
    "list": b'["ping_token", "tok"]',
    "string": b'"tok"',
    "null": b"null",
    "number": b"1e999",
    "token not a string": b'{"kind": "heartbeat", "ping_token": 12345}',
    "token a list": b'{"kind": "heartbeat", "ping_token": ["tok"]}',
    "token null": b'{"kind": "heartbeat", "ping_token": null}',
    "token empty": b'{"kind": "heartbeat", "ping_token": ""}',
    "no token": b'{"kind": "heartbeat"}',
    "deeply nested": DEEP,
    "nested in object": b'{"ping_token": ' + DEEP + b"}",
    "invalid utf-8": b'{"ping_token": "\xff\xfe"}',
    "empty": b"",
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("body", NONSENSE_200.values(), ids=NONSENSE_200.keys())
def test_a_nonsense_resolve_answer_is_an_outage_the_job_survives(
    body: bytes,
    transport: type[Urllib3Transport | StdlibTransport],
    secrets_checked: list[str],
) -> None:
    with (
        RawServer(lambda request: [http_answer(200, body)]) as server,
        make_client(server.url, transport) as client,
    ):
        elapsed = run_a_job(client, fail=False)
        run_a_job(client, fail=True)
    # No token, no ping: only resolve requests, tried again on the next use.
    assert server.targets() == [RESOLVE_TARGET, RESOLVE_TARGET]
    assert elapsed < PING_TIMEOUT + MARGIN


@pytest.mark.parametrize(
    "body",
    [DEEP, b"\xff" * 100_000, b'{"message": ' + DEEP + b"}", b'{"message": [1, 2]}'],
    ids=["deeply nested", "binary", "nested message", "message not a string"],
)
def test_a_refusal_with_a_nonsense_body_still_raises_its_typed_error(
    body: bytes, secrets_checked: list[str]
) -> None:
    with (
        RawServer(lambda request: [http_answer(404, body)]) as server,
        make_client(server.url, Urllib3Transport) as client,
    ):
        ran = []

        @client.job(KEY)
        def job() -> None:
            ran.append(True)

        with pytest.raises(MonitorNotFoundError) as caught:
            job()
    assert not ran
    assert caught.value.key == KEY


def test_a_refusal_that_echoes_the_api_key_does_not_pass_it_on(
    secrets_checked: list[str],
) -> None:
    body = json.dumps({"error": "unauthorized", "message": f"key {API_KEY} was revoked"})
    with (
        RawServer(lambda request: [http_answer(401, body.encode())]) as server,
        make_client(server.url, Urllib3Transport) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.ping(KEY)
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert "revoked" in str(caught.value)


HOSTILE_TOKENS = [
    "a/b",
    "a?b=c",
    "a#b",
    ".",
    "..",
    "../../admin",
    "%2e%2E",
    "tok\r\nX-Injected: 1",
    "tok\r\n\r\nGET /evil HTTP/1.1",
    "t\u00f6k\u20ac\U0001d11e",
    " spaced token ",
    "a;b&c=d",
    "?",
    "#",
    "/",
    "\x00\x7f",
    "\u202etok",  # right-to-left override
    "x" * 5000,
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("token", HOSTILE_TOKENS, ids=[repr(t)[:24] for t in HOSTILE_TOKENS])
def test_a_hostile_token_is_one_percent_encoded_path_segment(
    token: str,
    transport: type[Urllib3Transport | StdlibTransport],
    secrets_checked: list[str],
) -> None:
    secrets_checked += [token, path_segment(token)]

    def answer(request: RawRequest) -> list[bytes]:
        if request.target.startswith("/api/"):
            return [resolve_answer(token)]
        return [http_answer(200, b"OK")]

    with RawServer(answer) as server, make_client(server.url, transport) as client:
        run_a_job(client, fail=False)
        run_a_job(client, fail=True)
        client.ping(KEY, "success", message="manual")

    segment = path_segment(token)
    assert server.targets()[0] == RESOLVE_TARGET
    pings = server.requests[1:]
    paths = [request.target.partition("?")[0] for request in pings]
    run = [f"/{segment}/start", f"/{segment}"]
    assert paths == [*run, f"/{segment}/start", f"/{segment}/fail", f"/{segment}"]
    for request in pings[:4]:
        query = request.target.partition("?")[2]
        assert urllib.parse.parse_qs(query).keys() == {"run_id"}
    assert "?" not in pings[4].target
    assert [request.method for request in pings] == ["POST"] * 5
    assert all("x-injected" not in request.headers for request in server.requests)
    assert len(server.requests) == 6  # nothing smuggled in as a request of its own


# -- hostile ping answers ----------------------------------------------------------


def endless_continues(server: RawServer) -> Iterator[bytes]:
    """``100 Continue`` after ``100 Continue``: never a final answer (for a second)."""
    end = time.monotonic() + 1.0
    while time.monotonic() < end and not server.stopping.is_set():
        yield b"HTTP/1.1 100 Continue\r\n\r\n"
        time.sleep(0.002)


def dripping_headers(server: RawServer) -> Iterator[bytes]:
    """A valid status line, then one header line after another, slowly, forever."""
    yield b"HTTP/1.1 200 OK\r\n"
    end = time.monotonic() + 1.0
    while time.monotonic() < end and not server.stopping.is_set():
        yield b"X-Slow: 1\r\n"
        time.sleep(0.01)


def too_many_requests(retry_after: str, server: RawServer) -> list[bytes]:
    return [http_answer(429, b"", f"Retry-After: {retry_after}")]


HOSTILE_PINGS: dict[str, Callable[[RawServer], Iterable[bytes]]] = {
    "thousands of headers": lambda s: [
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: v\r\n" * 5000 + b"Content-Length: 0\r\n\r\n"
    ],
    "enormous header value": lambda s: [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2_000_000 + b"\r\nContent-Length: 0\r\n\r\n"
    ],
    "enormous status line": lambda s: [b"HTTP/1.1 200 " + b"O" * 500_000 + b"\r\n\r\n"],
    "no status line": lambda s: [b"hello there\r\n\r\n"],
    "status not a number": lambda s: [b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"],
    "status out of range": lambda s: [b"HTTP/1.1 99999 X\r\nContent-Length: 0\r\n\r\n"],
    "unknown version": lambda s: [b"HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n"],
    "binary junk": lambda s: [bytes(range(256)) * 400],
    "nothing at all": lambda s: [],
    "header without a colon": lambda s: [
        b"HTTP/1.1 200 OK\r\nnot a header line\r\nContent-Length: 0\r\n\r\n"
    ],
    "non-latin-1 header bytes": lambda s: [
        b"HTTP/1.1 200 OK\r\nX-Bytes: \xff\xfe\x00\r\nContent-Length: 0\r\n\r\n"
    ],
    "conflicting lengths": lambda s: [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello"
    ],
    "negative length": lambda s: [b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello"],
    "short body": lambda s: [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"],
    "broken chunks": lambda s: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    "broken gzip": lambda s: [
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!"
    ],
    "huge body": lambda s: [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 5_000_000
    ],
    "redirect to elsewhere": lambda s: [
        b"HTTP/1.1 307 X\r\nLocation: http://127.0.0.1:9/steal\r\nContent-Length: 0\r\n\r\n"
    ],
    "endless 100 continue": endless_continues,
    "dripping headers": dripping_headers,
    **{
        f"429 retry-after {value[:12]!r}": functools.partial(too_many_requests, value)
        for value in [
            "1e308",
            "nan",
            "-inf",
            "Wed, 21 Oct 2999 07:28:00 GMT",
            "Fri, 99 Foo 20000 99:99:99 +9999",
            "9" * 5000,
        ]
    },
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("make_answer", HOSTILE_PINGS.values(), ids=HOSTILE_PINGS.keys())
def test_a_hostile_ping_answer_never_breaks_a_run(
    make_answer: Callable[[RawServer], Iterable[bytes]],
    transport: type[Urllib3Transport | StdlibTransport],
    secrets_checked: list[str],
) -> None:
    server: RawServer

    def answer(request: RawRequest) -> Iterable[bytes]:
        if request.target.startswith("/api/"):
            return [resolve_answer(TOKEN)]
        return make_answer(server)

    with RawServer(answer) as server, make_client(server.url, transport) as client:
        elapsed = run_a_job(client, fail=True)

    assert elapsed < 2 * PING_TIMEOUT + MARGIN
    allowed = {f"/{TOKEN}", f"/{TOKEN}/start", f"/{TOKEN}/fail"}
    targets = server.targets()
    assert targets[0] == RESOLVE_TARGET
    assert targets.count(RESOLVE_TARGET) == 1
    assert {target.partition("?")[0] for target in targets[1:]} <= allowed
    assert len(targets) > 1
