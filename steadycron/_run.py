"""Tracked runs (``@job``, ``monitor()``) and manual pings (``Monitor``).

The client is looked up when a run starts, never at decoration time, so a decorator at
import time works with settings made later, and each call keeps its own run state: two
overlapping runs of one function never share a run id.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._config import check_key
from ._deadline import Deadline
from ._interrupts import from_outside

if TYPE_CHECKING:
    from ._client import State, SteadyCron

log = logging.getLogger("steadycron")

F = TypeVar("F", bound=Callable[..., Any])
ClientSource = Callable[[], "SteadyCron"]
#: An open run: the client it pings through, the run, and its token (None: unpinged).
_Open = tuple["SteadyCron", "Run", "str | None"]


@attrs.frozen
class Run:
    """One tracked run: the monitor key and the run id all its pings carry."""

    key: str
    run_id: str


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


_open_runs: contextvars.ContextVar[tuple[tuple[RunContext, _Open], ...]] = contextvars.ContextVar(
    "steadycron_open_runs", default=()
)


class RunContext:
    """Tracks one run per entry: start ping on entry, outcome ping on exit.

    Works with ``with`` and ``async with``; the async form pings on a worker thread so
    the event loop never waits on the network. Yields a :class:`Run`.
    """

    def __init__(self, client: ClientSource, key: str) -> None:
        self._client = client
        self._key = check_key(key)
        self._active: list[_Open] = []

    def __repr__(self) -> str:
        return f"RunContext(key={self._key!r})"

    def __enter__(self) -> Run:
        opened = self._start()
        self._push(opened)
        return opened[1]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(self._pop(), exc)

    async def __aenter__(self) -> Run:
        import asyncio

        opened = await asyncio.get_running_loop().run_in_executor(None, self._start)
        self._push(opened)
        return opened[1]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        opened = self._pop()
        await asyncio.get_running_loop().run_in_executor(None, self._finish, opened, exc)

    def _start(self) -> _Open:
        client = self._client()
        run = Run(self._key, uuid.uuid4().hex)
        config = client.config
        deadline = Deadline.after(config.ping_timeout)
        token = client.token_for(config, self._key, deadline)  # misconfiguration raises
        if token is not None:
            client.deliver(config, self._key, token, "start", None, run.run_id, deadline)
        return client, run, token

    def _finish(self, opened: _Open | None, exc: BaseException | None) -> None:
        if opened is None:
            return
        client, run, token = opened
        if token is None:
            return
        try:
            config = client.config
            state, message = _outcome(exc, config.capture_errors)
            deadline = Deadline.after(config.ping_timeout)
            client.deliver(config, self._key, token, state, message, run.run_id, deadline)
        except Exception as error:  # the job's own outcome must reach its caller untouched
            if from_outside(error):  # a signal handler's exception is not ours to swallow
                raise
            log.warning("outcome ping of %r skipped: %s", self._key, type(error).__name__)

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
        import inspect

        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@job cannot track generator function {fn.__qualname__}: its work runs "
                "after the call returns. Use `with steadycron.monitor(key):` inside it."
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with RunContext(client, key):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with RunContext(client, key):
                return fn(*args, **kwargs)

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
        client = self._client
        if client is None:
            from ._default import default_client

            client = default_client()
        client.send_ping(self.key, state, message, run_id=run_id)
