"""Manual pings: ``Monitor(key).ping(...)``, and ``Monitor.start()`` for a run opened and
ended by hand, paired by its run id without the caller handling ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._config import check_key
from ._ping import Ping, State
from ._redact import shown
from ._report import Reporting, snapshot
from ._run import _Open, open_run

if TYPE_CHECKING:
    from ._client import SteadyCron


class ManualRun(Reporting):
    """A run opened by :meth:`Monitor.start`: end it once, with :meth:`success` or
    :meth:`fail`; both pings carry its ``run_id``, as the start did, and the outcome the
    run's report (:meth:`report`, :meth:`record_usage`)."""

    def __init__(self, opened: _Open) -> None:
        self._opened = opened
        self._ended: State | None = None
        self._report = opened.run._report  # the run's own: the outcome carries it

    def __repr__(self) -> str:
        return f"ManualRun(key={self.key!r}, run_id={self.run_id!r}, ended={self._ended!r})"

    @property
    def key(self) -> str:
        return self._opened.run.key

    @property
    def run_id(self) -> str:
        return self._opened.run.run_id

    def success(self, message: str | None = None) -> None:
        """End the run as a success (*message* is shown with the ping)."""
        self._end("success", message)

    def fail(self, message: str | None = None) -> None:
        """End the run as a failure (*message* says why)."""
        self._end("fail", message)

    def _end(self, state: State, message: str | None) -> None:
        Ping.checked(self.key, state, message)  # misuse raises before anything is sent
        if self._ended is not None:
            raise RuntimeError(
                f"run {self.run_id} of {shown(self.key)} already ended with {self._ended!r}"
            )
        self._ended = state
        opened = self._opened
        if opened.receipt is not None and opened.receipt.token is None:
            return  # its start had nowhere to go: the run goes unpinged, as a tracked one
        report = snapshot(opened.run._report)
        opened.client.send(Ping(self.key, state, message, self.run_id, report))


class Monitor:
    """Manual pings for one monitor key.

    Args:
        key: the monitor key, as declared in the monitor manifest.
        client: the client to ping through; the default client (looked up at each ping)
            when omitted.
    """

    def __init__(self, key: str, *, client: SteadyCron | None = None) -> None:
        self.key = check_key(key)
        self._client = client

    def __repr__(self) -> str:
        return f"Monitor(key={self.key!r})"

    def ping(
        self,
        state: State = "success",
        message: str | None = None,
        *,
        run_id: str | None = None,
        report: Mapping[str, object] | None = None,
    ) -> None:
        """Send one ping; raises only for misuse or misconfiguration, never for delivery.

        *report* (the fields of :meth:`Run.report`, by name) goes with a success or fail
        ping of an ``agent`` monitor; pair it with a start ping of the same *run_id*.
        """
        self._pick_client().send(Ping.checked(self.key, state, message, run_id, report))

    def start(self) -> ManualRun:
        """Send a start ping with a fresh run id, and return the run to end with
        ``success()`` or ``fail()``: start and outcome are paired without handling ids."""
        return ManualRun(open_run(self._pick_client(), self.key))

    def _pick_client(self) -> SteadyCron:
        if self._client is not None:
            return self._client
        # Through the package, where users find the default client too: this module sits
        # below the client and its default holder, and imports neither.
        import steadycron

        return steadycron.default_client()
