"""Monitor key -> ping token: caches in memory and on disk, one request in flight per
key, stale while revalidate, and errors that stop a job only on a key's first use.

Each client has its own resolver, so tenants never see each other's tokens in memory; on
disk their entries are apart by ``api_url`` and API key.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

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
from ._redact import quote_text, shown
from .transports._base import Request, Response

if TYPE_CHECKING:
    from ._token_cache import Entry, TokenCache

log = logging.getLogger("steadycron")


#: After a failed re-resolution, the stale token is used this long (at most a TTL)
#: before another is tried: a revoked key must not cost an API request per ping.
REFRESH_RETRY_SECONDS = 60.0

Fetch = Callable[[Request, float], Exchange]
#: Whose token: (api_url, API key, monitor key).
Identity = tuple[str, "str | None", str]


class _Cached:
    """A token in memory; times are on the monotonic clock."""

    __slots__ = ("kind", "refresh_after", "resolved_at", "token")

    def __init__(self, token: str, kind: str, resolved_at: float) -> None:
        self.token = token
        self.kind = kind
        self.resolved_at = resolved_at
        self.refresh_after = -math.inf


def _start_daemon(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="steadycron-resolve", daemon=True).start()


class _Flight:
    """One resolve that other threads asking for the same token wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: str | None = None
        self.error: BaseException | None = None


def _server_message(response: Response, secrets: list[str | None]) -> str | None:
    """The server's own explanation from an error body, cut short and scrubbed of the key."""
    message = server_message(response.body)
    if message is None:
        return None
    return quote_text(message, secrets)


def _resolved_from(key: str, response: Response, secrets: list[str | None]) -> tuple[str, str]:
    """The ping token and kind of a 200 answer. The kind is decided first: a key of a
    kind that cannot be pinged is refused whatever the token field holds; an answer
    that is not what the API sends is an outage."""
    try:
        resolution = read_resolution(response.body)
    except ValueError as exc:
        raise ResolutionUnavailableError(
            f"monitor key {shown(key)}: {exc} (a proxy or captive portal in the way?)", key=key
        ) from None
    token = resolution.token
    if resolution.kind not in PINGABLE_KINDS:
        kind = quote_text(resolution.kind, [token, *secrets], limit=40)
        raise InvalidMonitorKindError(key, kind=kind, status=response.status)
    if token is None or not is_sendable(token):
        raise ResolutionUnavailableError(
            f"monitor key {shown(key)}: the resolve answer held no usable ping token", key=key
        )
    return token, resolution.kind


_REFUSALS = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: MonitorNotFoundError,
    409: AmbiguousJobKeyError,
}


class Resolver:
    """Turns keys into tokens for one client.

    Tokens are cached per (``api_url``, API key, monitor key), in memory and, through
    *disk*, in files shared with the user's other processes. A resolve started under
    one ``api_url`` and API key only ever feeds the cache of those settings.

    Args:
        fetch: performs one bounded exchange (the client's pinger).
        disk: the on-disk cache to use with a config, or None for memory alone.
        clock: monotonic clock, for cache expiry.
        wall_clock: epoch seconds, the time base of entries on disk.
        start_thread: starts a daemon thread running a callable; raises RuntimeError
            when no thread can be started (at interpreter shutdown).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        disk: Callable[[Config], TokenCache | None] = lambda config: None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        start_thread: Callable[[Callable[[], None]], None] = _start_daemon,
    ) -> None:
        self._fetch = fetch
        self._disk = disk
        self._clock = clock
        self._wall_clock = wall_clock
        self._start_thread = start_thread
        self._memory: dict[Identity, _Cached] = {}
        #: Kinds of the keys resolved, kept when tokens are not (``resolve_cache_ttl=0``):
        #: a run's outcome ping is built by its monitor's kind.
        self._kinds: dict[Identity, str] = {}
        self._flights: dict[Identity, _Flight] = {}
        self._lock = threading.Lock()
        # Bumped by clear(): a resolve that started before must not refill the cache.
        self._generation = 0
        reset_after_fork(self)

    def clear(self, config: Config) -> None:
        """Forget every token in memory, and on disk those of *config*'s api_url and key."""
        with self._lock:
            self._generation += 1
            self._memory.clear()
            self._kinds.clear()
        disk = self._disk(config) if config.api_key else None
        if disk is not None and config.api_key:
            from ._token_cache import tenant_prefix

            disk.remove_tenant(tenant_prefix(config.api_url, config.api_key))

    def secrets(self, config: Config) -> list[str | None]:
        """Every secret a client with *config* holds: the API key, direct tokens and the
        tokens cached here. Server text quoted in an error or a log is scrubbed of all."""
        cached = [entry.token for entry in list(self._memory.values())]
        return [config.api_key, *config.monitors.values(), *cached]

    def kind(self, key: str, config: Config) -> str | None:
        """The monitor kind *key* resolved to under *config*, if it is known."""
        identity = (config.api_url, config.api_key, key)
        cached = self._memory.get(identity)
        return self._kinds.get(identity) if cached is None else cached.kind

    def resolve(self, key: str, config: Config, deadline: float) -> str:
        """The token for *key*, asked of the API unless this client resolved or used it
        within ``resolve_cache_ttl``: asking is this call's job, so it does not take the
        disk's word alone (``steadycron check`` reports what the API says today).

        Raises the ConfigurationError family or, on an outage, ResolutionUnavailableError.
        """
        identity = (config.api_url, config.api_key, key)
        cached = self._memory.get(identity)
        if cached is not None and self._is_fresh(cached, config):
            return cached.token
        return self._resolve_shared(identity, config, deadline, read_disk=False)

    def resolve_or_stale(self, key: str, config: Config, deadline: float) -> str | None:
        """The token to ping *key* with, for runs and pings.

        A cached token (memory or disk) is used at once, past its TTL too, while a
        re-resolution runs beside the caller. Only a key with no token at all is
        resolved here: misconfiguration raises, and an outage logs a warning and yields
        None (that run goes unpinged, and the next use tries again).
        """
        identity = (config.api_url, config.api_key, key)
        cached = self._memory.get(identity)
        if cached is None and config.resolve_cache_ttl > 0:
            cached = self._from_disk(identity, config)
        if cached is not None and config.resolve_cache_ttl > 0:
            if not self._is_fresh(cached, config) and self._clock() >= cached.refresh_after:
                self._refresh_beside(identity, config, cached)
            return cached.token
        try:
            return self._resolve_shared(identity, config, deadline, read_disk=True)
        except ResolutionUnavailableError as exc:
            log.warning(
                "could not resolve monitor key %s (%s); this run goes unpinged", shown(key), exc
            )
            return None

    # -- the cache --------------------------------------------------------------------

    def _is_fresh(self, cached: _Cached, config: Config) -> bool:
        return 0.0 <= self._clock() - cached.resolved_at < config.resolve_cache_ttl

    def _from_disk(self, identity: Identity, config: Config) -> _Cached | None:
        """The disk's entry for *identity*, kept in memory from now on."""
        api_url, api_key, key = identity
        disk = self._disk(config) if api_key else None
        if disk is None or not api_key:
            return None
        from ._token_cache import names

        entry = disk.load(names(api_url, api_key, key))
        if entry is None:
            return None
        cached = self._cached_from(entry)
        self._memory[identity] = cached
        return cached

    def _cached_from(self, entry: Entry) -> _Cached:
        age = self._wall_clock() - entry.resolved_at
        # An entry from the future (a clock set back) has no age we can trust: stale.
        resolved_at = self._clock() - age if age >= 0 else -math.inf
        return _Cached(entry.token, entry.kind, resolved_at)

    def _keep(self, identity: Identity, config: Config, entry: Entry, generation: int) -> None:
        if config.resolve_cache_ttl > 0 and generation == self._generation:
            self._memory[identity] = self._cached_from(entry)

    # -- one resolve at a time per identity, in this process and across processes ----

    def _resolve_shared(
        self, identity: Identity, config: Config, deadline: float, *, read_disk: bool
    ) -> str:
        while True:
            with self._lock:
                flight = self._flights.get(identity)
                leading = flight is None
                if flight is None:
                    flight = self._flights[identity] = _Flight()
            if leading:
                return self._lead(flight, identity, config, deadline, read_disk=read_disk)
            token = self._wait_for_flight(flight, identity, deadline)
            if token is not None:
                return token
            # The leader was interrupted (its own trouble, not ours): ask again.

    def _wait_for_flight(self, flight: _Flight, identity: Identity, deadline: float) -> str | None:
        key = identity[2]
        if not flight.done.wait(timeout=max(0.0, deadline - self._clock())):
            raise ResolutionUnavailableError(
                f"monitor key {shown(key)}: no resolve answer before the deadline", key=key
            )
        if flight.error is not None:
            raise flight.error
        return flight.token

    def _lead(
        self,
        flight: _Flight,
        identity: Identity,
        config: Config,
        deadline: float,
        *,
        read_disk: bool,
    ) -> str:
        generation = self._generation
        try:
            entry = self._fetch_shared(identity, config, deadline, read_disk=read_disk)
            self._kinds[identity] = entry.kind
            self._keep(identity, config, entry, generation)
            flight.token = entry.token
            return entry.token
        except (ConfigurationError, ResolutionUnavailableError) as exc:
            flight.error = exc  # what waiters for the same answer get too
            raise
        finally:
            # Anything else (KeyboardInterrupt in this thread) leaves the flight without
            # an answer: a waiter then asks again, and the interrupt stays in this thread.
            with self._lock:
                if self._flights.get(identity) is flight:
                    del self._flights[identity]
            flight.done.set()

    def _fetch_shared(
        self, identity: Identity, config: Config, deadline: float, *, read_disk: bool
    ) -> Entry:
        """Ask the API, letting one process of the user ask for everyone at a time."""
        api_url, api_key, key = identity
        disk = self._disk(config) if api_key and config.resolve_cache_ttl > 0 else None
        if disk is None or not api_key:
            return self._request(key, config, deadline)
        from ._token_cache import names

        where = names(api_url, api_key, key)
        # Another process asking already: wait for its answer, but keep half the budget.
        wait_until = self._clock() + max(0.0, deadline - self._clock()) / 2
        with disk.turn(where, wait_until=wait_until if read_disk else 0.0) as turn:
            if read_disk and turn != "no locks":
                entry = disk.load(where)
                if entry is not None and self._is_fresh(self._cached_from(entry), config):
                    return entry
            entry = self._request(key, config, deadline)
            disk.store(where, entry)
            return entry

    # -- stale while revalidate -------------------------------------------------------

    def _refresh_beside(self, identity: Identity, config: Config, cached: _Cached) -> None:
        """Re-resolve on a thread of its own, bounded by ``ping_timeout``; the caller
        goes on with the stale token."""
        with self._lock:
            # Another thread may have started (or even finished) this refresh meanwhile.
            current = self._memory.get(identity, cached)
            busy = identity in self._flights or self._clock() < current.refresh_after
            if busy or self._is_fresh(current, config):
                return
            cached = current
            flight = self._flights[identity] = _Flight()
            # Until this one is over, and for a while after it fails, no other.
            cached.refresh_after = self._clock() + min(
                config.resolve_cache_ttl, REFRESH_RETRY_SECONDS
            )
        deadline = self._clock() + config.ping_timeout
        try:
            self._start_thread(lambda: self._refresh(flight, identity, config, deadline))
        except RuntimeError:  # no new threads at interpreter shutdown: keep the stale token
            with self._lock:
                del self._flights[identity]
            flight.done.set()

    def _refresh(
        self, flight: _Flight, identity: Identity, config: Config, deadline: float
    ) -> None:
        key = identity[2]
        try:
            self._lead(flight, identity, config, deadline, read_disk=True)
        except ConfigurationError as exc:
            # The first-use rule: a key that has a token keeps pinging with it.
            log.error("%s; the last known token stays in use", exc)
        except ResolutionUnavailableError as exc:
            log.warning(
                "could not resolve monitor key %s (%s); using the last known token", shown(key), exc
            )
        except Exception as exc:  # a thread of our own must not die with a traceback
            log.warning("re-resolving monitor key %s failed: %s", shown(key), type(exc).__name__)

    # -- the request ------------------------------------------------------------------

    def _request(self, key: str, config: Config, deadline: float) -> Entry:
        if not config.api_key:
            raise ConfigurationError(
                f"monitor key {shown(key)}: no API key to resolve it with; set steadycron.api_key "
                "or STEADYCRON_API_KEY, or give its ping token in steadycron.monitors",
                key=key,
            )
        request = Request("GET", resolve_url(config.api_url, key), resolve_headers(config.api_key))
        exchange = self._fetch(request, deadline)
        response = exchange.response
        if response is None or response.status == 429 or response.status >= 500:
            raise ResolutionUnavailableError(
                f"monitor key {shown(key)}: SteadyCron unavailable "
                f"({quote_text(exchange.reason, self.secrets(config))}, "
                f"{exchange.attempts} attempt(s))",
                key=key,
            )
        if response.status == 200:
            from ._token_cache import Entry

            token, kind = _resolved_from(key, response, self.secrets(config))
            return Entry(token, kind, self._wall_clock())
        refusal = _REFUSALS.get(response.status)
        if refusal is not None:
            message = _server_message(response, self.secrets(config))
            raise refusal(key, message, status=response.status)
        raise ResolutionUnavailableError(
            f"monitor key {shown(key)}: unexpected answer from the API (HTTP {response.status})",
            key=key,
        )

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock, or led a flight nobody will finish.
        self._lock = threading.Lock()
        self._flights = {}
