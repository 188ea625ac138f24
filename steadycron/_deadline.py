"""The one deadline of a ping: made once, handed down, read by everyone.

A ping's time budget (``ping_timeout``) covers its resolution, every attempt, every wait
between attempts and a transport's name lookup and connect. It is taken once, when the
ping starts, as a :class:`Deadline`; the resolver, the pinger, the worker threads and the
transports all read that same value. It is also the one thing that decides when an
exchange is abandoned: once :attr:`Deadline.expired` is true, nothing more is sent for
that ping (no connect is begun, no byte of a request is written), so a request that was
held up in a hung name lookup can never reach the server after the ping gave up on it.
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

    __slots__ = ("_clock", "_cut", "at")

    def __init__(self, at: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self._clock = clock
        self._cut = False

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline *seconds* from now."""
        return cls(clock() + seconds, clock=clock)

    def remaining(self) -> float:
        """Seconds left, never negative (0.0 once expired)."""
        if self._cut:
            return 0.0
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        """Whether the time is up: from then on nothing may be sent for this ping."""
        return self._cut or self._clock() >= self.at

    def cut(self) -> None:
        """End the time now: the caller has walked away (an interrupt arrived while it
        waited), so work still running for it must send nothing more."""
        self._cut = True

    def __repr__(self) -> str:
        state = "cut" if self._cut else f"{self.at - self._clock():.3f} s left"
        return f"Deadline({state})"
