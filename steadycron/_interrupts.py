"""Telling an exchange's own trouble from an exception raised into the caller from outside.

A ping swallows what goes wrong with its own exchange, and nothing else (API.md §5). On a
worker thread the two never mix: what the send raised arrives stored in its future, and
whatever interrupts the caller's wait is from outside. On the caller's thread (an
in-memory transport, a send over an open connection, a send at interpreter exit) they
can: ``KeyboardInterrupt`` and ``SystemExit`` are no ``Exception`` and pass every handler
by themselves, but a signal handler may raise an ordinary exception (a ``SIGALRM`` job
timeout) in the middle of the send. Python runs signal handlers on the main thread only,
as a call from whatever frame was running, so such an exception carries the handler's
frame in its traceback: that is how it is recognised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import CodeType
from typing import Any


def from_outside(exc: BaseException) -> bool:
    """Whether *exc* was raised into the caller rather than by the work it was doing:
    anything that is no ``Exception``, or an exception out of a Python signal handler."""
    if not isinstance(exc, Exception):
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    handlers = _signal_handler_code()
    if not handlers:
        return False
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code in handlers:
            return True
        traceback = traceback.tb_next
    return False


def _signal_handler_code() -> set[CodeType]:
    """The code objects of the Python functions installed as signal handlers now."""
    import signal

    found: set[CodeType] = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):  # a signal this platform lists but cannot query
            continue
        code = _code_of(handler)
        if code is not None:
            found.add(code)
    return found


def _code_of(handler: object) -> CodeType | None:
    """The code a handler runs: a function, a bound method, a partial, a callable object."""
    for _ in range(8):  # partials of partials end somewhere
        function: Any = getattr(handler, "__func__", handler)
        code = getattr(function, "__code__", None)
        if isinstance(code, CodeType):
            return code
        inner = getattr(handler, "func", None)  # functools.partial
        if inner is not None:
            handler = inner
            continue
        call: Callable[..., Any] | None = getattr(type(handler), "__call__", None)  # noqa: B004
        code = getattr(call, "__code__", None)
        return code if isinstance(code, CodeType) else None
    return None
