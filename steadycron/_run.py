"""Tracked runs (``@job``, ``monitor()``) and manual pings (``Monitor``).

The client is looked up when a run starts, never at decoration time, so a decorator at
import time works with settings made later, and each call keeps its own run state: two
overlapping runs of one function never share a run id.

A run is one start ping and one outcome ping with the same run id, both handed to
:meth:`SteadyCron.send <steadycron.SteadyCron.send>`. The outcome goes where the start
went (the token in the start's receipt), and is skipped when the start had no token to
go to (an outage with nothing cached).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._config import check_key
from ._ping import Ping, Receipt, State
from ._redact import shown

if TYPE_CHECKING:
    from ._client import SteadyCron

log = logging.getLogger("steadycron")

F = TypeVar("F", bound=Callable[..., Any])
ClientSource = Callable[[], "SteadyCron"]


@attrs.frozen
class Run:
    """One tracked run: the monitor key and the run id all its pings carry."""

    key: str
    run_id: str


class _Open:
    """A run between its start and its outcome.

    ``receipt`` is the start's (None: not known).
    """

    __slots__ = ("client", "receipt", "run")

    def __init__(self, client: SteadyCron, run: Run, receipt: Receipt | None) -> None:
        self.client = client
        self.run = run
        self.receipt = receipt

    def outcome_ping(self, state: State, message: str | None) -> Ping | None:
        """The outcome to send, or None when this process has nothing to say."""
        if self.receipt is not None and self.receipt.token is None:
            return None  # the start had nowhere to go: this run goes unpinged
        if self.client.closed:
            log.warning("outcome ping of %s skipped: its client was closed", shown(self.run.key))
            return None
        return Ping(self.run.key, state, message, self.run.run_id)

    @property
    def token(self) -> str | None:
        return None if self.receipt is None else self.receipt.token


def _outcome(exc: BaseException | None, capture_errors: bool) -> tuple[State, str | None]:
    """The ping that ends a run: ``SystemExit(0)`` counts as success, any other escape fails."""
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
        return "success", None
    if not capture_errors:
        return "fail", None
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ breaks still gets reported
        text = ""
    return "fail", f"{name}: {text}" if text else name


def _new_run(key: str) -> tuple[Run, Ping]:
    """A fresh run of *key*, and the start ping that opens it."""
    run = Run(key, uuid.uuid4().hex)
    return run, Ping(key, "start", None, run.run_id)


# -- the sync path --------------------------------------------------------------------


def open_run(client: SteadyCron, key: str) -> _Open:
    """Send a run's start; misconfiguration raises and the job must not run."""
    run, ping = _new_run(key)
    return _Open(client, run, client.send(ping))


def close_run(opened: _Open, exc: BaseException | None) -> None:
    """Send a run's outcome for the way its body ended (*exc*: how it escaped, if it did)."""
    state, message = _outcome(exc, opened.client.config.capture_errors)
    ping = opened.outcome_ping(state, message)
    if ping is not None:
        opened.client.send(ping, token=opened.token)


# -- the async path -------------------------------------------------------------------


async def open_run_async(client: SteadyCron, key: str) -> _Open:
    """:func:`open_run` on a worker thread: the event loop never waits on the network."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, open_run, client, key)


async def close_run_async(opened: _Open, exc: BaseException | None) -> None:
    """:func:`close_run` on a worker thread."""
    import asyncio

    await asyncio.get_running_loop().run_in_executor(None, close_run, opened, exc)


_open_runs: contextvars.ContextVar[tuple[tuple[RunContext, _Open], ...]] = contextvars.ContextVar(
    "steadycron_open_runs", default=()
)


class RunContext:
    """Tracks one run per entry: start ping on entry, outcome ping on exit.

    Works with ``with`` and ``async with``; the async form never makes the event loop
    wait on the network. Yields a :class:`Run`.
    """

    def __init__(self, client: ClientSource, key: str) -> None:
        self._client = client
        self._key = check_key(key)
        self._active: list[_Open] = []

    def __repr__(self) -> str:
        return f"RunContext(key={self._key!r})"

    def __enter__(self) -> Run:
        opened = open_run(self._client(), self._key)
        self._push(opened)
        return opened.run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened = self._pop()
        if opened is not None:
            close_run(opened, exc)

    async def __aenter__(self) -> Run:
        opened = await open_run_async(self._client(), self._key)
        self._push(opened)
        return opened.run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened = self._pop()
        if opened is not None:
            await close_run_async(opened, exc)

    # One RunContext may be entered by several threads or tasks at once (a module-level
    # ``monitor(key)`` object): each exit must close the run its own thread or task opened,
    # not the one opened last. Runs are found through the context they were opened in, and
    # only when that fails (exit in another task, as in an async fixture) by recency.

    def _push(self, opened: _Open) -> None:
        self._active.append(opened)
        _open_runs.set((*_open_runs.get(), (self, opened)))

    def _pop(self) -> _Open | None:
        stack = _open_runs.get()
        for index in range(len(stack) - 1, -1, -1):
            owner, opened = stack[index]
            if owner is self:
                _open_runs.set(stack[:index] + stack[index + 1 :])
                self._active.remove(opened)
                return opened
        return self._active.pop() if self._active else None


def track(client: ClientSource, key: str) -> Callable[[F], F]:
    """The ``@job(key)`` decorator, for plain and ``async def`` functions."""
    check_key(key)

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@job cannot track generator function {fn.__qualname__}: its work runs "
                "after the call returns. Use `with steadycron.monitor(key):` inside it."
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                opened = await open_run_async(client(), key)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    await close_run_async(opened, exc)
                    raise
                await close_run_async(opened, None)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            opened = open_run(client(), key)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                close_run(opened, exc)
                raise
            close_run(opened, None)
            return result

        return run  # type: ignore[return-value]

    return decorate


class Monitor:
    """Manual pings for one monitor key.

    Args:
        key: the monitor key, as declared in the monitor manifest.
        client: the client to ping through; the default client (looked up at each ping)
            when omitted.
    """

    def __init__(self, key: str, *, client: SteadyCron | None = None) -> None:
        self.key = check_key(key)
        self._client = client

    def __repr__(self) -> str:
        return f"Monitor(key={self.key!r})"

    def ping(
        self, state: State = "success", message: str | None = None, *, run_id: str | None = None
    ) -> None:
        """Send one ping; raises only for misuse or misconfiguration, never for delivery."""
        self._pick_client().send(Ping.checked(self.key, state, message, run_id))

    def _pick_client(self) -> SteadyCron:
        if self._client is not None:
            return self._client
        # Through the package, where users find the default client too: this module sits
        # below the client and its default holder, and imports neither.
        import steadycron

        return steadycron.default_client()
