"""Reporting a run that is being stopped, in time: what a Kubernetes pod needs.

When Kubernetes stops a pod (``activeDeadlineSeconds``, an eviction, a node drain) it
sends SIGTERM, waits ``terminationGracePeriodSeconds`` (30 s unless the pod says
otherwise), then SIGKILLs everything. ``steadycron run`` passes the SIGTERM on to the
command and waits for it; if the command is still running when only the time of the
fail ping (``ping_timeout``) plus a second of the grace period is left, the run is
reported as failed right then, because after the SIGKILL nothing can be sent. The
command keeps the rest of the grace period to finish.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable

#: Kubernetes' default terminationGracePeriodSeconds.
DEFAULT_GRACE_PERIOD = 30.0
GRACE_PERIOD_ENV = "STEADYCRON_GRACE_PERIOD"
#: Kept back from the grace period beside the fail ping's own budget.
MARGIN = 1.0


def grace_period(given: float | None) -> float:
    """The grace period in seconds: the option, else ``STEADYCRON_GRACE_PERIOD``, else 30.

    Raises:
        ValueError: the value is not a finite number of seconds >= 0.
    """
    source = "--grace-period"
    value: object = given
    if value is None:
        raw = os.environ.get(GRACE_PERIOD_ENV, "").strip()
        if not raw:
            return DEFAULT_GRACE_PERIOD
        source = GRACE_PERIOD_ENV
        try:
            value = float(raw)
        except ValueError:
            value = raw
    if not isinstance(value, float | int) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{source} must be a number of seconds >= 0 (the pod's "
            f"terminationGracePeriodSeconds), not {value!r}"
        )
    return float(value)


class TerminationWatch:
    """Fails the run early when the command outlives the part of the grace period it has.

    Args:
        wait: seconds after the first stopping signal before reporting, if the command
            has not ended by then.
        report: sends the fail ping; called with the signal's number, at most once.
    """

    def __init__(self, wait: float, report: Callable[[int], object]) -> None:
        self._wait = wait
        self._report = report
        # Reentrant: the signal handler may run while this thread holds it in finished().
        self._changed = threading.Condition(threading.RLock())
        self._signal: int | None = None
        self._finished = False
        self._reported = False
        self._thread = threading.Thread(target=self._watch, name="steadycron-grace", daemon=True)
        self._thread.start()

    @property
    def signal(self) -> int | None:
        """The first stopping signal received, if any."""
        return self._signal

    def signalled(self, number: int) -> None:
        """Note a stopping signal (called from the signal handler)."""
        with self._changed:
            if self._signal is None:
                self._signal = number
                self._changed.notify_all()

    def finished(self) -> bool:
        """The command has ended; return whether its run was already reported."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()
        self._thread.join()
        return self._reported

    def _watch(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._signal is not None or self._finished)
            if self._finished or self._signal is None:
                return
            if self._changed.wait_for(lambda: self._finished, timeout=self._wait):
                return
            self._reported = True
            number = self._signal
        self._report(number)


def report_wait(grace: float, ping_timeout: float) -> float:
    """How long the command gets before its run is reported: what the ping leaves of grace."""
    return max(0.0, grace - ping_timeout - MARGIN)
