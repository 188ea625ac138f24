"""The default transport: urllib3 connection pools with keep-alive.

urllib3 is imported with this module, which nothing loads until a transport is built.

A ping on a connection that is already open runs on the caller's thread
(:meth:`Urllib3Transport.send_if_connected`): handing it to a worker thread and back costs
two thread wake-ups, which on a small machine is as long as the loopback exchange
itself. The hard deadline still holds: such a send never looks a name up or connects
(the connection classes below refuse to, and the pinger sends on a worker instead), and
a peer that stalls is interrupted by the watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from urllib3 import connection as u3_connection
from urllib3 import connectionpool as u3_pool
from urllib3 import exceptions as u3
from urllib3.util.ssl_ import create_urllib3_context

from .._exceptions import ConnectError, ProtocolError, TransportError, TransportTimeoutError
from .._forksafe import reset_after_fork
from ._base import MAX_RESPONSE_BYTES, Request, Response
from ._errors import builtin_errors_mapped
from ._proxy import ProxySettings
from ._watchdog import WATCHDOG, Guard

#: The guard of the exchange running on this thread on an open connection, if any.
_on_open_connection = threading.local()


class _WouldConnect(Exception):
    """The exchange needs a new connection, which the caller's thread must not open."""


class _Guarded:
    """Refuses to connect during a send on an open connection, and hands the socket it
    reads to the watchdog."""

    sock: Any

    def connect(self) -> None:
        if getattr(_on_open_connection, "guard", None) is not None:
            raise _WouldConnect
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard: Guard | None = getattr(_on_open_connection, "guard", None)
        if guard is not None and self.sock is not None and not WATCHDOG.watch(guard, self.sock):
            raise TransportTimeoutError("no answer before the ping deadline")
        super().request(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTPConnection(_Guarded, u3_connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, u3_connection.HTTPSConnection):
    def connect(self) -> None:
        context = self.ssl_context
        if context is not None and getattr(_on_open_connection, "guard", None) is None:
            _load_trust_once(context)
        super().connect()


class _HTTPPool(u3_pool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _HTTPSPool(u3_pool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


#: Shared contexts whose trust store is still to be read, and how to read it.
_trust_to_load: weakref.WeakKeyDictionary[ssl.SSLContext, Callable[[], None]] = (
    weakref.WeakKeyDictionary()
)
_trust_lock = threading.Lock()


def _load_trust_once(context: ssl.SSLContext) -> None:
    """Read the trust store into a transport's shared context on its first TLS connect.

    Left to itself urllib3 builds a context and parses the store for every connection
    (tens of milliseconds for a system bundle); reading it lazily spares clients that
    never use TLS.
    """
    if context in _trust_to_load:
        with _trust_lock:
            load = _trust_to_load.pop(context, None)
            if load is not None:
                load()


#: Set while one of our exchanges runs on this thread.
_sending = threading.local()
#: A URL's path, or the path of a logged request line ("POST /token/start HTTP/1.1").
_URL_PATH = re.compile(r"(https?://[^/\s'\"]+|\"[A-Z]+ )/[^\s'\")]*")


class _QuietDuringSends(logging.Filter):
    """urllib3 logs some trouble (a malformed header, a full pool) at WARNING, with the
    full URL and so the ping token. Records made during our exchanges drop to DEBUG with
    URL paths redacted: the pinger's one WARNING already tells of a lost ping. Records
    from the application's own use of urllib3 pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_sending, "active", False):
            record.msg = _URL_PATH.sub(r"\1/<redacted>", record.getMessage())
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_QUIET = _QuietDuringSends()
for _logger in ("urllib3.connectionpool", "urllib3.connection", "urllib3.response"):
    logging.getLogger(_logger).addFilter(_QUIET)


@contextlib.contextmanager
def _urllib3_errors_mapped(host: str) -> Iterator[None]:
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


class Urllib3Transport:
    """Pooled keep-alive connections: one TCP (and TLS) handshake per host, not per ping.

    urllib3's own retries and redirects are off; the pinger owns retrying. TLS is
    verified against the system store, ``SSL_CERT_FILE`` or *ca_certs*; the proxy
    environment variables are honoured. Pools are dropped in a forked child.

    Args:
        maxsize: connections kept per host (more may open under load; extras are closed).
        ca_certs: path of a PEM bundle to trust instead of the system store.
    """

    def __init__(self, *, maxsize: int = 10, ca_certs: str | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a whole number >= 1, not {maxsize!r}")
        self._maxsize = maxsize
        self._ca_certs = ca_certs
        self._proxies = ProxySettings()
        self._lock = threading.Lock()
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._ssl_context: ssl.SSLContext | None = None
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(maxsize={self._maxsize}, ca_certs={self._ca_certs!r})"

    def _tls_context(self) -> ssl.SSLContext:
        """One context for every connection; its trust store is read on the first TLS
        connect (the system store and ``SSL_CERT_FILE``, or *ca_certs*)."""
        if self._ssl_context is None:
            context = create_urllib3_context()
            ca_certs = self._ca_certs

            def load_trust() -> None:
                if ca_certs:
                    context.load_verify_locations(cafile=ca_certs)
                else:
                    context.load_default_certs()

            _trust_to_load[context] = load_trust
            self._ssl_context = context
        return self._ssl_context

    def _manager(self, proxy_url: str | None) -> urllib3.PoolManager:
        manager = self._managers.get(proxy_url)
        if manager is None:
            with self._lock:
                manager = self._managers.get(proxy_url)
                if manager is None:
                    options: dict[str, Any] = {
                        "maxsize": self._maxsize,
                        "retries": False,
                        "ssl_context": self._tls_context(),
                    }
                    manager = (
                        urllib3.PoolManager(**options)
                        if proxy_url is None
                        else urllib3.ProxyManager(proxy_url, **options)
                    )
                    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
                    self._managers[proxy_url] = manager
        return manager

    def _proxy_url(self, url: urllib.parse.SplitResult) -> str | None:
        proxy = self._proxies.proxy_for(url)
        return None if proxy is None else proxy.geturl()

    def send(self, request: Request, *, timeout: float) -> Response:
        url = urllib.parse.urlsplit(request.url)
        return self._send(request, url, self._manager(self._proxy_url(url)), timeout, None)

    def send_if_connected(self, request: Request, *, timeout: float) -> Response | None:
        """Like :meth:`send`, but on the caller's thread and only over a connection that is
        already open; None (nothing sent) when the exchange would have to open one.

        Safe to call where a hard deadline is needed: a name lookup or connect, which
        nothing can interrupt, never happens here, and a stalled answer is interrupted
        when *timeout* runs out.
        """
        url = urllib.parse.urlsplit(request.url)
        if self._proxy_url(url) is not None:
            return None
        manager = self._managers.get(None)
        if manager is None:
            return None
        guard = WATCHDOG.guard(time.monotonic() + timeout)
        _on_open_connection.guard = guard
        try:
            return self._send(request, url, manager, timeout, guard)
        except _WouldConnect:
            return None
        except TransportError:
            if guard.fired:
                raise TransportTimeoutError("no answer before the ping deadline") from None
            raise
        finally:
            _on_open_connection.guard = None
            WATCHDOG.release(guard)

    def _send(
        self,
        request: Request,
        url: urllib.parse.SplitResult,
        manager: urllib3.PoolManager,
        timeout: float,
        guard: Guard | None,
    ) -> Response:
        host = url.netloc
        _sending.active = True
        try:
            return self._exchange(request, manager, host, timeout, guard)
        finally:
            _sending.active = False

    def _exchange(
        self,
        request: Request,
        manager: urllib3.PoolManager,
        host: str,
        timeout: float,
        guard: Guard | None,
    ) -> Response:
        with builtin_errors_mapped(host), _urllib3_errors_mapped(host):
            answer = manager.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=False,
                redirect=False,
                preload_content=False,
            )
            try:
                body = answer.read(MAX_RESPONSE_BYTES + 1)
            except BaseException:
                answer.close()
                raise
            if len(body) > MAX_RESPONSE_BYTES:
                # Unread bytes remain on the socket: it cannot carry another request.
                answer.close()
                body = body[:MAX_RESPONSE_BYTES]
            if guard is not None and not WATCHDOG.release(guard):
                # Its socket was shut down as the deadline passed: never pool it again.
                answer.close()
                raise TransportTimeoutError("no answer before the ping deadline")
            answer.release_conn()
            return Response(answer.status, dict(answer.headers), body)

    def close(self) -> None:
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            # urllib3 2's clear() only forgets its pools (their sockets close when they are
            # collected, which a reference cycle can put off indefinitely): close them now.
            for key in manager.pools.keys():  # noqa: SIM118 -- the container is not iterable
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
            manager.clear()

    def _after_fork_in_child(self) -> None:
        # The parent still uses these sockets; the child must never write to them.
        self._lock = threading.Lock()
        self._managers = {}
        self._ssl_context = None
