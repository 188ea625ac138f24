"""The default transport: urllib3 connection pools with keep-alive.

urllib3 is imported with this module, which nothing loads until a transport is built.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Iterator

import urllib3
from urllib3 import exceptions as u3

from .._exceptions import ConnectError, ProtocolError, TransportError, TransportTimeoutError
from .._forksafe import reset_after_fork
from ._base import MAX_RESPONSE_BYTES, Request, Response
from ._errors import builtin_errors_mapped
from ._proxy import ProxySettings


@contextlib.contextmanager
def _urllib3_errors_mapped(host: str) -> Iterator[None]:
    try:
        yield
    except TransportError:
        raise
    except (u3.ConnectTimeoutError, u3.ReadTimeoutError) as exc:
        raise TransportTimeoutError(f"no answer from {host} in time") from exc
    except u3.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host} failed") from exc
    except (u3.NewConnectionError, u3.ProxyError, u3.LocationValueError) as exc:
        raise ConnectError(f"could not reach {host} ({type(exc).__name__})") from exc
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
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(maxsize={self._maxsize}, ca_certs={self._ca_certs!r})"

    def _manager(self, url: urllib.parse.SplitResult) -> urllib3.PoolManager:
        proxy = self._proxies.proxy_for(url)
        proxy_url = None if proxy is None else proxy.geturl()
        manager = self._managers.get(proxy_url)
        if manager is None:
            with self._lock:
                manager = self._managers.get(proxy_url)
                if manager is None:
                    manager = (
                        urllib3.PoolManager(
                            maxsize=self._maxsize, retries=False, ca_certs=self._ca_certs
                        )
                        if proxy_url is None
                        else urllib3.ProxyManager(
                            proxy_url, maxsize=self._maxsize, retries=False, ca_certs=self._ca_certs
                        )
                    )
                    self._managers[proxy_url] = manager
        return manager

    def send(self, request: Request, *, timeout: float) -> Response:
        url = urllib.parse.urlsplit(request.url)
        host = url.netloc
        with builtin_errors_mapped(host), _urllib3_errors_mapped(host):
            answer = self._manager(url).urlopen(
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
            answer.release_conn()
            return Response(answer.status, dict(answer.headers), body)

    def close(self) -> None:
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def _after_fork_in_child(self) -> None:
        # The parent still uses these sockets; the child must never write to them.
        self._lock = threading.Lock()
        self._managers = {}
