"""The HTTP plumbing under the dev server: a threading server bound to loopback and a
handler that reads one request, asks the stand-in for its answer and writes it."""

from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import sys
from typing import TYPE_CHECKING, Any, cast

import attrs

from steadycron._version import __version__

if TYPE_CHECKING:
    from .server import DevServer

MAX_BODY_BYTES = 1024 * 1024


@attrs.frozen
class Answer:
    """One answer of the stand-in: status, body and its content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def json_answer(status: int, payload: object) -> Answer:
    return Answer(status, json.dumps(payload).encode(), "application/json")


def error_answer(status: int, code: str, message: str) -> Answer:
    return json_answer(status, {"error": code, "message": message})


def text_answer(status: int, text: str) -> Answer:
    return Answer(status, text.encode())


class HTTPServer(http.server.ThreadingHTTPServer):
    dev: DevServer
    # handle_request() is called only when a connection waits; this bounds the rare case
    # where the client gave up in between.
    timeout = 0.5
    # On Windows SO_REUSEADDR would let a second server share the port silently.
    allow_reuse_address = os.name != "nt"

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up; a loopback server has no need.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up, as a client that timed out does
        super().handle_error(request, client_address)


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"steadycron-dev-server/{__version__}"
    sys_version = ""
    # Headers and body leave in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    @property
    def _dev(self) -> DevServer:
        return cast(HTTPServer, self.server).dev

    def setup(self) -> None:
        super().setup()
        with self._dev._lock:
            self._dev._connections.add(self.connection)

    def finish(self) -> None:
        with self._dev._lock:
            self._dev._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(text_answer(411, "send a Content-Length\n"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(text_answer(413 if length > 0 else 400, "bad Content-Length\n"))
            return
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization", "")
        content_type = self.headers.get("Content-Type", "")
        answer = self._dev._respond(self.command, self.path, authorization, body, content_type)
        if answer is None:
            self.close_connection = True
            return
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the timeline reports what matters."""


# -- the timeline ---------------------------------------------------------------------
