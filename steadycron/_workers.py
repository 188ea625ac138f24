"""Daemon threads that run blocking sends, so a caller can walk away at its deadline.

Socket timeouts bound each read, not a whole exchange: a name lookup can hang and a
response can drip in a byte at a time. The caller therefore waits on the work with a hard
bound instead of doing it. Threads start on first use (never at import), grow with
concurrent callers up to a cap, retire when idle, and are daemons so a hung lookup can
never hold up interpreter exit.

A worker stays busy until its send ends, also after its caller walked away; a host that
drips or hangs could hold every worker and starve pings to a healthy host. So at most
``per_host`` workers serve one host at a time; further sends to that host wait in its own
line (never in another host's) and are dropped unstarted once their deadline has passed.

What a caller touches is signal-safe: plain locks taken only in ``with`` statements and C
queues, never a ``threading.Condition`` (or a ``Future``, which holds one), whose
Python-level ``__enter__`` a signal handler's exception can interrupt with the lock taken.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._deadline import Deadline
from ._exceptions import TransportError, TransportTimeoutError
from ._forksafe import reset_after_fork

T = TypeVar("T")

MAX_THREADS = 32
#: A host that stops answering holds at most this many workers; the rest serve the other
#: host a client talks to (its API and its ping host).
MAX_THREADS_PER_HOST = 16


class NoThreadError(Exception):
    """No worker could take the job: none is idle and none can start (interpreter exit)."""


class NotStartedError(TransportTimeoutError):
    """The deadline passed before any worker began the send (all busy, or the machine
    too loaded to run one): nothing was asked of the host, so this says nothing about it."""


class JobError(Exception):
    """The job itself raised something other than a TransportError (kept as __cause__)."""


class _Job(Generic[T]):
    """One send: what to run, for which host, until when, and where its outcome goes."""

    __slots__ = ("deadline", "fn", "host", "outcome", "started")

    def __init__(self, fn: Callable[[], T], host: str, deadline: Deadline) -> None:
        self.fn = fn
        self.host = host
        self.deadline = deadline
        self.outcome: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self.started = False

    def run(self) -> None:
        if self.deadline.expired:  # its caller has gone: start nothing for it
            return
        self.started = True
        try:
            result: tuple[bool, Any] = (True, self.fn())
        except BaseException as exc:  # handed to the waiting caller
            result = (False, exc)
        self.outcome.put(result)
        del result  # nothing of a finished send lingers on an idle thread


class _Pool:
    """One generation of threads; closing or forking starts a new one."""

    def __init__(self, max_threads: int, per_host: int, idle_seconds: float) -> None:
        self.max_threads = max_threads
        self.per_host = per_host
        self.idle_seconds = idle_seconds
        self.queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.busy_by_host: collections.Counter[str] = collections.Counter()
        self.waiting_by_host: dict[str, collections.deque[_Job[Any]]] = {}
        self.threads: set[threading.Thread] = set()
        self.idle = 0
        self.closed = False

    def submit(self, job: _Job[Any]) -> None:
        """Hand *job* to a worker, or put it in its host's line when the host has its
        share of workers already."""
        start: threading.Thread | None = None
        with self.lock:
            if self.closed:
                raise NoThreadError
            if self.busy_by_host[job.host] >= self.per_host:
                self.waiting_by_host.setdefault(job.host, collections.deque()).append(job)
                return
            self.busy_by_host[job.host] += 1
            if self.idle or len(self.threads) >= self.max_threads:
                self.idle -= bool(self.idle)
                self.queue.put(job)
                return
            start = threading.Thread(target=self.serve, name="steadycron-send", daemon=True)
            self.threads.add(start)
        try:
            start.start()  # outside the lock: starting a thread runs Python code that waits
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            with self.lock:
                self.threads.discard(start)
                if not self.threads:
                    self.free(job.host)
                    raise NoThreadError from None
        self.queue.put(job)

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
            while job is not None:
                job.run()
                job = self.next_for(job.host)
            with self.lock:
                if self.closed:
                    self.threads.discard(threading.current_thread())
                    return
                self.idle += 1

    def next_for(self, host: str) -> _Job[Any] | None:
        """The next job waiting for *host* (this worker keeps the host's place), or None
        (the place is given up)."""
        with self.lock:
            waiting = self.waiting_by_host.get(host)
            while waiting:
                job = waiting.popleft()
                if not job.deadline.expired:
                    return job
            self.waiting_by_host.pop(host, None)
            self.free(host)
            return None

    def free(self, host: str) -> None:
        """Give up one of *host*'s places (the lock is held)."""
        if self.busy_by_host[host] > 1:
            self.busy_by_host[host] -= 1
        else:
            del self.busy_by_host[host]

    def shutdown(self, wait: float) -> None:
        with self.lock:
            self.closed = True
            threads = list(self.threads)
        for _ in threads:
            self.queue.put(None)
        for thread in threads:
            # A thread still in a send leaves when the send ends; idle ones leave at once.
            thread.join(timeout=wait / len(threads))


class Workers:
    """A small elastic pool of daemon threads, started on first use.

    Args:
        max_threads: the most threads it ever runs at once.
        per_host: the most threads busy with one host at once.
        idle_seconds: how long an idle thread waits for work before it leaves.
    """

    def __init__(
        self,
        *,
        max_threads: int = MAX_THREADS,
        per_host: int = MAX_THREADS_PER_HOST,
        idle_seconds: float = 30.0,
    ) -> None:
        self._settings = (max_threads, per_host, idle_seconds)
        self._pool = _Pool(*self._settings)
        reset_after_fork(self)

    def call(self, fn: Callable[[], T], *, deadline: Deadline, host: str) -> T:
        """Run *fn* on a worker and wait for it until *deadline*.

        Raises:
            TransportTimeoutError: *fn* had not returned in time; the deadline has passed,
                so the work sends nothing more. :class:`NotStartedError` when it had not
                even begun (its host's workers all busy, or the machine overloaded).
            TransportError: what *fn* raised.
            JobError: *fn* raised anything else (the exception is its ``__cause__``).
            NoThreadError: no thread can run *fn*; nothing was started.
            BaseException: whatever interrupted the wait (a signal handler's exception,
                ``KeyboardInterrupt``): it propagates, and the deadline is cut first so
                the abandoned work sends nothing more.
        """
        job = _Job(fn, host, deadline)
        self._pool.submit(job)
        try:
            done, outcome = job.outcome.get(timeout=deadline.remaining())
        except queue.Empty:
            if not job.started:
                raise NotStartedError("no worker began the send before the deadline") from None
            raise TransportTimeoutError("no answer before the ping deadline") from None
        except BaseException:
            deadline.cut()
            raise
        if done:
            return outcome  # type: ignore[no-any-return]
        if isinstance(outcome, TransportError):
            raise outcome
        raise JobError(type(outcome).__name__) from outcome

    def close(self, *, wait: float = 1.0) -> None:
        """Stop the threads; one stuck in a call nothing can interrupt (a hung name
        lookup) leaves as soon as that call returns."""
        pool, self._pool = self._pool, _Pool(*self._settings)
        pool.shutdown(wait)

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist here, and its locks may be held forever.
        self._pool = _Pool(*self._settings)
