"""Ending an exchange that runs on the caller's thread when its deadline passes.

On a connection that is already open nothing can hang where a socket cannot be
interrupted: there is no name lookup and no connect. What can still stall (a peer that
never answers, or drips its answer) is cut short here: one daemon thread sleeps until the
earliest registered deadline and shuts the overdue socket down, so the caller's blocked
read returns at once. Registering a deadline wakes that thread only when it is earlier
than the one it already sleeps towards, so a steady stream of pings costs no wake-ups.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time

from .._forksafe import reset_after_fork

#: How long the watching thread waits for a new exchange before it leaves.
IDLE_SECONDS = 2.0


class Guard:
    """One exchange under watch: its deadline, its socket once known, whether it fired."""

    __slots__ = ("deadline", "fired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.fired = False


def _interrupt(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: it wakes the reader without touching the
    # TLS state that the reader's thread owns. An already closed socket needs nothing.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """Interrupts the sockets of exchanges that outlive their deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._guards: set[Guard] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        reset_after_fork(self)

    def guard(self, deadline: float) -> Guard:
        """Start watching an exchange that must end by *deadline* (``time.monotonic``)."""
        guard = Guard(deadline)
        with self._condition:
            self._guards.add(guard)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="steadycron-deadline", daemon=True
                )
                self._thread.start()
            elif deadline < self._wake_at:
                self._condition.notify()
        return guard

    def watch(self, guard: Guard, sock: socket.socket) -> bool:
        """Tell the watchdog which socket *guard*'s exchange reads; False if already late."""
        with self._condition:
            guard.sock = sock
            return not guard.fired

    def release(self, guard: Guard) -> bool:
        """Stop watching; True if the exchange ended before its deadline."""
        with self._condition:
            self._guards.discard(guard)
            return not guard.fired

    def _watch(self) -> None:
        condition = self._condition
        with condition:
            while True:
                now = time.monotonic()
                for guard in [guard for guard in self._guards if guard.deadline <= now]:
                    guard.fired = True
                    self._guards.discard(guard)
                    if guard.sock is not None:
                        _interrupt(guard.sock)
                self._wake_at = min((guard.deadline for guard in self._guards), default=math.inf)
                if self._wake_at != math.inf:
                    condition.wait(self._wake_at - now)
                elif not condition.wait(IDLE_SECONDS) and not self._guards:
                    # No thread outlives the pings that needed it (guard() starts a new one).
                    self._thread = None
                    return

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and its lock may be held forever.
        self._condition = threading.Condition(threading.Lock())
        self._guards = set()
        self._thread = None
        self._wake_at = math.inf


WATCHDOG = Watchdog()
