"""``steadycron dev-server``: a local stand-in for SteadyCron, for trying jobs offline.

It answers the resolve API and the ping host on one loopback address, so pointing both
``STEADYCRON_API_URL`` and ``STEADYCRON_PING_URL`` at it lets a job run end to end while
a readable timeline shows every ping. Keys come from monitor manifests or ``--monitor``;
faults (latency, 5xx answers, dropped connections) can be injected to see how a job
behaves when monitoring misbehaves. ``DevServer`` is the same server as a class, for
tests and demos. ``import steadycron`` never imports this module.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import random
import selectors
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from steadycron._protocol import (
    REPORT_CONTENT_TYPE,
    RESOLVE_PATH,
    read_ping,
    read_report,
    resolution_body,
)
from steadycron._report import Report, check_report, report_of
from steadycron._version import __version__

from ..manifest import KINDS
from .http import Answer, Handler, HTTPServer, HTTPServer6, error_answer, json_answer, text_answer
from .records import ReceivedPing, dev_job_id, dev_token

if TYPE_CHECKING:
    from typing_extensions import Self

PINGS_PATH = "/api/dev/pings"

# Python 3.10 has no datetime.UTC; the alias keeps one spelling throughout.
UTC = timezone.utc


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
        #: Starts whose run has no outcome yet: (key, run id or None) -> when.
        self._starts: dict[tuple[str, str | None], datetime] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a daemon thread; ``OSError`` if the address is taken."""
        if self._httpd is not None:
            raise RuntimeError("the dev server is already running")
        server_class = HTTPServer6 if ":" in self._host else HTTPServer
        httpd = server_class((self._host, self._port), Handler)
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

    def _accept_until_stopped(self, httpd: HTTPServer, wake_reader: socket.socket) -> None:
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

    def _respond(
        self, method: str, target: str, authorization: str, body: bytes, content_type: str = ""
    ) -> Answer | None:
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
            return error_answer(503, "unavailable", "fault injected by the dev server")
        if path == RESOLVE_PATH:
            return self._resolve(method, authorization, query)
        if path.startswith("/api/"):
            return error_answer(404, "not_found", f"no such endpoint: {path}")
        return self._ping(method, path, query, body, content_type)

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

    def _resolve(self, method: str, authorization: str, query: dict[str, str]) -> Answer:
        if method != "GET":
            return error_answer(405, "method_not_allowed", "resolve is a GET request")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            self._note("resolve refused (401): no API key; send Authorization: Bearer <key>")
            return error_answer(
                401, "unauthorized", "missing API key: send Authorization: Bearer <key>"
            )
        if self.api_key is not None and not hmac.compare_digest(
            credential.encode(), self.api_key.encode()
        ):
            self._note("resolve refused (401): not the API key given with --api-key")
            return error_answer(401, "unauthorized", "invalid API key")
        key = query.get("key", "")
        if not key:
            return error_answer(400, "bad_request", "the 'key' query parameter is required")
        if key in self._ambiguous:
            self._note(f"resolve {key} -> 409 ambiguous")
            return error_answer(409, "ambiguous_key", f"the key {key!r} matches more than one job")
        kind = self._monitors.get(key)
        if kind is None:
            self._note(f"resolve {key} -> 404 unknown key")
            return error_answer(404, "not_found", f"no job with the key {key!r}")
        self._note(f"resolve {key} -> {kind}")
        body = resolution_body(key, dev_token(key), kind=kind, job_id=dev_job_id(key))
        return Answer(200, body, "application/json")

    def _ping(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> Answer:
        target = read_ping(path, query)
        if target is None:
            return text_answer(404, "not found\n")
        if method not in ("GET", "POST"):
            return text_answer(405, "use GET or POST\n")
        key = self._keys_by_token.get(target.token)
        if key is None:
            self._note(f"ping to an unknown token ({_redacted(path)}) -> 404")
            return text_answer(404, "unknown ping token\n")
        agent = self._monitors[key] == "agent"
        message, report = None, None
        if agent and target.state != "start" and _is_json(content_type):
            try:
                report = report_of(check_report(read_report(body)))
            except (TypeError, ValueError) as exc:
                self._note(f"{key} {target.state}: run report refused (400): {exc}")
                return error_answer(400, "invalid_report", f"invalid run report: {exc}")
        elif body:
            message = body.decode("utf-8", "replace")
        ping = self._record(
            key=key,
            state=target.state,
            environment=target.environment,
            run_id=target.run_id,
            message=message,
            report=report,
            paired=agent,
        )
        if ping is None:
            run = f"run {target.run_id[:8]}" if target.run_id else "a ping without run_id"
            self._note(
                f"{key} success refused (422): {run} has no open start "
                "(an agent monitor needs the start ping of a run before its success)"
            )
            return error_answer(422, "run_not_open", "no open start for this run")
        return text_answer(200, "OK")

    def _record(
        self,
        *,
        key: str,
        state: str,
        environment: str | None,
        run_id: str | None,
        message: str | None,
        report: Report | None,
        paired: bool,
    ) -> ReceivedPing | None:
        """Keep one ping; None (nothing kept) for a success that *paired* pings refuse
        because its run has no open start. A fail is never refused."""
        at = datetime.now(UTC)
        duration = None
        with self._lock:
            if state == "start":
                self._starts[key, run_id] = at
            else:
                started = self._starts.pop((key, run_id), None)
                if started is None and paired and state == "success":
                    return None
                if started is not None and run_id is not None:
                    duration = (at - started).total_seconds()
            ping = ReceivedPing(key, state, environment, run_id, message, at, duration, report)
            self._pings.append(ping)
        if self._on_ping is not None:
            self._on_ping(ping)
        return ping

    def _list_pings(self, method: str, query: dict[str, str]) -> Answer:
        if method != "GET":
            return error_answer(405, "method_not_allowed", "the ping list is read-only")
        pings = self.pings
        if "key" in query:
            pings = [ping for ping in pings if ping.key == query["key"]]
        return json_answer(200, {"pings": [ping.to_json() for ping in pings]})

    def _index(self) -> Answer:
        lines = [f"SteadyCron dev server (steadycron {__version__})", ""]
        lines += [f"{key}  {kind}  /{dev_token(key)}" for key, kind in self._monitors.items()]
        lines += ["", f"GET {PINGS_PATH} lists the pings received.", ""]
        return text_answer(200, "\n".join(lines))

    def _note(self, text: str) -> None:
        if self._on_note is not None:
            self._on_note(text)


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == REPORT_CONTENT_TYPE


def _redacted(path: str) -> str:
    """A ping path with the token shortened, enough to recognise it in a timeline."""
    head, _, rest = path.lstrip("/").partition("/")
    short = head[:6] + "..." if len(head) > 6 else head
    return "/" + short + ("/" + rest if rest else "")
