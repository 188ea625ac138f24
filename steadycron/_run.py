"""Tracked runs (``@job``, ``monitor()``); manual pings (``Monitor``) build on them in
``_monitor``.

The client is looked up when a run starts, never at decoration time, so a decorator at
import time works with settings made later, and each call keeps its own run state: two
overlapping runs of one function never share a run id.

A run is one start ping and one outcome ping with the same run id, both handed to
:meth:`SteadyCron.send <steadycron.SteadyCron.send>`. The outcome is sent only by the
process that opened the run (a child forked inside a job leaves through its frames
without a word), and is skipped when the start had no token to go to (an outage with
nothing cached: a second wait for the same outage would only make the job later). It
looks its token up as every ping does, so a token refreshed during the run is used.
Coroutines send on threads of their own (``_offload``), or inline when the transport never
blocks.

While its body runs, a run is the current run of its thread or task
(:func:`current_run`), whose report (:meth:`Run.report`) the outcome ping carries to an
``agent`` monitor.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._config import check_key
from ._deadline import Deadline
from ._exceptions import ConfigurationError
from ._ping import Ping, Receipt, State
from ._redact import shown
from ._report import Reporting, Values, snapshot

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ._client import SteadyCron

log = logging.getLogger("steadycron")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
ClientSource = Callable[[], "SteadyCron"]


@attrs.frozen
class Run(Reporting):
    """One tracked run: the monitor key, the run id all its pings carry, and the report
    its outcome ping carries to an ``agent`` monitor.

    ``report`` and ``record_usage`` may be called from any thread or task of the run.
    """

    key: str
    run_id: str
    _report: Values = attrs.field(factory=dict, init=False, eq=False, repr=False)


class _Open:
    """A run between its start and its outcome.

    ``receipt`` is the start's (None: not known, because a coroutine stopped waiting for
    it at its deadline); ``pid`` is the process that opened the run.
    """

    __slots__ = ("client", "pid", "receipt", "run")

    def __init__(self, client: SteadyCron, run: Run, receipt: Receipt | None) -> None:
        self.client = client
        self.run = run
        self.receipt = receipt
        self.pid = os.getpid()

    def outcome_ping(self, state: State, message: str | None) -> Ping | None:
        """The outcome to send, or None when this process has nothing to say."""
        if self.receipt is not None and self.receipt.token is None:
            return None  # the start had nowhere to go: this run goes unpinged
        if os.getpid() != self.pid:
            return None  # a child forked inside the run: the parent reports it
        if self.client.closed:
            log.warning("outcome ping of %s skipped: its client was closed", shown(self.run.key))
            return None
        return Ping(self.run.key, state, message, self.run.run_id, snapshot(self.run._report))


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
        opened.client.send(ping)


# -- the async path -------------------------------------------------------------------


async def open_run_async(client: SteadyCron, key: str) -> _Open:
    """:func:`open_run` for a coroutine: the event loop never waits on the network.

    The deadline is taken here, when the job is called. If the caller is cancelled while
    the start is on its way, a fail follows it before the cancellation goes on (API.md
    §3: a run is closed once it is opened).
    """
    deadline = client.new_deadline()
    run, ping = _new_run(key)
    if client.never_blocks:
        return _Open(client, run, client.send(ping, deadline=deadline))
    from . import _offload

    start = _offload.submit(functools.partial(client.send, ping, deadline=deadline))
    try:
        receipt = await _offload.result(start, deadline)
    except ConfigurationError:
        raise
    except BaseException:
        fail = functools.partial(_fail_after, client, ping, start)
        later = Deadline(deadline.at + client.config.ping_timeout)
        await _offload.result(_offload.submit(fail), later)
        raise
    return _Open(client, run, receipt)


def _fail_after(client: SteadyCron, start: Ping, sending: Future[Receipt]) -> None:
    """Once *start* has been sent (or given up), follow it with a fail: its run was
    cancelled before its body began."""
    try:
        receipt = sending.result(timeout=client.config.ping_timeout + 1.0)
    except BaseException:  # never sent: nothing to close
        return
    if receipt.token is not None and not client.closed:
        client.send(start._replace(state="fail"), token=receipt.token)


async def close_run_async(opened: _Open, exc: BaseException | None) -> None:
    """:func:`close_run` for a coroutine: the outcome goes out even if the caller is
    cancelled while waiting for it."""
    state, message = _outcome(exc, opened.client.config.capture_errors)
    ping = opened.outcome_ping(state, message)
    if ping is None:
        return
    client = opened.client
    if client.never_blocks:
        client.send(ping)
        return
    from . import _offload

    deadline = client.new_deadline()
    send = functools.partial(client.send, ping, deadline=deadline)
    await _offload.result(_offload.submit(send), deadline)


#: The open runs of this thread or task, innermost last, each with the RunContext that
#: opened it (None: a ``@job`` call).
_open_runs: contextvars.ContextVar[tuple[tuple[RunContext | None, _Open], ...]] = (
    contextvars.ContextVar("steadycron_open_runs", default=())
)


def current_run() -> Run | None:
    """The innermost open run of this thread or asyncio task, of any client; None outside.

    A task started inside a run sees that run (tasks copy their context); a thread you
    start yourself does not: hand it the run instead (its report is thread-safe).
    """
    stack = _open_runs.get()
    return stack[-1][1].run if stack else None


def _enter(opened: _Open) -> contextvars.Token[tuple[tuple[RunContext | None, _Open], ...]]:
    """Make a ``@job`` call's run the current one while its body runs (until the token is
    reset, in the same thread or task)."""
    return _open_runs.set((*_open_runs.get(), (None, opened)))


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
                current = _enter(opened)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    _open_runs.reset(current)
                    await close_run_async(opened, exc)
                    raise
                _open_runs.reset(current)
                await close_run_async(opened, None)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            opened = open_run(client(), key)
            current = _enter(opened)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _open_runs.reset(current)
                close_run(opened, exc)
                raise
            _open_runs.reset(current)
            if result is not None and inspect.isawaitable(result):
                return _outcome_when_awaited(opened, result)
            close_run(opened, None)
            return result

        return run  # type: ignore[return-value]

    return decorate


async def _outcome_when_awaited(opened: _Open, awaitable: Awaitable[T]) -> T:
    """A plain function handed back an awaitable (a sync wrapper around an ``async def``):
    its run ends when that completes, the way it completes."""
    current = _enter(opened)
    try:
        result = await awaitable
    except BaseException as exc:
        _open_runs.reset(current)
        await close_run_async(opened, exc)
        raise
    _open_runs.reset(current)
    await close_run_async(opened, None)
    return result
