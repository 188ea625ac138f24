"""Blocking work for coroutines, on threads of our own.

``loop.run_in_executor(None, ...)`` would queue a ping behind whatever the application
keeps in the loop's default executor, where no deadline can reach it (API.md §3: the
bound holds whatever the application does with that executor), and it refuses work once
the interpreter shuts down. Here every call gets a thread at once: an idle one if there
is one, else a new daemon thread. Each call is bounded by its ping's deadline, so threads
never pile up for long, and idle ones leave after a few seconds. When no thread can start
(an ``atexit`` handler on Python 3.12 and later), the call runs on the caller's thread,
still within its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ._forksafe import reset_after_fork

T = TypeVar("T")
_Job = tuple["Future[Any]", Callable[[], Any]]

#: How long an idle thread waits for more work before it leaves.
IDLE_SECONDS = 2.0
#: How much later than its deadline a coroutine still waits for a call's thread to report.
SCHEDULING_GRACE_SECONDS = 0.05


class _Threads:
    """Daemon threads without a cap: one per call in flight, reused while they idle."""

    def __init__(self) -> None:
        self._after_fork_in_child()
        reset_after_fork(self)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, fn))
        with self._lock:
            if self._idle:
                self._idle -= 1
                return future
        try:
            threading.Thread(target=self._serve, name="steadycron-async", daemon=True).start()
        except RuntimeError:  # no new thread at interpreter shutdown (3.12+)
            if future.cancel():  # still queued: nobody else will run it, so run it here
                return _run_here(fn)
        return future

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty() and self._idle:
                        self._idle -= 1
                        return
                continue
            future, fn = job
            if future.set_running_or_notify_cancel():
                _settle(future, fn)
            del job, future, fn  # an idle thread holds on to nothing
            with self._lock:
                self._idle += 1

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist in a child, and its lock may be held forever.
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0


def _settle(future: Future[T], fn: Callable[[], T]) -> None:
    try:
        future.set_result(fn())
    except BaseException as exc:  # handed to whoever waits for the result
        future.set_exception(exc)


def _run_here(fn: Callable[[], T]) -> Future[T]:
    future: Future[T] = Future()
    future.set_running_or_notify_cancel()
    _settle(future, fn)
    return future


_threads: _Threads | None = None
_threads_lock = threading.Lock()


def submit(fn: Callable[[], T]) -> Future[T]:
    """Start *fn* on a thread of its own (or, when none can start, run it here)."""
    global _threads
    if _threads is None:
        with _threads_lock:
            if _threads is None:
                _threads = _Threads()
    return _threads.submit(fn)


async def result(future: Future[T], deadline: float) -> T | None:
    """*future*'s result, or None when its deadline passed first (the work goes on).

    Cancelling the awaiting task leaves the work running too: what was begun is not
    abandoned half-way. Errors of the work are raised here.
    """
    if not future.done():
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed after walking away
                loop.call_soon_threadsafe(_set_done, waiter)

        future.add_done_callback(wake)
        timeout = max(0.0, deadline - time.monotonic()) + SCHEDULING_GRACE_SECONDS
        await asyncio.wait([waiter], timeout=timeout)
        if not future.done():
            return None
    return future.result()


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
