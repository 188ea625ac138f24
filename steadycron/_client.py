"""``SteadyCron``: one tenant's settings, transport, resolution cache and pinger.

Every ping, whoever makes it (a tracked run, a manual ping, the module-level functions,
the command line), is a :class:`~steadycron._ping.Ping` handed to :meth:`SteadyCron.send`:
the key is resolved to a token (unless the caller says where the ping goes), the request
is built, and the pinger delivers it, all before one deadline.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._config import Config, check_key
from ._deadline import Deadline
from ._forksafe import reset_after_fork
from ._message import clip_head
from ._monitor import Monitor
from ._ping import UNPINGED, Ping, Receipt, State
from ._pinger import Exchange, Pinger
from ._protocol import (
    NO_BODY_HEADERS,
    PATH_SUFFIX,
    REPORT_HEADERS,
    TEXT_HEADERS,
    ping_query,
    report_body,
    token_segment,
)
from ._redact import quote_text, shown
from ._report import Values, outcome_values
from ._resolver import Resolver
from ._run import RunContext, track
from .transports._base import MayBlock, Request, Transport, check_transport

if TYPE_CHECKING:
    from ._token_cache import TokenCache

__all__ = ["State", "SteadyCron"]

log = logging.getLogger("steadycron")

#: Sent as the API key while a transport stands in for SteadyCron and none is set.
_STAND_IN_API_KEY = "sc_ro_stand_in"

F = TypeVar("F", bound=Callable[..., Any])
#: Told of each report that an outcome ping does not carry (a heartbeat key's): token,
#: state, run id, the report. The test kit keeps them.
ReportObserver = Callable[[str, str, "str | None", Values], None]


def ping_target(ping_url: str, token: str, environment: str | None) -> tuple[str, str]:
    """The URL up to the state suffix, and the query's ``env`` part."""
    return f"{ping_url}/{token_segment(token)}", ping_query(environment, None)


def ping_request(target: tuple[str, str], ping: Ping, report: bytes | None = None) -> Request:
    """The wire form of *ping* (PROTOCOL.md: path per state, env and run_id in the query,
    and a body: an agent outcome's JSON *report*, else the message as text)."""
    base, query = target
    url = base + PATH_SUFFIX[ping.state]
    if ping.run_id:
        run_query = ping_query(None, ping.run_id)
        query = f"{query}&{run_query}" if query else run_query
    if query:
        url = f"{url}?{query}"
    if report is not None:
        return Request("POST", url, REPORT_HEADERS, report)
    if not ping.message:
        return Request("POST", url, NO_BODY_HEADERS)
    return Request("POST", url, TEXT_HEADERS, clip_head(ping.message).encode("utf-8"))


class _Wiring:
    """What a client's requests travel on: the transport (built on first use) and whether
    it stands in for SteadyCron itself.

    One object, so that the clients the default client builds as the module settings
    change all see a transport swapped on any of them.
    """

    def __init__(self, transport: Transport | None) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        self.stands_in = False
        #: Told of the reports heartbeat keys do not send, while a stand-in watches.
        self.report_observer: ReportObserver | None = None
        #: Whether ``close()`` only releases connections, leaving the clients usable.
        self.reopens = False
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held it (building the transport, which imports
        # urllib3) at the fork: in the child nobody would ever release it.
        self.lock = threading.Lock()


class SteadyCron:
    """A SteadyCron client: one tenant's settings, transport and resolution cache.

    Clients share nothing mutable. A client owns its transport (``close()`` closes it,
    also one passed in) and is safe to use from many threads.

    Args:
        config: the settings; ``Config()`` (defaults, no environment) when omitted.
        transport: how requests travel; a pooled :class:`Urllib3Transport` by default,
            built on first use.
    """

    def __init__(self, config: Config | None = None, *, transport: Transport | None = None) -> None:
        if config is None:
            config = Config()
        if not isinstance(config, Config):
            raise TypeError(
                f"config must be a steadycron.Config, not {type(config).__name__}; "
                "build one with Config(api_key=...) or Config.from_env()"
            )
        self._config = config
        self._wiring = _Wiring(None if transport is None else check_transport(transport))
        self._pinger = Pinger()
        self._resolver = Resolver(self._exchange, disk=self._token_cache)
        # Ping URLs, built once per token: a cache of this client's, emptied by close().
        self._ping_target = functools.lru_cache(maxsize=256)(ping_target)
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def config(self) -> Config:
        """The settings this client uses."""
        return self._config

    @property
    def transport(self) -> Transport:
        """The transport requests travel on (built on first use when none was given)."""
        wiring = self._wiring
        transport = wiring.transport
        if transport is None:
            with wiring.lock:
                if wiring.transport is None:
                    from .transports._urllib3 import Urllib3Transport

                    wiring.transport = Urllib3Transport()
                transport = wiring.transport
        return transport

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def never_blocks(self) -> bool:
        """Whether the transport answers at once (an in-memory one): then coroutines ping
        inline instead of on a thread. The default transport, not built yet, blocks."""
        transport = self._wiring.transport
        return isinstance(transport, MayBlock) and not transport.blocking

    # -- the public API ---------------------------------------------------------------

    def job(self, key: str) -> Callable[[F], F]:
        """Decorate a function so every call is a tracked run of monitor *key*."""
        return track(lambda: self, key)

    def monitor(self, key: str) -> RunContext:
        """A context manager (``with`` or ``async with``) that tracks one run of *key*."""
        return RunContext(lambda: self, key)

    def Monitor(self, key: str) -> Monitor:
        """A handle for manual pings of *key* through this client."""
        return Monitor(key, client=self)

    def ping(
        self,
        key: str,
        state: State = "success",
        message: str | None = None,
        *,
        run_id: str | None = None,
        report: Mapping[str, object] | None = None,
    ) -> None:
        """Send one ping. Delivery trouble is logged, never raised; misconfiguration raises.

        *report* (the fields of a run report, API.md §9) goes with a success or fail ping
        of an ``agent`` monitor; a heartbeat monitor's ping does not carry it.
        """
        self.send(Ping.checked(key, state, message, run_id, report))

    def resolve(self, key: str) -> str:
        """Resolve *key* to its ping token, raising on misconfiguration or an outage
        (:class:`ResolutionUnavailableError`), within ``ping_timeout``."""
        check_key(key)
        self._check_open()
        config = self.config
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        return self._resolver.resolve(key, config, self.new_deadline())

    def clear_cache(self) -> None:
        """Forget cached key -> token resolutions: all of them in memory, and on disk
        those made with this client's ``api_url`` and API key."""
        self._resolver.clear(self.config)

    def close(self) -> None:
        """Release pooled connections and worker threads; the client is not used again."""
        wiring = self._wiring
        self._closed = not wiring.reopens
        with wiring.lock:
            transport, wiring.transport = wiring.transport, None
        if transport is not None:
            transport.close()
        self._pinger.close()
        self._ping_target.cache_clear()

    def __enter__(self) -> SteadyCron:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the one path a ping takes ----------------------------------------------------

    def new_deadline(self) -> Deadline:
        """The deadline of a ping that starts now: ``ping_timeout`` from now."""
        return Deadline.after(self._config.ping_timeout)

    def send(
        self, ping: Ping, *, deadline: Deadline | None = None, token: str | None = None
    ) -> Receipt:
        """Send *ping* before *deadline* (:meth:`new_deadline` when omitted).

        Its key is resolved first, unless *token* says where it goes (a run's outcome goes
        where its start went). Delivery trouble is logged, never raised; misconfiguration
        raises. When the caller is interrupted while the start of a run is on its way (a
        Ctrl-C, a signal handler's exception), either nothing of the start was sent (and
        nothing will be), or a fail follows it before the interruption goes on: a run is
        closed once it is opened (API.md §3).
        """
        self._check_open()
        config = self._config
        if deadline is None:
            deadline = Deadline.after(config.ping_timeout)
        if token is None:
            token = self._token_for(config, ping.key, deadline)
            if token is None:
                return UNPINGED
        if ping.state != "start" or ping.run_id is None:
            return Receipt(self._deliver(config, ping, token, deadline), token)
        try:
            return Receipt(self._deliver(config, ping, token, deadline), token)
        except BaseException:
            # Cut: nothing more goes out for the start. Only if it may have gone out
            # already does the run need its fail; otherwise the interruption goes on now.
            if deadline.cut():
                fail = ping._replace(state="fail")
                self._deliver(config, fail, token, Deadline.after(config.ping_timeout))
            raise

    def _token_for(self, config: Config, key: str, deadline: Deadline) -> str | None:
        """The token to ping *key* with; None during an outage with nothing cached."""
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        return self._resolver.resolve_or_stale(key, self._resolving(config), deadline)

    def _resolving(self, config: Config) -> Config:
        """*config* as resolves go out under it (with an API key, when a stand-in answers)."""
        if self._wiring.stands_in and not config.api_key:
            return attrs.evolve(config, api_key=_STAND_IN_API_KEY)
        return config

    def _deliver(self, config: Config, ping: Ping, token: str, deadline: Deadline) -> bool:
        """Send *ping* to *token*; log (never raise) when it cannot be delivered."""
        target = self._ping_target(config.ping_url, token, config.environment)
        body = None if ping.state == "start" else self._report_body(config, ping, token)
        exchange = self._exchange(ping_request(target, ping, body), deadline)
        if exchange.ok:
            return True
        log.warning(
            "ping discarded: key=%s state=%s reason=%s attempts=%d",
            shown(ping.key),
            ping.state,
            quote_text(exchange.reason, [token, *self._resolver.secrets(config)]),
            exchange.attempts,
        )
        return False

    def _report_body(self, config: Config, ping: Ping, token: str) -> bytes | None:
        """The JSON report an outcome ping carries, or None when it carries text.

        An ``agent`` monitor's outcome always carries one, its summary being the ping's
        message when there is one (a fail's error text). A ``heartbeat`` monitor's never
        does: the report is handed to the test kit, if it is watching. The kind of a
        direct token is unknown: its outcome carries the report when there is one.
        """
        report = ping.report
        if ping.key in config.monitors:
            kind = None
        else:
            kind = self._resolver.kind(ping.key, self._resolving(config))
        if kind == "heartbeat" or (kind is None and not report):
            observer = self._wiring.report_observer
            if report and observer is not None:
                kept = outcome_values(report, secrets=self._secrets(config, token))
                observer(token, ping.state, ping.run_id, kept)
            return None
        secrets = self._secrets(config, token)
        return report_body(outcome_values(report or {}, summary=ping.message, secrets=secrets))

    def _secrets(self, config: Config, token: str) -> list[str | None]:
        """Every secret this client holds, which no text it sends may carry."""
        return [token, *self._resolver.secrets(config)]

    def _exchange(self, request: Request, deadline: Deadline) -> Exchange:
        return self._pinger.exchange(self.transport, request, deadline)

    def _token_cache(self, config: Config) -> TokenCache | None:
        from ._token_cache import token_cache_for

        return token_cache_for(config.token_cache, self.transport)

    # -- seams for the module-level settings and the test kit -------------------------

    def replace_transport(self, transport: Transport | None) -> Transport | None:
        """Put *transport* in place (None: the default, built on first use) and hand back
        the one it replaces, unclosed. ``steadycron.configure(transport=...)`` uses this."""
        if transport is not None:
            check_transport(transport)
        wiring = self._wiring
        with wiring.lock:
            previous, wiring.transport = wiring.transport, transport
        return previous

    @contextlib.contextmanager
    def stand_in(
        self, transport: Transport, *, keep_reports: ReportObserver | None = None
    ) -> Iterator[Transport]:
        """While the block runs, *transport* stands in for SteadyCron itself.

        Every request goes to it; keys resolve even without an API key (it answers for
        the server); tokens cached before or during the block are forgotten on both sides
        of it; *keep_reports* is told of each report a heartbeat key's outcome does not
        send. On exit the previous transport is back, unclosed. ``steadycron.testing``
        records pings this way.
        """
        check_transport(transport)
        wiring = self._wiring
        with wiring.lock:
            previous, wiring.transport = wiring.transport, transport
            stood_in, wiring.stands_in = wiring.stands_in, True
            observer, wiring.report_observer = wiring.report_observer, keep_reports
        self.clear_cache()
        try:
            yield transport
        finally:
            with wiring.lock:
                wiring.transport, wiring.stands_in = previous, stood_in
                wiring.report_observer = observer
            self.clear_cache()

    @classmethod
    def _reopening(cls, config: Config) -> SteadyCron:
        """A client whose ``close()`` only releases its connections and worker threads:
        the next ping opens fresh ones. The default client is one, because the module
        functions, and runs in flight, go on using it."""
        client = cls(config)
        client._wiring.reopens = True
        return client

    def _shares_wiring_with(self, other: SteadyCron) -> bool:
        """Whether both clients send on one wiring (the default client, rebuilt)."""
        return self._wiring is other._wiring

    def _with_config(self, config: Config) -> SteadyCron:
        """A client for *config* on this one's wiring, workers and resolution cache.

        The default client moves to new module settings this way. Everything but the
        settings is shared (tokens are cached per API key and URL), which
        is why a client keeps its mutable state in objects, never in rebound attributes.
        """
        successor = copy.copy(self)
        successor._config = config
        return successor

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this SteadyCron client is closed; create a new SteadyCron(config) to ping again"
            )
