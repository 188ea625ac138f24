"""A transport on ``http.client`` alone: a new connection per request, no pooling."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from typing import Any

from .._deadline import Deadline
from .._exceptions import TransportError, TransportTimeoutError
from ._base import MAX_RESPONSE_BYTES, Request, Response
from ._errors import builtin_errors_mapped
from ._proxy import PROXY_AUTHORIZATION, ProxySettings
from ._trust import load_trust
from ._watchdog import WATCHDOG, Guard


class _Bounded:
    """A connection held to its exchange's deadline: no connect is begun and no byte
    written once it has passed, and its socket is cut off by the watchdog then."""

    sock: Any
    _guard: Guard

    def connect(self) -> None:
        if self._guard.deadline.expired:
            raise TransportTimeoutError("the ping deadline passed before connecting")
        super().connect()  # type: ignore[misc]

    def _open_socket(self, *args: Any, **kwargs: Any) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)  # the name lookup and TCP connect
        if not WATCHDOG.watch(self._guard, sock):
            sock.close()
            raise TransportTimeoutError("connected only after the ping deadline; nothing sent")
        return sock

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        guard = self._guard
        if not (WATCHDOG.watch(guard, self.sock) and guard.deadline.may_write()):
            raise TransportTimeoutError("the ping deadline passed; the request was not sent")
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_Bounded, http.client.HTTPConnection):
    def __init__(self, guard: Guard, host: str, port: int | None, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._guard = guard
        self._create_connection = self._open_socket


class _HTTPSConnection(_Bounded, http.client.HTTPSConnection):
    def __init__(
        self, guard: Guard, host: str, port: int | None, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._guard = guard
        self._create_connection = self._open_socket


class StdlibTransport:
    """Standard library only. Verifies TLS against the system store, ``SSL_CERT_FILE``
    or *ca_certs*; honours the proxy environment variables (credentials in a proxy URL
    go to the proxy as ``Proxy-Authorization``); never follows redirects.

    Args:
        ca_certs: path of a PEM bundle to trust instead of the system store.
    """

    def __init__(self, *, ca_certs: str | None = None) -> None:
        self._ca_certs = ca_certs
        self._proxies = ProxySettings()
        self._ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ca_certs={self._ca_certs!r})"

    def _context(self) -> ssl.SSLContext:
        # Built once: loading the trust store costs more than the request itself.
        if self._ssl_context is None:
            self._ssl_context = load_trust(self._build_context)
        return self._ssl_context

    def _build_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:  # built by another thread meanwhile
            return self._ssl_context
        return ssl.create_default_context(cafile=self._ca_certs)

    def _connect(
        self, request: Request, url: urllib.parse.SplitResult, guard: Guard
    ) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
        """A connection for *url*, the request target to send on it, and the headers."""
        host, port = url.hostname or "", url.port
        timeout = max(guard.deadline.remaining(), 0.001)
        target = url.path or "/"
        if url.query:
            target = f"{target}?{url.query}"
        headers = dict(request.headers)
        proxy = self._proxies.proxy_for(url)
        if proxy is None:
            if url.scheme == "https":
                connection: http.client.HTTPConnection = _HTTPSConnection(
                    guard, host, port, timeout, self._context()
                )
                return connection, target, headers
            return _HTTPConnection(guard, host, port, timeout), target, headers
        if url.scheme == "https":
            tunnel = _HTTPSConnection(guard, proxy.host, proxy.port, timeout, self._context())
            tunnel.set_tunnel(host, port, headers=proxy.headers())
            return tunnel, target, headers
        if proxy.authorization is not None:
            headers[PROXY_AUTHORIZATION] = proxy.authorization
        return _HTTPConnection(guard, proxy.host, proxy.port, timeout), url.geturl(), headers

    def send(self, request: Request, *, timeout: float) -> Response:
        return self.send_within(request, Deadline.after(timeout))

    def send_within(self, request: Request, deadline: Deadline) -> Response:
        """Like :meth:`send`, held to *deadline*: nothing is sent once it has passed."""
        url = urllib.parse.urlsplit(request.url)
        guard = WATCHDOG.guard(deadline)
        try:
            with builtin_errors_mapped(url.netloc):
                connection, target, headers = self._connect(request, url, guard)
                try:
                    connection.request(request.method, target, body=request.body, headers=headers)
                    answer = connection.getresponse()
                    try:
                        body = answer.read(MAX_RESPONSE_BYTES)
                    finally:
                        answer.close()  # its socket stays open as long as the answer is
                    if not WATCHDOG.release(guard):
                        # Cut off at the deadline: what was read may be a truncated answer
                        # that http.client took for a whole one.
                        raise TransportTimeoutError("no answer before the ping deadline")
                    return Response(answer.status, dict(answer.getheaders()), body)
                finally:
                    connection.close()
        except TransportError:
            if guard.fired:
                raise TransportTimeoutError("no answer before the ping deadline") from None
            raise
        finally:
            WATCHDOG.release(guard)

    def send_if_connected(self, request: Request, deadline: Deadline) -> Response | None:
        """Nothing is ever left open to send on: every exchange needs a new connection."""
        return None

    def close(self) -> None:
        """Nothing is pooled, so nothing to release."""
