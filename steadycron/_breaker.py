"""The circuit breaker: an outage of a host is paid for once, not by every ping.

Without it, every ping to a host that is down spends its whole ``ping_timeout`` retrying,
and a tracked run (a start and an outcome ping) costs twice that. After an exchange with
a host ends without any HTTP answer (refused, name lookup failure, TLS failure, nothing
before the deadline), exchanges with that host are not attempted for a cool-down: about
10 s at first, doubling with jitter up to about 5 min while the host stays down. Each one
held back returns at once with the reason, which the caller logs as usual. When the
cool-down is over one exchange probes the host (the others are still held back while it
runs); any HTTP answer, an error status included, closes the breaker. 5xx and 429 answers
never open it: the host is up, and the pinger retries them inside the budget.

Each client has its own breaker (in its pinger), keyed by scheme, host and port.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from ._forksafe import reset_after_fork

FIRST_COOLDOWN_SECONDS = 10.0
MAX_COOLDOWN_SECONDS = 300.0
#: Each cool-down is its nominal length times a factor drawn from 1 ± this, so that the
#: processes of a fleet that saw the same outage do not all probe at the same moment.
JITTER = 0.1


class Admission:
    """Leave to start an exchange; the probe of a host that was down, or an ordinary one."""

    __slots__ = ("probe",)

    def __init__(self, probe: bool) -> None:
        self.probe = probe


#: Shared by every exchange with a host that is not known to be down.
PASS = Admission(probe=False)


class _Outage:
    __slots__ = ("cause", "cooldown", "probing", "since", "until")

    def __init__(self, cause: str, cooldown: float, since: float, until: float) -> None:
        self.cause = cause
        self.cooldown = cooldown
        self.since = since
        self.until = until
        self.probing = False


class Breaker:
    """Which hosts are down, and until when nothing is attempted with them.

    Args:
        first_cooldown: seconds nothing is attempted after a host first fails to answer.
        max_cooldown: the longest cool-down, however long the host stays down.
        clock: monotonic clock (a fake one in tests of the arithmetic).
        jitter: returns a factor near 1 for each cool-down.
    """

    def __init__(
        self,
        *,
        first_cooldown: float = FIRST_COOLDOWN_SECONDS,
        max_cooldown: float = MAX_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self._first = first_cooldown
        self._max = max_cooldown
        self._clock = clock
        self._jitter = jitter or (lambda: random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311
        #: The hosts known to be down (or that were, until an answer comes): empty, the
        #: usual case, means nothing to decide for any exchange.
        self.down: dict[str, _Outage] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def admit(self, host: str) -> Admission | str:
        """Leave for an exchange with *host*, or why it is held back."""
        if host not in self.down:  # the common case: no lock, nothing to decide
            return PASS
        with self._lock:
            outage = self.down.get(host)
            if outage is None:
                return PASS
            now = self._clock()
            if now >= outage.until and not outage.probing:
                outage.probing = True
                return Admission(probe=True)
            if outage.probing:
                wait = "until a probe now under way has an answer"
            else:
                wait = f"for another {outage.until - now:.1f} s"
            return (
                f"not attempted: {host} gave no answer {now - outage.since:.1f} s ago "
                f"({outage.cause}); nothing is sent to it {wait}"
            )

    def settle(self, host: str, admission: Admission, answered: bool | None, cause: str) -> None:
        """Learn from an exchange that was admitted.

        Args:
            answered: True if any HTTP answer came back, False if attempts were made and
                none was answered, None if the exchange tells nothing about the host (no
                attempt was made, or the caller was interrupted).
            cause: why no answer came, in words safe to log.
        """
        if answered is None:
            if admission.probe:
                with self._lock:
                    outage = self.down.get(host)
                    if outage is not None:
                        outage.probing = False
            return
        if answered:
            if host in self.down:
                with self._lock:
                    self.down.pop(host, None)
            return
        with self._lock:
            outage = self.down.get(host)
            now = self._clock()
            if outage is None:
                cooldown = self._first
            elif admission.probe:
                cooldown = min(self._max, outage.cooldown * 2)
            else:
                return  # opened by another exchange meanwhile: its cool-down stands
            until = now + min(self._max, cooldown * self._jitter())
            self.down[host] = _Outage(cause, cooldown, now, until)

    def forget(self) -> None:
        """Forget every outage (the way to the hosts has changed: a new transport)."""
        with self._lock:
            self.down.clear()

    def _after_fork_in_child(self) -> None:
        # The parent's lock may be held forever here, and its probes will never report.
        self._lock = threading.Lock()
        for outage in self.down.values():
            outage.probing = False
