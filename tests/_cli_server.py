"""A loopback SteadyCron stand-in and a way to run the real ``steadycron`` command.

The command-line tests start the console script in a subprocess, exactly as crontab
would, and point it at this server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs

from steadycron._protocol import read_ping, resolve_key_of

API_KEY = "sc_ro_test_key"
REPOSITORY = Path(__file__).resolve().parent.parent
#: The command under test; ``-m`` so the tests need no installed script.
STEADYCRON = (sys.executable, "-m", "steadycron")
#: Each request's budget in these tests: quick, yet roomy for a loaded machine.
TIMEOUT = "1"


@attrs.frozen
class ReceivedPing:
    token: str
    state: str
    env: str | None
    run_id: str | None
    body: str


@attrs.define
class FakeSteadyCron:
    """What the server answers: key -> (kind, token), plus keys answered 409 or 500."""

    monitors: dict[str, tuple[str, str]] = attrs.Factory(dict)
    ambiguous: set[str] = attrs.Factory(set)
    #: Tokens whose pings are answered 500 (delivery trouble with a reachable server).
    broken_tokens: set[str] = attrs.Factory(set)
    #: Seconds to wait before answering a resolve (a slow API).
    resolve_delay: float = 0.0
    #: Answer every resolve 503 with a long Retry-After (the API down for maintenance):
    #: each resolution is then one request.
    api_unavailable: bool = False
    pings: list[ReceivedPing] = attrs.Factory(list)
    resolves: list[str] = attrs.Factory(list)
    url: str = ""
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, key: str, *, kind: str = "heartbeat", token: str | None = None) -> str:
        token = token or f"tok-{key}"
        self.monitors[key] = (kind, token)
        return token

    def pings_for(self, key: str) -> list[ReceivedPing]:
        token = self.monitors[key][1]
        with self._lock:
            return [ping for ping in self.pings if ping.token == token]

    def record(self, ping: ReceivedPing) -> None:
        with self._lock:
            self.pings.append(ping)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _answer(self, status: int, payload: object = None, **headers: str) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        fake = self.server.fake
        key = resolve_key_of(self.path)
        if key is None:
            self._answer(404, {"error": "not_found", "message": "no such endpoint"})
            return
        fake.resolves.append(key)
        time.sleep(fake.resolve_delay)
        if fake.api_unavailable:
            body = {"error": "unavailable", "message": "down for maintenance"}
            self._answer(503, body, Retry_After="3600")
        elif self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._answer(401, {"error": "unauthorized", "message": "invalid API key"})
        elif key in fake.ambiguous:
            self._answer(409, {"error": "ambiguous", "message": "2 jobs have this key"})
        elif key not in fake.monitors:
            self._answer(404, {"error": "not_found", "message": "no job with this key"})
        else:
            kind, token = fake.monitors[key]
            self._answer(200, {"key": key, "job_id": 7, "kind": kind, "ping_token": token})

    def do_POST(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        target = read_ping(url.path, url.query)
        if target is None:
            self._answer(404, {"error": "not_found", "message": "no such endpoint"})
            return
        fake.record(
            ReceivedPing(target.token, target.state, target.environment, target.run_id, body)
        )
        if target.token in fake.broken_tokens:
            self._answer(500, {"error": "internal", "message": "try again"})
        else:
            self._answer(202, {"ok": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSteadyCron) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def serving() -> Iterator[FakeSteadyCron]:
    """Run a :class:`FakeSteadyCron` on a free loopback port for the block."""
    fake = FakeSteadyCron()
    server = _Server(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def dead_port() -> Iterator[str]:
    """A loopback URL that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def environment(url: str | None, **extra: str) -> dict[str, str]:
    """A child environment that reaches only *url*, with the test API key set."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("STEADYCRON_") and "PROXY" not in name.upper()
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    env["STEADYCRON_API_KEY"] = API_KEY
    if url is not None:
        env["STEADYCRON_API_URL"] = url
        env["STEADYCRON_PING_URL"] = url
    env.update(extra)
    return env


def steadycron(
    *arguments: str,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 20,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``steadycron ARGUMENTS`` to completion, capturing its output as bytes."""
    return subprocess.run(
        [*STEADYCRON, *arguments],
        env=dict(env) if env is not None else environment(url),
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def python(code: str) -> Sequence[str]:
    """A command line that runs *code* in a fresh Python, unbuffered."""
    return (sys.executable, "-u", "-c", code)
