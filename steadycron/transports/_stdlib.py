"""A transport on ``http.client`` alone: a new connection per request, no pooling."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse

from ._base import MAX_RESPONSE_BYTES, Request, Response
from ._errors import builtin_errors_mapped
from ._proxy import ProxySettings


class StdlibTransport:
    """Standard library only. Verifies TLS against the system store, ``SSL_CERT_FILE``
    or *ca_certs*; honours the proxy environment variables; never follows redirects.

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
            self._ssl_context = ssl.create_default_context(cafile=self._ca_certs)
        return self._ssl_context

    def _connect(
        self, url: urllib.parse.SplitResult, timeout: float
    ) -> tuple[http.client.HTTPConnection, str]:
        """A connection for *url* and the request target to send on it."""
        host, port = url.hostname or "", url.port
        target = url.path or "/"
        if url.query:
            target = f"{target}?{url.query}"
        proxy = self._proxies.proxy_for(url)
        if proxy is None:
            if url.scheme == "https":
                return http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=self._context()
                ), target
            return http.client.HTTPConnection(host, port, timeout=timeout), target
        if url.scheme == "https":
            tunnel = http.client.HTTPSConnection(
                proxy.hostname or "", proxy.port, timeout=timeout, context=self._context()
            )
            tunnel.set_tunnel(host, port)
            return tunnel, target
        return http.client.HTTPConnection(
            proxy.hostname or "", proxy.port, timeout=timeout
        ), url.geturl()

    def send(self, request: Request, *, timeout: float) -> Response:
        url = urllib.parse.urlsplit(request.url)
        with builtin_errors_mapped(url.netloc):
            connection, target = self._connect(url, timeout)
            try:
                connection.request(
                    request.method, target, body=request.body, headers=dict(request.headers)
                )
                answer = connection.getresponse()
                body = answer.read(MAX_RESPONSE_BYTES)
                return Response(answer.status, dict(answer.getheaders()), body)
            finally:
                connection.close()

    def close(self) -> None:
        """Nothing is pooled, so nothing to release."""
