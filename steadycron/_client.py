"""``SteadyCron``: one tenant's settings, transport, resolution cache and pinger."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from ._config import Config, check_key, optional_text
from ._message import clip_head
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
from ._redact import redact
from ._report import Values, check_report, outcome_values
from ._resolver import Resolver
from .transports._base import Request, Transport, check_transport

if TYPE_CHECKING:
    from ._run import Monitor, RunContext
    from ._token_cache import TokenCache

log = logging.getLogger("steadycron")

State = Literal["start", "success", "fail"]

F = TypeVar("F", bound=Callable[..., Any])
#: Told of each report that an outcome ping does not carry (a heartbeat key's): token,
#: state, run id, the report. The test kit keeps them.
ReportObserver = Callable[[str, str, "str | None", Values], None]


def check_state(state: object) -> State:
    """Refuse an unknown ping state before anything is sent."""
    if state not in PATH_SUFFIX:
        raise ValueError(f"state must be 'start', 'success' or 'fail', not {state!r}")
    return state  # type: ignore[return-value]


@functools.lru_cache(maxsize=256)
def _ping_target(ping_url: str, token: str, environment: str | None) -> tuple[str, str]:
    """The URL up to the state suffix, and the query's ``env`` part: done once per token."""
    return f"{ping_url}/{token_segment(token)}", ping_query(environment, None)


def ping_request(
    config: Config,
    token: str,
    state: State,
    message: str | None,
    run_id: str | None,
    report: bytes | None = None,
) -> Request:
    """The wire form of one ping (PROTOCOL.md: path per state, env and run_id in the query,
    and a body: an agent outcome's JSON *report*, else the message as text)."""
    base, query = _ping_target(config.ping_url, token, config.environment)
    url = base + PATH_SUFFIX[state]
    if run_id:
        run_query = ping_query(None, run_id)
        query = f"{query}&{run_query}" if query else run_query
    if query:
        url = f"{url}?{query}"
    if report is not None:
        return Request("POST", url, REPORT_HEADERS, report)
    if not message:
        return Request("POST", url, NO_BODY_HEADERS)
    return Request("POST", url, TEXT_HEADERS, clip_head(message).encode("utf-8"))


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
        self._transport = None if transport is None else check_transport(transport)
        self._transport_lock = threading.Lock()
        self._pinger = Pinger()
        self._resolver = Resolver(self._exchange, disk=self._token_cache)
        self._closed = False
        # Set by steadycron.testing.record(): resolve even when no API key is configured,
        # and keep the reports that heartbeat keys do not send.
        self._placeholder_api_key: str | None = None
        self._report_observer: ReportObserver | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def config(self) -> Config:
        """The settings this client uses."""
        return self._config

    @property
    def transport(self) -> Transport:
        """The transport requests travel on (built on first use when none was given)."""
        transport = self._transport
        if transport is None:
            with self._transport_lock:
                if self._transport is None:
                    from .transports._urllib3 import Urllib3Transport

                    self._transport = Urllib3Transport()
                transport = self._transport
        return transport

    # -- the public API ---------------------------------------------------------------

    def job(self, key: str) -> Callable[[F], F]:
        """Decorate a function so every call is a tracked run of monitor *key*."""
        from ._run import track

        return track(lambda: self, key)

    def monitor(self, key: str) -> RunContext:
        """A context manager (``with`` or ``async with``) that tracks one run of *key*."""
        from ._run import RunContext

        return RunContext(lambda: self, key)

    def Monitor(self, key: str) -> Monitor:
        """A handle for manual pings of *key* through this client."""
        from ._run import Monitor

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
        self.send_ping(key, state, message, run_id=run_id, report=report)

    def resolve(self, key: str) -> str:
        """Resolve *key* to its ping token, raising on misconfiguration or an outage
        (:class:`ResolutionUnavailableError`), within ``ping_timeout``."""
        check_key(key)
        self._check_open()
        config = self.config
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        return self._resolver.resolve(key, config, time.monotonic() + config.ping_timeout)

    def clear_cache(self) -> None:
        """Forget cached key -> token resolutions: all of them in memory, and on disk
        those made with this client's ``api_url`` and API key."""
        self._resolver.clear(self.config)

    def close(self) -> None:
        """Release pooled connections and worker threads; the client is not used again."""
        self._closed = True
        self._release()

    def __enter__(self) -> SteadyCron:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what runs, manual pings and the command line share ---------------------------

    def send_ping(
        self,
        key: str,
        state: str,
        message: str | None = None,
        *,
        run_id: str | None = None,
        report: Mapping[str, object] | None = None,
    ) -> bool:
        """One ping within one ``ping_timeout``, resolution included. Returns whether it
        was delivered; raises only for misuse and misconfiguration."""
        check_key(key)
        checked_state = check_state(state)
        if message is not None and not isinstance(message, str):
            # Not optional_text: a message may hold anything; what cannot travel becomes "?".
            raise TypeError(f"message must be a str or None, not {type(message).__name__}")
        run_id = optional_text("run_id", run_id)
        checked_report = None if report is None else check_report(report)
        if checked_report is not None and checked_state == "start":
            raise ValueError("a report goes with a run's outcome (success or fail), not its start")
        config = self.config
        deadline = time.monotonic() + config.ping_timeout
        token = self.token_for(config, key, deadline)
        if token is None:
            return False
        return self.deliver(
            config, key, token, checked_state, message, run_id, deadline, checked_report
        )

    def token_for(self, config: Config, key: str, deadline: float) -> str | None:
        """The token to ping *key* with; None during an outage with nothing cached."""
        self._check_open()
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        return self._resolver.resolve_or_stale(key, self._resolving(config), deadline)

    def _resolving(self, config: Config) -> Config:
        """*config* as resolves go out under it (with the test kit's stand-in API key)."""
        if self._placeholder_api_key and not config.api_key:
            return attrs.evolve(config, api_key=self._placeholder_api_key)
        return config

    def deliver(
        self,
        config: Config,
        key: str,
        token: str,
        state: State,
        message: str | None,
        run_id: str | None,
        deadline: float,
        report: Values | None = None,
    ) -> bool:
        """Send one ping to *token*; log (never raise) when it cannot be delivered."""
        try:
            body = self._report_body(config, key, token, state, message, run_id, report)
            request = ping_request(config, token, state, message, run_id, body)
            exchange = self._exchange(request, deadline)
        except Exception as exc:  # nothing may escape a ping
            reason, attempts = f"internal error {type(exc).__name__}", 0
        else:
            if exchange.ok:
                return True
            reason, attempts = exchange.reason, exchange.attempts
        log.warning(
            "ping discarded: key=%r state=%s reason=%s attempts=%d",
            key,
            state,
            redact(reason, token, config.api_key),
            attempts,
        )
        return False

    def _report_body(
        self,
        config: Config,
        key: str,
        token: str,
        state: State,
        message: str | None,
        run_id: str | None,
        report: Values | None,
    ) -> bytes | None:
        """The JSON report an outcome ping carries, or None when it carries text.

        An ``agent`` monitor's outcome always carries one, its summary being the ping's
        message when there is one (a fail's error text). A ``heartbeat`` monitor's never
        does: the report is handed to the test kit, if it is watching. The kind of a
        direct token is unknown: its outcome carries the report when there is one.
        """
        if state == "start":
            return None
        kind = None if key in config.monitors else self._resolver.kind(key, self._resolving(config))
        if kind == "heartbeat" or (kind is None and not report):
            observer = self._report_observer
            if report and observer is not None:
                secrets = self._secrets(config, token)
                observer(token, state, run_id, outcome_values(report, secrets=secrets))
            return None
        secrets = self._secrets(config, token)
        return report_body(outcome_values(report or {}, summary=message, secrets=secrets))

    def _secrets(self, config: Config, token: str) -> tuple[str | None, ...]:
        """Every secret this client holds, which no text it sends may carry."""
        return (config.api_key, token, *config.monitors.values(), *self._resolver.tokens())

    # -- internals --------------------------------------------------------------------

    def _exchange(self, request: Request, deadline: float) -> Exchange:
        return self._pinger.exchange(self.transport, request, deadline)

    def _token_cache(self, config: Config) -> TokenCache | None:
        from ._token_cache import token_cache_for

        return token_cache_for(config.token_cache, self.transport)

    def _swap_transport(self, transport: Transport | None) -> Transport | None:
        """Put *transport* in place and hand back the previous one, unclosed."""
        with self._transport_lock:
            previous, self._transport = self._transport, transport
        return previous

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this SteadyCron client is closed; create a new SteadyCron(config) to ping again"
            )

    def _release(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._pinger.close()
