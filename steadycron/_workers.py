"""Daemon threads that run blocking sends, so a caller can walk away at its deadline.

Socket timeouts bound each read, not a whole exchange: a name lookup can hang and a
response can drip in a byte at a time. The caller therefore waits on the work with a hard
bound instead of doing it. Threads start on first use (never at import), grow with
concurrent callers up to a cap, retire when idle, and are daemons so a hung lookup can
never hold up interpreter exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

from ._exceptions import TransportTimeoutError
from ._forksafe import reset_after_fork

T = TypeVar("T")
_Job = tuple["Future[Any]", Callable[[], Any]]


class _Pool:
    """One generation of threads; closing or forking starts a new one."""

    def __init__(self, max_threads: int, idle_seconds: float) -> None:
        self.max_threads = max_threads
        self.idle_seconds = idle_seconds
        self.queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        self.idle = 0

    def submit(self, job: _Job) -> None:
        self.queue.put(job)
        with self.lock:
            if self.idle:
                self.idle -= 1
            elif len(self.threads) < self.max_threads:
                thread = threading.Thread(target=self.serve, name="steadycron-send", daemon=True)
                self.threads.add(thread)
                thread.start()

    def serve(self) -> None:
        while True:
            try:
                job = self.queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self.lock:
                    if self.queue.empty() and self.idle:
                        self.idle -= 1
                        self.threads.discard(threading.current_thread())
                        return
                continue
            if job is None:
                return
            future, fn = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the waiting caller
                    future.set_exception(exc)
            with self.lock:
                self.idle += 1

    def shutdown(self, wait: float) -> None:
        with self.lock:
            threads = list(self.threads)
        for _ in threads:
            self.queue.put(None)
        for thread in threads:
            thread.join(timeout=wait / len(threads))


class Workers:
    """A small elastic pool of daemon threads, started on first use."""

    def __init__(self, *, max_threads: int = 32, idle_seconds: float = 30.0) -> None:
        self._max_threads = max_threads
        self._idle_seconds = idle_seconds
        self._pool = _Pool(max_threads, idle_seconds)
        reset_after_fork(self)

    def call(self, fn: Callable[[], T], *, timeout: float) -> T:
        """Run *fn* on a worker; raise TransportTimeoutError if it has not returned in time."""
        future: Future[T] = Future()
        self._pool.submit((future, fn))
        try:
            return future.result(timeout=timeout)
        except FutureTimeoutError:
            future.cancel()
            raise TransportTimeoutError("no answer before the ping deadline") from None

    def close(self, *, wait: float = 1.0) -> None:
        """Stop the threads; one stuck in a hung call is left to finish on its own."""
        pool, self._pool = self._pool, _Pool(self._max_threads, self._idle_seconds)
        pool.shutdown(wait)

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist here, and its locks may be held forever.
        self._pool = _Pool(self._max_threads, self._idle_seconds)
