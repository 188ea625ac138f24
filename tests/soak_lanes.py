"""The soak's main-thread lane: work that only the main thread can do, run beside the job
threads while the storm goes on.

- Signals during pings: tracked runs whose ``SIGALRM`` handler raises the application's
  own ``JobTimeout`` at a random moment (signal handlers run on the main thread only). The
  timeout must reach the caller at once, whether it lands in a ping or in the job.
- Forks during the trust-store load: a fresh HTTPS client starts its first ping (which
  reads a CA bundle of the size of a system store) on another thread, and the process
  forks a few milliseconds later. The child must ping over HTTPS, with the client it
  inherited and with a new one.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable
from types import FrameType

import attrs

from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import Urllib3Transport
from steadycron.transports._urllib3_pool import _trust_to_load

#: A forked child that has not exited by then is hung: it is killed and counted.
CHILD_SECONDS = 10.0


class JobTimeout(Exception):
    """What the application's SIGALRM handler raises."""


@attrs.define
class SignalTally:
    jobs: int = 0
    fired: int = 0
    surfaced: int = 0
    during_pings: int = 0
    swallowed: int = 0
    worst_latency_in_pings: float = 0.0


def _raised_in_a_ping(error: BaseException) -> bool:
    """Whether *error* was raised while the SDK was sending (a frame of its pinger)."""
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__") == "steadycron._pinger":
            return True
        traceback = traceback.tb_next
    return False


@attrs.define
class ForkTally:
    forks: int = 0
    during_trust_load: int = 0
    children_failed: int = 0
    children_hung: int = 0


class MainLane:
    """Alternates signal-interrupted runs and forks until told to stop.

    Args:
        job: a tracked run (its body sleeps a little, its pings take a while) to
            interrupt with alarms.
        alarm_within: alarms go off at a random moment up to this many seconds in.
        https_url: a healthy HTTPS SteadyCron stand-in for the forks' pings.
        ca_bundle: the trust store the forks' clients read (system store plus test CA).
        key, token: a monitor key and its direct token on that stand-in.
    """

    def __init__(
        self,
        job: Callable[[], object],
        alarm_within: float,
        https_url: str,
        ca_bundle: str,
        key: str,
        token: str,
        seed: int,
    ) -> None:
        self._job = job
        self._alarm_within = alarm_within
        self._config = Config(ping_url=https_url, monitors={key: token}, ping_timeout=2.0)
        self._ca_bundle = ca_bundle
        self._key = key
        self._random = random.Random(seed)
        self.signals = SignalTally()
        self.forks = ForkTally()

    def run_until(self, done: Callable[[], bool]) -> None:
        """Take turns (four interrupted runs, then a fork) until *done* says so."""
        turns = [*[self.interrupted_run] * 4, self.fork_during_trust_load]
        while True:
            for turn in turns:
                if done():
                    return
                turn()

    def interrupted_run(self) -> None:
        fired: list[float] = []

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            fired.append(time.monotonic())
            raise JobTimeout

        previous = signal.signal(signal.SIGALRM, on_alarm)
        surfaced_at = None
        in_ping = False
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, self._random.uniform(0, self._alarm_within))
                self._job()
                signal.setitimer(signal.ITIMER_REAL, 0)
            except JobTimeout as timeout:
                surfaced_at = time.monotonic()
                in_ping = _raised_in_a_ping(timeout)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except JobTimeout:  # went off just as the run ended: it still surfaced
            surfaced_at = time.monotonic()
        finally:
            signal.signal(signal.SIGALRM, previous)
        tally = self.signals
        tally.jobs += 1
        if fired:
            tally.fired += 1
            if surfaced_at is None:
                tally.swallowed += 1
            else:
                tally.surfaced += 1
                if in_ping:  # (one that lands in the job itself waits for the fail ping)
                    tally.during_pings += 1
                    latency = surfaced_at - fired[0]
                    tally.worst_latency_in_pings = max(tally.worst_latency_in_pings, latency)

    def fork_during_trust_load(self) -> None:
        client = self._client()
        first = threading.Thread(target=client.send, args=(Ping(self._key, "start"),))
        first.start()
        time.sleep(self._random.uniform(0, 0.02))
        context = client.transport._ssl_context  # type: ignore[attr-defined]
        loading = context is not None and context in _trust_to_load
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover -- the child, which never returns to pytest
            status = 1
            try:
                with self._client() as fresh:
                    ping = Ping(self._key, "success")
                    delivered = client.send(ping).delivered and fresh.send(ping).delivered
                    status = 0 if delivered else 1
            finally:
                os._exit(status)
        code = self._wait(pid)
        first.join(10)
        client.close()
        tally = self.forks
        tally.forks += 1
        tally.during_trust_load += loading
        if code is None:
            tally.children_hung += 1
        elif code != 0:
            tally.children_failed += 1

    def _client(self) -> SteadyCron:
        return SteadyCron(self._config, transport=Urllib3Transport(ca_certs=self._ca_bundle))

    @staticmethod
    def _wait(pid: int) -> int | None:
        end = time.monotonic() + CHILD_SECONDS
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
