"""urllib3's connections and pools, held to the ping's deadline.

While one of our exchanges runs on a thread, the connection classes below read its
:class:`Bounds` from a thread-local: they begin no connect and write no byte once the
deadline has passed (a name lookup that returns late is dropped, never followed by the
request), they hand every socket to the watchdog so a stalled or dripping peer is cut off
at the deadline, and during a send over an already open connection (on the caller's own
thread, where nothing that cannot be interrupted may run) they refuse to connect at all.

Also here: reading a transport's trust store once and lazily, and keeping urllib3's own
log records of our exchanges quiet and free of ping tokens.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from urllib3 import connection as u3_connection
from urllib3 import connectionpool as u3_pool
from urllib3 import exceptions as u3

from .._exceptions import ConnectError, ProtocolError, TransportError, TransportTimeoutError
from ._trust import load_trust
from ._watchdog import WATCHDOG, Guard


class Bounds:
    """What the exchange running on this thread allows: its guard (deadline and watched
    socket), and whether it may open a connection; and the connection it wrote on."""

    __slots__ = ("connection", "guard", "may_connect")

    def __init__(self, guard: Guard, may_connect: bool) -> None:
        self.guard = guard
        self.may_connect = may_connect
        #: The connection the exchange took from the pool (or wrote on), until it is whole
        #: again and handed back: closed if the exchange is interrupted before that.
        self.connection: u3_connection.HTTPConnection | None = None


_exchange = threading.local()


def current() -> Bounds | None:
    """The bounds of the exchange running on this thread, if one is."""
    return getattr(_exchange, "bounds", None)


def enter(bounds: Bounds | None) -> None:
    """Start (or, with None, end) an exchange on this thread."""
    _exchange.bounds = bounds


class WouldConnectError(Exception):
    """The exchange needs a new connection, which the caller's thread must not open."""


class _Bounded:
    """A connection that keeps to the bounds of the exchange running on its thread."""

    sock: Any

    def connect(self) -> None:
        bounds = current()
        if bounds is not None:
            if not bounds.may_connect:
                raise WouldConnectError
            if bounds.guard.deadline.expired:
                raise TransportTimeoutError("the ping deadline passed before connecting")
            self._before_connect()
        super().connect()  # type: ignore[misc]

    def _before_connect(self) -> None:
        """Work that may block and so must not run during a send over an open connection."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]  # lookup, TCP connect
        bounds = current()
        if bounds is not None and not WATCHDOG.watch(bounds.guard, sock):
            sock.close()
            raise TransportTimeoutError("connected only after the ping deadline; nothing sent")
        return sock

    def send(self, data: Any) -> None:
        bounds = current()
        if bounds is not None:
            if self.sock is None:
                self.connect()
            guard = bounds.guard
            if not (WATCHDOG.watch(guard, self.sock) and guard.deadline.may_write()):
                raise TransportTimeoutError("the ping deadline passed; the request was not sent")
            bounds.connection = self  # type: ignore[assignment]
        super().send(data)  # type: ignore[misc]


class _BoundedHTTPConnection(_Bounded, u3_connection.HTTPConnection):
    pass


class _BoundedHTTPSConnection(_Bounded, u3_connection.HTTPSConnection):
    def _before_connect(self) -> None:
        if self.ssl_context is not None:
            _load_trust_once(self.ssl_context)


class _IdleConnections(queue.LifoQueue[Any]):
    """A pool's idle connections, safe to take and give back on the caller's thread.

    ``queue.LifoQueue`` guards itself with a ``threading.Condition``, whose Python-level
    ``__enter__`` a signal handler's exception (a ``SIGALRM`` job timeout on the main
    thread) can interrupt with its lock taken: every later ping through that pool would
    then wait forever. Here a plain lock is only ever taken in a ``with`` statement, which
    no exception can leave held. urllib3's pools never wait on it (``block=False``), so
    nothing here waits either.
    """

    def __init__(self, maxsize: int) -> None:  # no super().__init__(): no Condition
        self.maxsize = maxsize
        self.queue: list[Any] = []
        self._lock = threading.Lock()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        bounds = current()
        with self._lock:
            if not self.queue:
                raise queue.Empty
            # No call between taking a connection and noting that this exchange holds it:
            # a signal handler's exception lands only after calls, and the exchange closes
            # what it holds when one does, wherever in urllib3 it lands.
            connection = self.queue[-1]
            del self.queue[-1]
            if bounds is not None and connection is not None:
                bounds.connection = connection
            return connection

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            if 0 < self.maxsize <= len(self.queue):
                raise queue.Full
            self.queue.append(item)

    def qsize(self) -> int:
        return len(self.queue)

    def empty(self) -> bool:
        return not self.queue


class _Pool:
    """A pool that is safe on the caller's thread (:class:`_IdleConnections`), and that
    makes no new connection object during a send over an open connection (urllib3 would
    log "Starting new HTTP connection" for one it then never uses)."""

    QueueCls = _IdleConnections

    def _new_conn(self) -> Any:
        bounds = current()
        if bounds is not None and not bounds.may_connect:
            raise WouldConnectError
        return super()._new_conn()  # type: ignore[misc]


class HTTPPool(_Pool, u3_pool.HTTPConnectionPool):
    ConnectionCls = _BoundedHTTPConnection


class HTTPSPool(_Pool, u3_pool.HTTPSConnectionPool):
    ConnectionCls = _BoundedHTTPSConnection


#: Shared contexts whose trust store is still to be read, and how to read it.
_trust_to_load: weakref.WeakKeyDictionary[ssl.SSLContext, Callable[[], None]] = (
    weakref.WeakKeyDictionary()
)


def defer_trust(context: ssl.SSLContext, load: Callable[[], None]) -> None:
    """Have *load* read the trust store into *context* just before its first TLS connect."""
    _trust_to_load[context] = load


def _load_trust_once(context: ssl.SSLContext) -> None:
    """Read the trust store into a transport's shared context on its first TLS connect.

    Left to itself urllib3 builds a context and parses the store for every connection
    (tens of milliseconds for a system bundle); reading it lazily spares clients that
    never use TLS.
    """
    if context in _trust_to_load:

        def load_if_still_needed() -> None:
            # Forgotten only once read: until then other threads' first connects wait here.
            load = _trust_to_load.get(context)
            if load is not None:
                load()
                _trust_to_load.pop(context, None)

        load_trust(load_if_still_needed)


#: A URL's path, or the path of a logged request line ("POST /token/start HTTP/1.1").
_URL_PATH = re.compile(r"(https?://[^/\s'\"]+|\"[A-Z]+ )/[^\s'\")]*")


class _QuietDuringSends(logging.Filter):
    """urllib3 logs some trouble (a malformed header, a full pool) at WARNING, with the
    full URL and so the ping token. Records made during our exchanges drop to DEBUG with
    URL paths redacted: the pinger's one WARNING already tells of a lost ping. Records
    from the application's own use of urllib3 pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if current() is not None:
            record.msg = _URL_PATH.sub(r"\1/<redacted>", record.getMessage())
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_QUIET = _QuietDuringSends()


def quiet_urllib3_logs() -> None:
    """Install the filter on urllib3's loggers (once; done when a transport is built)."""
    for name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.response"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


@contextlib.contextmanager
def urllib3_errors_mapped(host: str) -> Iterator[None]:
    """Turn urllib3's exceptions into the TransportError tree, naming the host only."""
    try:
        yield
    except TransportError:
        raise
    # Before the timeouts: urllib3 2 derives NewConnectionError (refused) from ConnectTimeoutError.
    except (u3.NewConnectionError, u3.ProxyError, u3.LocationValueError) as exc:
        raise ConnectError(f"could not reach {host} ({type(exc).__name__})") from exc
    except (u3.ConnectTimeoutError, u3.ReadTimeoutError) as exc:
        raise TransportTimeoutError(f"no answer from {host} in time") from exc
    except u3.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host} failed") from exc
    except u3.HTTPError as exc:
        raise ProtocolError(f"exchange with {host} failed ({type(exc).__name__})") from exc
