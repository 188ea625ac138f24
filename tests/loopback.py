"""Real servers on 127.0.0.1 for tests: a scriptable HTTP server and raw fault listeners.

``LoopbackServer`` answers each request with whatever its ``respond`` function says (a
SteadyCron stand-in by default) and can misbehave on purpose: delay, drip the answer a byte
at a time, reset the connection, or accept and never answer. TLS comes from a throwaway
CA (``trustme``).
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from steadycron._protocol import RESOLVE_PATH

HOST = "127.0.0.1"


@attrs.frozen
class Received:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class Answer:
    """How to answer one request."""

    status: int = 200
    body: bytes = b"OK"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    drip_seconds_per_byte: float = 0.0
    reset: bool = False
    silent: bool = False

    @classmethod
    def json(cls, status: int, payload: object, **headers: str) -> Answer:
        return cls(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
        )


Respond = Callable[[Received], Answer]


class StandIn:
    """Answers like SteadyCron: resolve with a bearer key, pings to known tokens."""

    def __init__(
        self,
        monitors: Mapping[str, str] | None = None,
        *,
        kinds: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.monitors = dict(monitors or {})
        self.kinds = dict(kinds or {})
        self.api_key = api_key

    def __call__(self, request: Received) -> Answer:
        if request.path == RESOLVE_PATH:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or (
                self.api_key is not None and auth != f"Bearer {self.api_key}"
            ):
                return Answer.json(401, {"error": "unauthorized", "message": "bad API key"})
            key = request.query.get("key", "")
            token = self.monitors.get(key)
            if token is None:
                return Answer.json(404, {"error": "not_found", "message": f"no job {key}"})
            kind = self.kinds.get(key, "heartbeat")
            return Answer.json(
                200, {"key": key, "job_id": f"j-{key}", "kind": kind, "ping_token": token}
            )
        return Answer(200, b"OK")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what the server received, not its log."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        received = Received(
            self.command,
            split.path,
            dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            {name.lower(): value for name, value in self.headers.items()},
            body,
        )
        self.server.owner.record(received)
        answer = self.server.owner.respond(received)
        if answer.delay:
            self.server.owner.stopping.wait(answer.delay)
        if answer.silent:
            self.server.owner.stopping.wait()
            self.close_connection = True
            return
        if answer.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        head = [f"HTTP/1.1 {answer.status} X\r\n", f"Content-Length: {len(answer.body)}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in answer.headers.items()]
        raw = "".join([*head, "\r\n"]).encode("latin-1") + answer.body
        if answer.drip_seconds_per_byte:
            for index in range(len(raw)):
                if self.server.owner.stopping.wait(answer.drip_seconds_per_byte):
                    break
                self.wfile.write(raw[index : index + 1])
                self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_HEAD = _serve


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections in bursts
    owner: LoopbackServer

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.owner.connections += 1
        return connection, address


class LoopbackServer:
    """An HTTP(S) server on 127.0.0.1 and a free port, on a daemon thread.

    Args:
        respond: answers each request; a :class:`StandIn` with no monitors by default.
        tls: a server-side SSL context to serve HTTPS.
    """

    def __init__(self, respond: Respond | None = None, *, tls: ssl.SSLContext | None = None):
        self.respond: Respond = respond or StandIn()
        self.received: list[Received] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server((HOST, 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self.url = f"{self.scheme}://{HOST}:{self.port}"
        # A short poll interval: shutdown() waits up to one interval for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def reuse(self, respond: Respond) -> LoopbackServer:
        """Answer with *respond* from now on, forgetting what was received so far."""
        self.respond = respond
        with self._lock:
            self.received.clear()
        self.connections = 0
        return self

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def silent_listener() -> Iterator[str]:
    """A port that accepts connections (kernel backlog) and never reads or answers."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(64)
    try:
        yield f"http://{HOST}:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port_url() -> str:
    """A URL on a port nobody listens on: connections are refused at once."""
    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://{HOST}:{port}"


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *condition* until it holds or *timeout* passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
