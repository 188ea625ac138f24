"""The default transport: urllib3 connection pools with keep-alive.

urllib3 is imported with this module, which nothing loads until a transport is built.

A ping on a connection that is already open runs on the caller's thread
(:meth:`Urllib3Transport.send_if_connected`): handing it to a worker thread and back costs
two thread wake-ups, which on a small machine is as long as the loopback exchange
itself. The hard deadline still holds: such a send never looks a name up or connects
(the connection classes refuse to, and the pinger sends on a worker instead), and a peer
that stalls is cut off by the watchdog.
"""

from __future__ import annotations

import ssl
import threading
import urllib.parse
from typing import Any

import urllib3
from urllib3.util.ssl_ import create_urllib3_context

from .._deadline import Deadline
from .._exceptions import TransportError, TransportTimeoutError
from .._forksafe import reset_after_fork
from ._base import MAX_RESPONSE_BYTES, Request, Response
from ._errors import builtin_errors_mapped
from ._proxy import Proxy, ProxySettings
from ._urllib3_pool import (
    Bounds,
    HTTPPool,
    HTTPSPool,
    WouldConnectError,
    defer_trust,
    enter,
    quiet_urllib3_logs,
    urllib3_errors_mapped,
)
from ._watchdog import WATCHDOG

#: urllib3 takes a timeout of 0 to mean "do not wait at all"; an exchange that has been
#: let start gets at least this.
_LEAST_TIMEOUT = 0.001


class Urllib3Transport:
    """Pooled keep-alive connections: one TCP (and TLS) handshake per host, not per ping.

    urllib3's own retries and redirects are off; the pinger owns retrying. TLS is
    verified against the system store, ``SSL_CERT_FILE`` or *ca_certs*; the proxy
    environment variables are honoured, credentials in a proxy URL sent to the proxy as
    ``Proxy-Authorization``. Pools are dropped in a forked child.

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
        self._managers: dict[Proxy | None, urllib3.PoolManager] = {}
        self._ssl_context: ssl.SSLContext | None = None
        quiet_urllib3_logs()
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

            defer_trust(context, load_trust)
            self._ssl_context = context
        return self._ssl_context

    def _manager(self, proxy: Proxy | None) -> urllib3.PoolManager:
        manager = self._managers.get(proxy)
        if manager is None:
            with self._lock:
                manager = self._managers.get(proxy)
                if manager is None:
                    options: dict[str, Any] = {
                        "maxsize": self._maxsize,
                        "retries": False,
                        "ssl_context": self._tls_context(),
                    }
                    manager = (
                        urllib3.PoolManager(**options)
                        if proxy is None
                        else urllib3.ProxyManager(
                            proxy.url, proxy_headers=proxy.headers(), **options
                        )
                    )
                    manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
                    self._managers[proxy] = manager
        return manager

    def send(self, request: Request, *, timeout: float) -> Response:
        return self.send_within(request, Deadline.after(timeout))

    def send_within(self, request: Request, deadline: Deadline) -> Response:
        """Like :meth:`send`, held to *deadline*: nothing is sent once it has passed."""
        url = urllib.parse.urlsplit(request.url)
        manager = self._manager(self._proxies.proxy_for(url))
        return self._bounded(request, url, manager, deadline, may_connect=True)

    def send_if_connected(self, request: Request, deadline: Deadline) -> Response | None:
        """Like :meth:`send_within`, but only over a connection that is already open, so
        that it may run on the caller's thread; None (nothing sent) when the exchange
        would have to open one. A name lookup or connect, which nothing can interrupt,
        never happens here, and a stalled answer is cut off at the deadline.
        """
        url = urllib.parse.urlsplit(request.url)
        if self._proxies.proxy_for(url) is not None:
            return None
        manager = self._managers.get(None)
        if manager is None:
            return None
        try:
            return self._bounded(request, url, manager, deadline, may_connect=False)
        except WouldConnectError:
            return None

    def _bounded(
        self,
        request: Request,
        url: urllib.parse.SplitResult,
        manager: urllib3.PoolManager,
        deadline: Deadline,
        *,
        may_connect: bool,
    ) -> Response:
        guard = WATCHDOG.guard(deadline)
        bounds = Bounds(guard, may_connect)
        enter(bounds)
        try:
            return self._exchange(request, manager, url.netloc, deadline, bounds)
        except TransportError:
            if guard.fired:
                raise TransportTimeoutError("no answer before the ping deadline") from None
            raise
        finally:
            enter(None)
            WATCHDOG.release(guard)
            if bounds.connection is not None:
                # Interrupted mid-exchange (by a signal handler's exception, say), perhaps
                # where urllib3 neither closed it nor handed it back: it must never carry
                # another request, and its socket must not wait for the collector.
                bounds.connection.close()

    def _exchange(
        self,
        request: Request,
        manager: urllib3.PoolManager,
        host: str,
        deadline: Deadline,
        bounds: Bounds,
    ) -> Response:
        timeout = max(deadline.remaining(), _LEAST_TIMEOUT)
        with builtin_errors_mapped(host), urllib3_errors_mapped(host):
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
            if not WATCHDOG.release(bounds.guard):
                # Its socket was shut down as the deadline passed: never pool it again.
                answer.close()
                raise TransportTimeoutError("no answer before the ping deadline")
            response = Response(answer.status, dict(answer.headers), body)
            bounds.connection = None  # whole again: back to the pool, not to be closed
            answer.release_conn()
            return response

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
        # The parent still uses these sockets; the child must never write to them. The
        # TLS context holds no connection and is kept (a fork never lands mid-load).
        self._lock = threading.Lock()
        self._managers = {}
