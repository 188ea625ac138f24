"""Proxies from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, read once per transport.

Credentials in a proxy URL (``http://user:secret@proxy:3128``) are taken out of it and
sent to the proxy as ``Proxy-Authorization``; they never appear in a URL handed on, a
``repr`` or a log record.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request

# Reads only the environment (``urllib.request.proxy_bypass`` may ask the OS instead).
_bypass_by_environment = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]

PROXY_AUTHORIZATION = "Proxy-Authorization"


class Proxy:
    """A proxy to go through: where it is, and the authorization its credentials make."""

    __slots__ = ("authorization", "host", "port", "url")

    def __init__(self, scheme: str, host: str, port: int, authorization: str | None) -> None:
        self.host = host
        self.port = port
        #: Where the proxy is, without the credentials.
        self.url = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
        self.authorization = authorization

    def headers(self) -> dict[str, str]:
        """The headers the proxy itself is to receive."""
        if self.authorization is None:
            return {}
        return {PROXY_AUTHORIZATION: self.authorization}

    def __repr__(self) -> str:
        return f"Proxy({self.url!r}, credentials={'yes' if self.authorization else 'no'})"


def _parse(value: str) -> Proxy | None:
    if "://" not in value:
        value = f"http://{value}"
    try:
        url = urllib.parse.urlsplit(value)
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # a port that is no number: no usable proxy
        return None
    if not url.hostname:
        return None
    authorization = None
    if url.username is not None:
        user = urllib.parse.unquote(url.username)
        password = urllib.parse.unquote(url.password or "")
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {credentials}"
    return Proxy(url.scheme, url.hostname, port, authorization)


class ProxySettings:
    """The proxy environment as it was when the transport was built."""

    def __init__(self) -> None:
        self._environment = urllib.request.getproxies_environment()
        self._proxies = {
            scheme: _parse(value) for scheme, value in self._environment.items() if value
        }
        self._decided: dict[tuple[str, str], Proxy | None] = {}

    def proxy_for(self, url: urllib.parse.SplitResult) -> Proxy | None:
        """The proxy to use for *url*, or None to connect directly."""
        proxy = self._proxies.get(url.scheme)
        if proxy is None or not url.hostname:
            return None
        key = (url.scheme, url.hostname)
        if key not in self._decided:
            bypass = _bypass_by_environment(url.hostname, self._environment)
            self._decided[key] = None if bypass else proxy
        return self._decided[key]
