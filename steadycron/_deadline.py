"""The one deadline of a ping: made once, handed down, read by everyone.

A ping's time budget (``ping_timeout``) covers its resolution, every attempt, every wait
between attempts and a transport's name lookup and connect. It is taken once, when the
ping starts, as a :class:`Deadline`; the resolver, the pinger, the worker threads and the
transports all read that same value. It is also the one thing that decides when an
exchange is abandoned: once :attr:`Deadline.expired` is true, nothing more is sent for
that ping (no connect is begun, no byte of a request is written), so a request that was
held up in a hung name lookup can never reach the server after the ping gave up on it.

Because every write of a request first asks the deadline (:meth:`Deadline.may_write`),
the deadline also knows whether the server may have seen the request: a run whose start
ping is interrupted must be closed with a fail only if its start may have gone out.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """The moment a ping's time is up, on a monotonic clock.

    Args:
        at: when the time is up, on *clock*.
        clock: the monotonic clock it is read with (a fake one in tests).
    """

    __slots__ = ("_clock", "_cut", "_first", "at")

    def __init__(self, at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self._clock = clock
        self._cut = False
        # Which came first, a write or the cut: dict.setdefault decides it atomically, so
        # no lock is needed (and none can be left held by a signal handler's exception).
        self._first: dict[str, str] = {}

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline *seconds* from now."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative (0.0 once expired)."""
        left = 0.0 if self._cut else self.at - self._clock()
        return left if left > 0.0 else 0.0

    @property
    def expired(self) -> bool:
        """Whether the time is up: from then on nothing may be sent for this ping."""
        return self._cut or self._clock() >= self.at

    def may_write(self) -> bool:
        """Asked before each write of the ping's request: False once the time is up (write
        nothing); True otherwise, and from then on the request counts as sent."""
        if self._cut or self._clock() >= self.at:
            return False
        return self._first.setdefault("event", "write") == "write"

    def cut(self) -> bool:
        """End the time now: the caller has walked away (an interrupt arrived while it
        waited), so work still running for it sends nothing more. Returns whether a
        request of the ping may have reached the server before that."""
        self._cut = True
        return self._first.setdefault("event", "cut") == "write"

    def __repr__(self) -> str:
        state = "cut" if self._cut else f"{self.at - self._clock():.3f} s left"
        return f"Deadline({state})"
