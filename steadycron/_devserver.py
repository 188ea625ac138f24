"""``steadycron dev-server``: a local stand-in for SteadyCron, for trying jobs offline.

It answers the resolve API and the ping host on one loopback address, so pointing both
``STEADYCRON_API_URL`` and ``STEADYCRON_PING_URL`` at it lets a job run end to end while
a readable timeline shows every ping. Keys come from monitor manifests or ``--monitor``;
faults (latency, 5xx answers, dropped connections) can be injected to see how a job
behaves when monitoring misbehaves. ``DevServer`` is the same server as a class, for
tests and demos. ``import steadycron`` never imports this module.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import math
import os
import random
import selectors
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from ._manifest import KINDS, ManifestError, load_manifests
from ._version import __version__

if TYPE_CHECKING:
    from typing_extensions import Self

RESOLVE_PATH = "/api/monitors/resolve"
PINGS_PATH = "/api/dev/pings"
DEFAULT_PORT = 8787
STATES_BY_SUFFIX = {"start": "start", "success": "success", "fail": "fail"}
MAX_BODY_BYTES = 1024 * 1024
TOKEN_LENGTH = 22

# Python 3.10 has no datetime.UTC; the alias keeps one spelling throughout.
UTC = timezone.utc


def dev_token(key: str) -> str:
    """Return the ping token the dev server gives *key*: URL-safe and the same every run."""
    digest = hashlib.sha256(f"steadycron-dev-token\0{key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TOKEN_LENGTH]


def dev_job_id(key: str) -> str:
    """Return the job id the dev server reports for *key*, stable like the token."""
    return "job_" + hashlib.sha256(f"steadycron-dev-job\0{key}".encode()).hexdigest()[:16]


@attrs.frozen
class ReceivedPing:
    """One ping as the dev server received it.

    ``duration`` is the time in seconds since the start ping of the same run, on an
    outcome ping whose start was seen; otherwise ``None``.
    """

    key: str
    state: str
    environment: str | None
    run_id: str | None
    message: str | None
    at: datetime
    duration: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The ping as plain JSON values, as ``--json`` and ``/api/dev/pings`` show it."""
        return {
            "time": self.at.isoformat(timespec="milliseconds"),
            "key": self.key,
            "state": self.state,
            "environment": self.environment,
            "run_id": self.run_id,
            "message": self.message,
            "duration": self.duration,
        }


@attrs.frozen
class _Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _json_answer(status: int, payload: object) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), "application/json")


def _error_answer(status: int, code: str, message: str) -> _Answer:
    return _json_answer(status, {"error": code, "message": message})


def _text_answer(status: int, text: str) -> _Answer:
    return _Answer(status, text.encode())


class DevServer:
    """A SteadyCron stand-in on a loopback port, served from a daemon thread.

    Args:
        monitors: key -> job kind (``"heartbeat"``, ``"http"`` or ``"agent"``).
        ambiguous: keys that resolve to 409, as if several jobs shared them.
        api_key: the one API key accepted; ``None`` accepts any non-empty key.
        latency: seconds to wait before answering a resolve or a ping.
        error_rate: share (0..1) of answered requests that get a 503 instead.
        drop_rate: share (0..1) of requests whose connection is closed unanswered.
        on_ping: called with each ``ReceivedPing`` before the ping is answered.
        on_note: called with a line of text about other events (resolves, faults,
            unknown tokens), for a human watching.
        host, port: where to listen; port 0 picks a free port (see ``url``).
        rng: the random source for faults, to make them repeatable.

    ``latency``, ``error_rate`` and ``drop_rate`` may be reassigned while the server
    runs, to stage an outage in the middle of a demo.
    """

    def __init__(
        self,
        monitors: Mapping[str, str],
        *,
        ambiguous: Iterable[str] = (),
        api_key: str | None = None,
        latency: float = 0.0,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        on_ping: Callable[[ReceivedPing], object] | None = None,
        on_note: Callable[[str], object] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        for key, kind in monitors.items():
            if kind not in KINDS:
                raise ValueError(f"monitor {key!r}: kind must be one of {KINDS}, not {kind!r}")
        if api_key == "":
            raise ValueError("api_key must be None (accept any key) or a non-empty string")
        if not (math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, not {latency!r}")
        for name, share in (("error_rate", error_rate), ("drop_rate", drop_rate)):
            if not 0 <= share <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {share!r}")
        self._monitors = dict(monitors)
        self._keys_by_token = {dev_token(key): key for key in self._monitors}
        self._ambiguous = frozenset(ambiguous)
        self.api_key = api_key
        self.latency = latency
        self.error_rate = error_rate
        self.drop_rate = drop_rate
        self._on_ping = on_ping
        self._on_note = on_note
        self._host = host
        self._port = port
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (faults, not secrets)
        self._lock = threading.Lock()
        self._pings: list[ReceivedPing] = []
        self._starts: dict[tuple[str, str], datetime] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a daemon thread; ``OSError`` if the address is taken."""
        if self._httpd is not None:
            raise RuntimeError("the dev server is already running")
        server_class = _HTTPServer6 if ":" in self._host else _HTTPServer
        httpd = server_class((self._host, self._port), _Handler)
        httpd.dev = self
        # A bell that stop() rings, so the accept loop ends at once rather than on a poll.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=self._accept_until_stopped,
            args=(httpd, self._wake_reader),
            name="steadycron-dev-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def _accept_until_stopped(self, httpd: _HTTPServer, wake_reader: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake_reader, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for ready, _ in selector.select():
                    if ready.fileobj is httpd and not self._stopping.is_set():
                        httpd.handle_request()

    def stop(self) -> None:
        """Stop serving and close open connections; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        if self._wake_writer is not None:
            with contextlib.suppress(OSError):
                self._wake_writer.send(b"x")
        if thread is not None:
            thread.join()
        httpd.server_close()
        for bell in (self._wake_reader, self._wake_writer):
            if bell is not None:
                bell.close()
        self._wake_reader = self._wake_writer = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what users and tests read ---------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with port 0)."""
        if self._httpd is None:
            raise RuntimeError("the dev server is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for both STEADYCRON_API_URL and STEADYCRON_PING_URL."""
        host = self._host
        if host in ("", "0.0.0.0"):  # noqa: S104 (naming the wildcard, not binding it)
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def monitors(self) -> dict[str, str]:
        """A copy of the known keys and their kinds."""
        return dict(self._monitors)

    @property
    def pings(self) -> list[ReceivedPing]:
        """A snapshot of the pings received so far, oldest first."""
        with self._lock:
            return list(self._pings)

    def token_for(self, key: str) -> str:
        """The ping token of a known key (``KeyError`` for an unknown one)."""
        if key not in self._monitors:
            raise KeyError(key)
        return dev_token(key)

    # -- answering -------------------------------------------------------------------

    def _respond(self, method: str, target: str, authorization: str, body: bytes) -> _Answer | None:
        """Answer one request; ``None`` means close the connection without an answer."""
        url = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        path = url.path
        if path == PINGS_PATH:
            return self._list_pings(method, query)
        if path == "/":
            return self._index()
        fault = self._fault()
        if fault == "drop":
            self._note(f"fault: dropped {method} {_redacted(path)} without an answer")
            return None
        if fault == "error":
            self._note(f"fault: answered {method} {_redacted(path)} with 503")
            return _error_answer(503, "unavailable", "fault injected by the dev server")
        if path == RESOLVE_PATH:
            return self._resolve(method, authorization, query)
        if path.startswith("/api/"):
            return _error_answer(404, "not_found", f"no such endpoint: {path}")
        return self._ping(method, path, query, body)

    def _fault(self) -> str | None:
        if self.latency:
            self._stopping.wait(self.latency)
        with self._lock:
            drop_roll, error_roll = self._rng.random(), self._rng.random()
        if drop_roll < self.drop_rate:
            return "drop"
        if error_roll < self.error_rate:
            return "error"
        return None

    def _resolve(self, method: str, authorization: str, query: dict[str, str]) -> _Answer:
        if method != "GET":
            return _error_answer(405, "method_not_allowed", "resolve is a GET request")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            self._note("resolve refused (401): no API key; send Authorization: Bearer <key>")
            return _error_answer(
                401, "unauthorized", "missing API key: send Authorization: Bearer <key>"
            )
        if self.api_key is not None and not hmac.compare_digest(
            credential.encode(), self.api_key.encode()
        ):
            self._note("resolve refused (401): not the API key given with --api-key")
            return _error_answer(401, "unauthorized", "invalid API key")
        key = query.get("key", "")
        if not key:
            return _error_answer(400, "bad_request", "the 'key' query parameter is required")
        if key in self._ambiguous:
            self._note(f"resolve {key} -> 409 ambiguous")
            return _error_answer(409, "ambiguous_key", f"the key {key!r} matches more than one job")
        kind = self._monitors.get(key)
        if kind is None:
            self._note(f"resolve {key} -> 404 unknown key")
            return _error_answer(404, "not_found", f"no job with the key {key!r}")
        self._note(f"resolve {key} -> {kind}")
        return _json_answer(
            200,
            {"key": key, "job_id": dev_job_id(key), "kind": kind, "ping_token": dev_token(key)},
        )

    def _ping(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Answer:
        segments = [unquote(segment) for segment in path.split("/") if segment]
        state = None
        if len(segments) == 1:
            state = "success"
        elif len(segments) == 2:
            state = STATES_BY_SUFFIX.get(segments[1])
        if state is None:
            return _text_answer(404, "not found\n")
        if method not in ("GET", "POST"):
            return _text_answer(405, "use GET or POST\n")
        key = self._keys_by_token.get(segments[0])
        if key is None:
            self._note(f"ping to an unknown token ({_redacted(path)}) -> 404")
            return _text_answer(404, "unknown ping token\n")
        self._record(
            key=key,
            state=state,
            environment=query.get("env") or None,
            run_id=query.get("run_id") or None,
            message=body.decode("utf-8", "replace") if body else None,
        )
        return _text_answer(200, "OK")

    def _record(
        self,
        *,
        key: str,
        state: str,
        environment: str | None,
        run_id: str | None,
        message: str | None,
    ) -> None:
        at = datetime.now(UTC)
        duration = None
        with self._lock:
            if run_id is not None:
                if state == "start":
                    self._starts[key, run_id] = at
                elif (key, run_id) in self._starts:
                    duration = (at - self._starts[key, run_id]).total_seconds()
            ping = ReceivedPing(key, state, environment, run_id, message, at, duration)
            self._pings.append(ping)
        if self._on_ping is not None:
            self._on_ping(ping)

    def _list_pings(self, method: str, query: dict[str, str]) -> _Answer:
        if method != "GET":
            return _error_answer(405, "method_not_allowed", "the ping list is read-only")
        pings = self.pings
        if "key" in query:
            pings = [ping for ping in pings if ping.key == query["key"]]
        return _json_answer(200, {"pings": [ping.to_json() for ping in pings]})

    def _index(self) -> _Answer:
        lines = [f"SteadyCron dev server (steadycron {__version__})", ""]
        lines += [f"{key}  {kind}  /{dev_token(key)}" for key, kind in self._monitors.items()]
        lines += ["", f"GET {PINGS_PATH} lists the pings received.", ""]
        return _text_answer(200, "\n".join(lines))

    def _note(self, text: str) -> None:
        if self._on_note is not None:
            self._on_note(text)


def _redacted(path: str) -> str:
    """A ping path with the token shortened, enough to recognise it in a timeline."""
    head, _, rest = path.lstrip("/").partition("/")
    short = head[:6] + "..." if len(head) > 6 else head
    return "/" + short + ("/" + rest if rest else "")


class _HTTPServer(http.server.ThreadingHTTPServer):
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


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"steadycron-dev-server/{__version__}"
    sys_version = ""
    # Headers and body leave in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    @property
    def _dev(self) -> DevServer:
        return cast(_HTTPServer, self.server).dev

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
            self._send(_text_answer(411, "send a Content-Length\n"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(_text_answer(413 if length > 0 else 400, "bad Content-Length\n"))
            return
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization", "")
        answer = self._dev._respond(self.command, self.path, authorization, body)
        if answer is None:
            self.close_connection = True
            return
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the timeline reports what matters."""


# -- the timeline ---------------------------------------------------------------------

_COLORS = {"start": "36", "success": "32", "fail": "31", "dim": "2"}
MESSAGE_WIDTH = 100


def format_duration(seconds: float) -> str:
    """Format a run's duration for a human: 85ms, 4.2s, 3m05s, 1h02m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_ping(ping: ReceivedPing, *, key_width: int = 0, color: bool = False) -> str:
    """One timeline line: local time, key, state, environment, run, duration, message."""

    def paint(text: str, style: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text

    parts = [
        paint(ping.at.astimezone().strftime("%H:%M:%S.%f")[:-3], "dim"),
        ping.key.ljust(key_width),
        paint(ping.state.ljust(7), ping.state) if ping.state in _COLORS else ping.state,
    ]
    if ping.environment:
        parts.append(f"env={ping.environment}")
    if ping.run_id:
        parts.append(f"run={ping.run_id[:8]}")
    if ping.duration is not None:
        parts.append(f"took {format_duration(ping.duration)}")
    if ping.message:
        first_line = ping.message.strip().splitlines()[0] if ping.message.strip() else ""
        if len(first_line) > MESSAGE_WIDTH:
            first_line = first_line[: MESSAGE_WIDTH - 3] + "..."
        if first_line:
            parts.append(f'"{first_line}"')
    return "  ".join(parts).rstrip()


class Timeline:
    """Prints pings as they arrive: readable lines, or one JSON object per ping."""

    def __init__(
        self,
        stream: IO[str],
        *,
        as_json: bool = False,
        color: bool = False,
        key_width: int = 0,
        notes: IO[str] | None = None,
    ) -> None:
        self._stream = stream
        self._notes = stream if notes is None else notes
        self._as_json = as_json
        self._color = color
        self._key_width = key_width
        self._lock = threading.Lock()

    def ping(self, ping: ReceivedPing) -> None:
        if self._as_json:
            line = json.dumps(ping.to_json())
        else:
            line = format_ping(ping, key_width=self._key_width, color=self._color)
        self._write(self._stream, line)

    def note(self, text: str) -> None:
        time = datetime.now(UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]
        line = f"{time}  {text}"
        if self._color:
            line = f"\x1b[{_COLORS['dim']}m{line}\x1b[0m"
        self._write(self._notes, line)

    def _write(self, stream: IO[str], line: str) -> None:
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed pipe must not cost the job its answer


# -- the command line -----------------------------------------------------------------

DESCRIPTION = """\
Run a local stand-in for SteadyCron: it resolves monitor keys and receives pings on one
loopback address, and prints a timeline of the pings as they arrive. Point the SDK at it
with the export lines it prints, run your job, and watch.
"""

EXAMPLES = """\
examples:
  steadycron dev-server monitors.yaml
  steadycron dev-server monitors/ --monitor nightly-db-backup
  steadycron dev-server --monitor nightly-db-backup --port 0 --json
  steadycron dev-server monitors.yaml --latency 2 --error-rate 0.3 --drop-rate 0.1
  curl -s http://127.0.0.1:8787/api/dev/pings
"""


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {text!r}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifests",
        nargs="*",
        metavar="MANIFEST",
        help="monitor manifest, or a directory of *.yaml/*.yml manifests; its jobs become "
        "the known keys (http and agent jobs resolve with their kind)",
    )
    parser.add_argument(
        "--monitor",
        action="append",
        default=[],
        type=_non_empty,
        metavar="KEY",
        help="also know KEY as a heartbeat monitor (repeatable; wins over a manifest)",
    )
    parser.add_argument(
        "--ambiguous",
        action="append",
        default=[],
        type=_non_empty,
        metavar="KEY",
        help="answer 409 (the key matches several jobs) when KEY is resolved (repeatable)",
    )
    parser.add_argument(
        "--api-key",
        type=_non_empty,
        metavar="KEY",
        help="accept only this API key (default: any non-empty key)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per ping on stdout (other output goes to stderr)",
    )
    faults = parser.add_argument_group("fault injection (resolves and pings only)")
    faults.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long before every answer",
    )
    faults.add_argument(
        "--error-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of answers, 0 to 1, that are 503 instead",
    )
    faults.add_argument(
        "--drop-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of connections, 0 to 1, closed without any answer",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 2 for a bad manifest or an address in use."""
    out, err = sys.stdout, sys.stderr
    monitors: dict[str, str] = {}
    if args.manifests:
        try:
            jobs = load_manifests(args.manifests)
        except ManifestError as exc:
            print(f"steadycron dev-server: error: {exc}", file=err)
            return 2
        monitors.update({key: job.kind for key, job in jobs.items()})
    monitors.update(dict.fromkeys(args.monitor, "heartbeat"))

    color = not args.json and out.isatty() and "NO_COLOR" not in os.environ
    key_width = min(max((len(key) for key in monitors), default=0), 40)
    timeline = Timeline(
        out, as_json=args.json, color=color, key_width=key_width, notes=err if args.json else out
    )
    server = DevServer(
        monitors,
        ambiguous=args.ambiguous,
        api_key=args.api_key,
        latency=args.latency,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        on_ping=timeline.ping,
        on_note=timeline.note,
        host=args.host,
        port=args.port,
    )
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (try another --port, or --port 0 for any free one)" if args.port else ""
        print(
            f"steadycron dev-server: error: cannot listen on {args.host}:{args.port}: "
            f"{reason}{hint}",
            file=err,
        )
        return 2

    banner = err if args.json else out
    previous = _stop_on_sigterm()
    try:
        _print_banner(banner, server, monitors, args)
        thread = server._thread
        while thread is not None and thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    count = len(server.pings)
    print(f"stopped; {count} ping{'' if count == 1 else 's'} received", file=banner, flush=True)
    return 0


def _stop_on_sigterm() -> Any:
    """Make SIGTERM stop the server like Ctrl-C; returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _print_banner(
    stream: IO[str], server: DevServer, monitors: Mapping[str, str], args: argparse.Namespace
) -> None:
    lines = [f"SteadyCron dev server on {server.url}"]
    if monitors:
        lines.append(f"{len(monitors)} monitor{'' if len(monitors) == 1 else 's'}:")
        shown = sorted(monitors.items())
        lines += [f"  {key}  ({kind})" for key, kind in shown[:20]]
        if len(shown) > 20:
            lines.append(f"  ... and {len(shown) - 20} more")
    else:
        lines.append("no monitors yet: every key resolves to 404 (add a MANIFEST or --monitor)")
    if args.ambiguous:
        lines.append(f"answering 409 for: {', '.join(args.ambiguous)}")
    faults = []
    if args.latency:
        faults.append(f"{args.latency:g}s latency")
    if args.error_rate:
        faults.append(f"{args.error_rate:.0%} answered 503")
    if args.drop_rate:
        faults.append(f"{args.drop_rate:.0%} dropped")
    if faults:
        lines.append(f"faults: {', '.join(faults)}")
    lines += ["", "Point the SDK at it (paste into the shell that runs your job):"]
    lines += [f"export STEADYCRON_API_URL={server.url}", f"export STEADYCRON_PING_URL={server.url}"]
    if args.api_key is None:
        lines.append("export STEADYCRON_API_KEY=sc_dev_local   # any non-empty key is accepted")
    lines += ["", "Press Ctrl-C to stop.", ""]
    stream.write("\n".join(lines) + "\n")
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    """Run ``dev-server`` on its own: ``python -m steadycron._devserver [options]``."""
    parser = argparse.ArgumentParser(
        prog="steadycron dev-server",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
