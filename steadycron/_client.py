"""``SteadyCron``: one tenant's settings, transport, resolution cache and pinger."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from ._config import Config, check_key, optional_text
from ._deadline import Deadline
from ._forksafe import reset_after_fork
from ._interrupts import from_outside
from ._message import clip_head
from ._pinger import Exchange, Pinger
from ._protocol import NO_BODY_HEADERS, PATH_SUFFIX, TEXT_HEADERS, ping_query, token_segment
from ._redact import redact
from ._resolver import Resolver
from .transports._base import Request, Transport, check_transport

if TYPE_CHECKING:
    from ._run import Monitor, RunContext
    from ._token_cache import TokenCache

log = logging.getLogger("steadycron")

State = Literal["start", "success", "fail"]

F = TypeVar("F", bound=Callable[..., Any])


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
    config: Config, token: str, state: State, message: str | None, run_id: str | None
) -> Request:
    """The wire form of one ping (PROTOCOL.md: path per state, env and run_id in the query)."""
    base, query = _ping_target(config.ping_url, token, config.environment)
    url = base + PATH_SUFFIX[state]
    if run_id:
        run_query = ping_query(None, run_id)
        query = f"{query}&{run_query}" if query else run_query
    if query:
        url = f"{url}?{query}"
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
        # Set by steadycron.testing.record(): resolve even when no API key is configured.
        self._placeholder_api_key: str | None = None
        reset_after_fork(self)

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
    ) -> None:
        """Send one ping. Delivery trouble is logged, never raised; misconfiguration raises."""
        self.send_ping(key, state, message, run_id=run_id)

    def resolve(self, key: str) -> str:
        """Resolve *key* to its ping token, raising on misconfiguration or an outage
        (:class:`ResolutionUnavailableError`), within ``ping_timeout``."""
        check_key(key)
        self._check_open()
        config = self.config
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        return self._resolver.resolve(key, config, Deadline.after(config.ping_timeout))

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
        self, key: str, state: str, message: str | None = None, *, run_id: str | None = None
    ) -> bool:
        """One ping within one ``ping_timeout``, resolution included. Returns whether it
        was delivered; raises only for misuse and misconfiguration."""
        check_key(key)
        checked_state = check_state(state)
        if message is not None and not isinstance(message, str):
            # Not optional_text: a message may hold anything; what cannot travel becomes "?".
            raise TypeError(f"message must be a str or None, not {type(message).__name__}")
        run_id = optional_text("run_id", run_id)
        config = self.config
        deadline = Deadline.after(config.ping_timeout)
        token = self.token_for(config, key, deadline)
        if token is None:
            return False
        return self.deliver(config, key, token, checked_state, message, run_id, deadline)

    def token_for(self, config: Config, key: str, deadline: Deadline) -> str | None:
        """The token to ping *key* with; None during an outage with nothing cached."""
        self._check_open()
        direct = config.monitors.get(key)
        if direct is not None:
            return direct
        if self._placeholder_api_key and not config.api_key:
            config = attrs.evolve(config, api_key=self._placeholder_api_key)
        return self._resolver.resolve_or_stale(key, config, deadline)

    def deliver(
        self,
        config: Config,
        key: str,
        token: str,
        state: State,
        message: str | None,
        run_id: str | None,
        deadline: Deadline,
    ) -> bool:
        """Send one ping to *token*; log (never raise) when it cannot be delivered.
        What is raised into the caller from outside meanwhile (a signal handler's
        exception, ``KeyboardInterrupt``) propagates."""
        try:
            request = ping_request(config, token, state, message, run_id)
            exchange = self._exchange(request, deadline)
        except Exception as exc:  # nothing of the ping's own may escape it
            if from_outside(exc):
                raise
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

    # -- internals --------------------------------------------------------------------

    def _exchange(self, request: Request, deadline: Deadline) -> Exchange:
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

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held it (building the transport, which imports
        # urllib3) at the fork: in the child nobody would ever release it.
        self._transport_lock = threading.Lock()

    def _release(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._pinger.close()
