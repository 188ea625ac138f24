"""Proxies from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, read once per transport."""

from __future__ import annotations

import urllib.parse
import urllib.request

# Reads only the environment (``urllib.request.proxy_bypass`` may ask the OS instead).
_bypass_by_environment = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


class ProxySettings:
    """The proxy environment as it was when the transport was built."""

    def __init__(self) -> None:
        self._proxies = urllib.request.getproxies_environment()

    def proxy_for(self, url: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
        """The proxy to use for *url*, or None to connect directly."""
        proxy = self._proxies.get(url.scheme)
        if not proxy or not url.hostname:
            return None
        if _bypass_by_environment(url.hostname, self._proxies):
            return None
        if "://" not in proxy:
            proxy = f"http://{proxy}"
        return urllib.parse.urlsplit(proxy)
