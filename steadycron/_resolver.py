"""Monitor key -> ping token: a TTL cache, one request in flight per key, stale-if-error.

Each client has its own resolver, so tenants never see each other's tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import attrs

from ._config import Config, is_sendable
from ._exceptions import (
    AmbiguousJobKeyError,
    AuthenticationError,
    ConfigurationError,
    InvalidMonitorKindError,
    MonitorNotFoundError,
    ResolutionUnavailableError,
)
from ._forksafe import reset_after_fork
from ._pinger import Exchange
from ._protocol import (
    PINGABLE_KINDS,
    read_resolution,
    resolve_headers,
    resolve_url,
    server_message,
)
from ._redact import redact
from .transports._base import Request, Response

log = logging.getLogger("steadycron")

_SERVER_MESSAGE_CHARS = 300

Fetch = Callable[[Request, float], Exchange]


@attrs.frozen
class _Cached:
    token: str
    expires_at: float


class _Flight:
    """One resolve request that other threads asking for the same key wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: str | None = None
        self.error: BaseException | None = None


def _server_message(response: Response, api_key: str | None) -> str | None:
    """The server's own explanation from an error body, cut short and scrubbed of the key."""
    message = server_message(response.body)
    if message is None:
        return None
    return redact(message, api_key)[:_SERVER_MESSAGE_CHARS]


def _resolved_from(key: str, response: Response) -> tuple[str, str]:
    """The ping token and kind of a 200 answer; an answer that is not what the API sends
    is an outage."""
    try:
        resolution = read_resolution(response.body)
    except ValueError as exc:
        raise ResolutionUnavailableError(
            f"monitor key {key!r}: {exc} (a proxy or captive portal in the way?)", key=key
        ) from None
    token = resolution.token
    if token is None or not is_sendable(token):
        raise ResolutionUnavailableError(
            f"monitor key {key!r}: the resolve answer held no usable ping token", key=key
        )
    if resolution.kind not in PINGABLE_KINDS:
        raise InvalidMonitorKindError(key, kind=resolution.kind[:40], status=response.status)
    return token, resolution.kind


_REFUSALS = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: MonitorNotFoundError,
    409: AmbiguousJobKeyError,
}


class Resolver:
    """Turns keys into tokens for one client.

    Args:
        fetch: performs one bounded exchange (the client's pinger).
        clock: monotonic clock, for cache expiry.
    """

    def __init__(self, fetch: Fetch, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._kinds: dict[str, str] = {}
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def clear(self) -> None:
        """Forget every cached token."""
        with self._lock:
            self._cache.clear()
            self._kinds.clear()

    def kind(self, key: str) -> str | None:
        """The kind of monitor *key* resolved to (kept even when tokens are not cached:
        the outcome ping of a run needs it)."""
        return self._kinds.get(key)

    def tokens(self) -> list[str]:
        """Every token cached: secrets that text leaving the client must not carry."""
        return [cached.token for cached in list(self._cache.values())]

    def resolve(self, key: str, config: Config, deadline: float) -> str:
        """The token for *key*; raises the ConfigurationError family or, on an outage,
        ResolutionUnavailableError."""
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > self._clock():
            return cached.token
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if leading:
            return self._lead(flight, key, config, deadline)
        if not flight.done.wait(timeout=max(0.0, deadline - self._clock())):
            raise ResolutionUnavailableError(
                f"monitor key {key!r}: no resolve answer before the deadline", key=key
            )
        if flight.token is None:
            raise flight.error or ResolutionUnavailableError(f"{key!r}: not resolved", key=key)
        return flight.token

    def resolve_or_stale(self, key: str, config: Config, deadline: float) -> str | None:
        """Like :meth:`resolve`, but an outage logs a warning and yields the stale token
        (or None: that run goes unpinged, and the next use tries again)."""
        try:
            return self.resolve(key, config, deadline)
        except ResolutionUnavailableError as exc:
            stale = self._cache.get(key)
            fallback = "using the last known token" if stale else "this run goes unpinged"
            log.warning("could not resolve monitor key %r (%s); %s", key, exc, fallback)
            return stale.token if stale else None

    def _lead(self, flight: _Flight, key: str, config: Config, deadline: float) -> str:
        try:
            token, self._kinds[key] = self._request(key, config, deadline)
            if config.resolve_cache_ttl > 0:
                self._cache[key] = _Cached(token, self._clock() + config.resolve_cache_ttl)
            flight.token = token
            return token
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def _request(self, key: str, config: Config, deadline: float) -> tuple[str, str]:
        if not config.api_key:
            raise ConfigurationError(
                f"monitor key {key!r}: no API key to resolve it with; set steadycron.api_key "
                "or STEADYCRON_API_KEY, or give its ping token in steadycron.monitors",
                key=key,
            )
        request = Request("GET", resolve_url(config.api_url, key), resolve_headers(config.api_key))
        exchange = self._fetch(request, deadline)
        response = exchange.response
        if response is None or response.status == 429 or response.status >= 500:
            raise ResolutionUnavailableError(
                f"monitor key {key!r}: SteadyCron unavailable ({exchange.reason}, "
                f"{exchange.attempts} attempt(s))",
                key=key,
            )
        if response.status == 200:
            return _resolved_from(key, response)
        refusal = _REFUSALS.get(response.status)
        if refusal is not None:
            raise refusal(key, _server_message(response, config.api_key), status=response.status)
        raise ResolutionUnavailableError(
            f"monitor key {key!r}: unexpected answer from the API (HTTP {response.status})",
            key=key,
        )

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock, or led a flight nobody will finish.
        self._lock = threading.Lock()
        self._flights = {}
