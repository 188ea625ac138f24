"""Tracked runs (``@job``, ``monitor()``) and manual pings (``Monitor``).

The client is looked up when a run starts, never at decoration time, so a decorator at
import time works with settings made later, and each call keeps its own run state: two
overlapping runs of one function never share a run id.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._config import check_key
from ._report import ReportTally

if TYPE_CHECKING:
    from ._client import State, SteadyCron

log = logging.getLogger("steadycron")

F = TypeVar("F", bound=Callable[..., Any])
ClientSource = Callable[[], "SteadyCron"]
#: An open run: the client it pings through, the run, and its token (None: unpinged).
_Open = tuple["SteadyCron", "Run", "str | None"]


@attrs.frozen
class Run:
    """One tracked run: the monitor key, the run id all its pings carry, and the report
    its outcome ping carries to an ``agent`` monitor.

    ``report`` and ``record_usage`` may be called from any thread or task of the run.
    """

    key: str
    run_id: str
    _tally: ReportTally = attrs.field(factory=ReportTally, init=False, eq=False, repr=False)

    def report(
        self,
        *,
        items: int | None = None,
        output_chars: int | None = None,
        steps: int | None = None,
        tool_calls: int | None = None,
        model: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        cost_usd: float | Decimal | None = None,
        trace_url: str | None = None,
        summary: str | None = None,
    ) -> None:
        """Add to the run's report: counts and cost add up across calls, text replaces.

        Counts are non-negative ints, ``cost_usd`` a non-negative number of dollars
        (float or Decimal), the rest str; None leaves a field as it is.

        Raises:
            TypeError, ValueError: a value of the wrong type, negative, or not finite.
        """
        self._tally.add(
            {
                "items": items,
                "output_chars": output_chars,
                "steps": steps,
                "tool_calls": tool_calls,
                "model": model,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost_usd": cost_usd,
                "trace_url": trace_url,
                "summary": summary,
            }
        )

    def record_usage(self, response: object) -> None:
        """Add the token counts of a model response to the report (and its model name,
        when none was reported yet).

        Reads ``response.usage`` or ``response["usage"]``: OpenAI's ``prompt_tokens`` /
        ``completion_tokens`` or ``input_tokens`` / ``output_tokens``, Anthropic's
        ``input_tokens`` / ``output_tokens`` (its prompt-cache reads and writes count as
        tokens in). No vendor library is needed; what cannot be read is skipped (DEBUG
        log), never raised.
        """
        self._tally.add_usage(response)


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


def current_run() -> Run | None:
    """The innermost open run of this thread or asyncio task, of any client; None outside.

    A task started inside a run sees that run (tasks copy their context); a thread you
    start yourself does not: hand it the run instead (its report is thread-safe).
    """
    stack = _open_runs.get()
    return stack[-1][1][1] if stack else None


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
        deadline = time.monotonic() + config.ping_timeout
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
            deadline = time.monotonic() + config.ping_timeout
            report = run._tally.values()
            client.deliver(config, self._key, token, state, message, run.run_id, deadline, report)
        except Exception as error:  # the job's own outcome must reach its caller untouched
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
        self,
        state: State = "success",
        message: str | None = None,
        *,
        run_id: str | None = None,
        report: Mapping[str, object] | None = None,
    ) -> None:
        """Send one ping; raises only for misuse or misconfiguration, never for delivery.

        *report* (the fields of :meth:`Run.report`, by name) goes with a success or fail
        ping of an ``agent`` monitor; pair it with a start ping of the same *run_id*.
        """
        client = self._client
        if client is None:
            from ._default import default_client

            client = default_client()
        client.send_ping(self.key, state, message, run_id=run_id, report=report)
