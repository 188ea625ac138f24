"""Ending the socket work of an exchange when its ping's deadline passes.

Socket timeouts bound each read, not a whole exchange: a peer that drips its answer (or
its side of a TLS handshake) a byte at a time keeps a reader busy for as long as it likes.
Every exchange of the SDK's network transports is therefore guarded: its socket is handed
to one daemon thread that sleeps until the earliest registered deadline and shuts overdue
sockets down, so the blocked read returns at once. On the caller's thread (a send over an
open connection) that is what bounds the call; on a worker thread, whose caller has
already walked away at the deadline, it frees the worker instead of leaving it to the
peer's mercy. Registering a deadline wakes that thread only when it is earlier than the
one it already sleeps towards, so a steady stream of pings costs no wake-ups.

What no socket shutdown can end (a hung name lookup) is left to the worker threads, whose
callers stop waiting at the deadline; the guard then refuses to let the late socket be
used (:meth:`Watchdog.watch`), so nothing is sent after the deadline.
"""

from __future__ import annotations

import contextlib
import math
import queue
import socket
import threading
import time

from .._deadline import Deadline
from .._forksafe import reset_after_fork

#: How long the watching thread waits for a new exchange before it leaves.
IDLE_SECONDS = 2.0


class Guard:
    """One exchange under watch: its deadline, its socket once known, whether it fired."""

    __slots__ = ("deadline", "fired", "sock")

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.fired = False


def _interrupt(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: it wakes the reader without touching the
    # TLS state that the reader's thread owns. An already closed socket needs nothing.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """Interrupts the sockets of exchanges that outlive their deadline.

    What callers touch is signal-safe: a plain lock, only ever taken in a ``with`` statement
    (a signal handler's exception can then never leave it held), and a C queue to wake the
    watching thread; no ``threading.Condition``, whose Python-level ``__enter__`` can be
    interrupted after it has taken its lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._guards: set[Guard] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        reset_after_fork(self)

    def guard(self, deadline: Deadline) -> Guard:
        """Start watching an exchange that must end by *deadline*."""
        guard = Guard(deadline)
        with self._lock:
            self._guards.add(guard)
            start = self._thread is None
            if start:
                self._thread = threading.Thread(
                    target=self._watch, name="steadycron-deadline", daemon=True
                )
            wake = not start and deadline.at < self._wake_at
        if start:
            self._start()
        elif wake:
            self._wake.put(None)
        return guard

    def _start(self) -> None:
        thread = self._thread
        try:
            if thread is not None:
                thread.start()
        except RuntimeError:
            # At interpreter exit no thread can start (Python 3.12+): the send then runs
            # on its caller's thread bounded by socket timeouts alone.
            with self._lock:
                if self._thread is thread:
                    self._thread = None

    def watch(self, guard: Guard, sock: socket.socket) -> bool:
        """Tell the watchdog which socket *guard*'s exchange uses; False when the
        deadline has passed and nothing more may be sent on it."""
        with self._lock:
            guard.sock = sock
            return not (guard.fired or guard.deadline.expired)

    def release(self, guard: Guard) -> bool:
        """Stop watching; True if the exchange ended before its deadline."""
        with self._lock:
            self._guards.discard(guard)
            return not guard.fired

    def _watch(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._lock:
                now = time.monotonic()
                for guard in [guard for guard in self._guards if guard.deadline.at <= now]:
                    guard.fired = True
                    self._guards.discard(guard)
                    if guard.sock is not None:
                        _interrupt(guard.sock)
                if self._guards:
                    idle_since = now
                elif now - idle_since >= IDLE_SECONDS:
                    # No thread outlives the pings that needed it (guard() starts a new one).
                    self._thread = None
                    return
                self._wake_at = min((guard.deadline.at for guard in self._guards), default=math.inf)
                sleep = min(self._wake_at - now, IDLE_SECONDS)
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=max(sleep, 0.0))

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and its lock may be held forever.
        self._lock = threading.Lock()
        self._wake = queue.SimpleQueue()
        self._guards = set()
        self._thread = None
        self._wake_at = math.inf


WATCHDOG = Watchdog()
