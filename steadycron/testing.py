"""See what your jobs ping, in your own unit tests, without a network.

::

    from steadycron.testing import record

    with record() as pings:
        backup()
    assert pings.states("nightly-db-backup") == ["start", "success"]
    assert pings.last_run("nightly-db-backup").outcome == "success"

With pytest, the ``steadycron_recorder`` fixture does the same around one test; given a
monitor manifest (``--steadycron-manifest PATH``) it knows exactly the manifest's keys.

Runs of ``agent`` monitors expose what they reported as ``run.report``, a :class:`Report`
(snake_case fields, None where nothing was reported). Keys resolve as heartbeats unless
``record(keys={"key": "agent"})`` (or the manifest) says otherwise; a heartbeat's outcome
ping does not carry the report, but the recorder keeps it all the same, so a job's
report can be tested whatever its monitor's kind.
"""

from __future__ import annotations

import datetime
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import attrs

from ._client import SteadyCron
from ._config import Config
from ._default import default_client, is_default_client, save_settings
from ._protocol import REPORT_CONTENT_TYPE, read_ping, read_report, resolve_key_of
from ._report import Report, Values, report_of
from .transports._base import Request, Response
from .transports._memory import InMemoryTransport

__all__ = ["Ping", "RecordedRun", "Recorder", "Report", "record"]

_OUTCOMES = ("success", "fail")
_KINDS = ("heartbeat", "http", "agent")


@attrs.frozen
class Ping:
    """One ping as SteadyCron would have received it."""

    key: str
    state: str
    run_id: str | None
    environment: str | None
    message: str | None
    at: datetime.datetime
    #: The run report of an outcome ping (sent to an agent monitor, or kept from a
    #: heartbeat's); None when there was none.
    report: Report | None = None


@attrs.frozen
class RecordedRun:
    """The pings of one tracked run (one ``run_id``), in order."""

    key: str
    run_id: str
    pings: tuple[Ping, ...]

    @property
    def states(self) -> list[str]:
        return [ping.state for ping in self.pings]

    @property
    def outcome(self) -> str | None:
        """``"success"`` or ``"fail"``, or None while the run has not finished."""
        outcomes = [ping.state for ping in self.pings if ping.state in _OUTCOMES]
        return outcomes[-1] if outcomes else None

    @property
    def message(self) -> str | None:
        """The message of the outcome ping, if it carried one."""
        outcome = self._outcome_ping()
        return None if outcome is None else outcome.message

    @property
    def report(self) -> Report:
        """What the run reported, as its outcome ping had it (every field None when it
        reported nothing or has not finished). An agent monitor's fail carries the error
        text as ``summary`` when ``capture_errors`` is on."""
        outcome = self._outcome_ping()
        if outcome is None or outcome.report is None:
            return Report()
        return outcome.report

    def _outcome_ping(self) -> Ping | None:
        for ping in reversed(self.pings):
            if ping.state in _OUTCOMES:
                return ping
        return None


class _RecordingTransport(InMemoryTransport):
    """An in-memory SteadyCron that turns ping requests back into :class:`Ping` records.

    *allowed* maps the keys that exist to their job kind (None: any key is a heartbeat).
    """

    def __init__(self, settings: Callable[[], Config], allowed: Mapping[str, str] | None) -> None:
        super().__init__(kinds=allowed)
        self._settings = settings
        self._allowed = allowed
        self._keys_by_token: dict[str, str] = {}
        self._tokens_by_key: dict[str, str] = {}
        #: Reports the client kept back (heartbeat keys), until their ping is recorded.
        self._kept: dict[tuple[str, str, str | None], Report] = {}
        self.recorder = Recorder()

    def keep_report(self, token: str, state: str, run_id: str | None, report: Values) -> None:
        with self._lock:
            self._kept[token, state, run_id] = report_of(report)

    def token_for(self, key: str) -> str | None:
        if self._allowed is not None and key not in self._allowed:
            return None
        with self._lock:
            token = self._tokens_by_key.get(key)
            if token is None:
                token = self._tokens_by_key[key] = f"recorded-{len(self._tokens_by_key)}"
                self._keys_by_token[token] = key
        return token

    def send(self, request: Request, *, timeout: float) -> Response:
        response = super().send(request, timeout=timeout)
        if resolve_key_of(request.url) is None:
            self._record_ping(request)
        return response

    def _record_ping(self, request: Request) -> None:
        config = self._settings()
        url = urllib.parse.urlsplit(request.url)
        ping_base = urllib.parse.urlsplit(config.ping_url).path
        target = read_ping(url.path, url.query, base_path=ping_base)
        if target is None:
            return
        direct = {t: k for k, t in config.monitors.items()}
        key = self._keys_by_token.get(target.token) or direct.get(target.token) or target.token
        with self._lock:
            report = self._kept.pop((target.token, target.state, target.run_id), None)
        message = None
        if request.body and request.headers.get("Content-Type") == REPORT_CONTENT_TYPE:
            report = report_of(read_report(request.body))
        elif request.body:
            message = request.body.decode("utf-8")
        now = datetime.datetime.now(datetime.timezone.utc)
        ping = Ping(key, target.state, target.run_id, target.environment, message, now, report)
        self.recorder._append(ping)


class Recorder:
    """The pings recorded while :func:`record` was active."""

    def __init__(self) -> None:
        self._pings: list[Ping] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Recorder(<{len(self._pings)} pings>)"

    def _append(self, ping: Ping) -> None:
        with self._lock:
            self._pings.append(ping)

    @property
    def pings(self) -> list[Ping]:
        """Every ping, in the order it was sent."""
        with self._lock:
            return list(self._pings)

    def for_key(self, key: str) -> list[Ping]:
        """The pings of one monitor key."""
        return [ping for ping in self.pings if ping.key == key]

    def states(self, key: str) -> list[str]:
        """The states pinged for *key*, in order, e.g. ``["start", "success"]``."""
        return [ping.state for ping in self.for_key(key)]

    def runs(self, key: str) -> list[RecordedRun]:
        """The tracked runs of *key* (pings grouped by ``run_id``), in order of first ping."""
        grouped: dict[str, list[Ping]] = {}
        for ping in self.for_key(key):
            if ping.run_id is not None:
                grouped.setdefault(ping.run_id, []).append(ping)
        return [RecordedRun(key, run_id, tuple(pings)) for run_id, pings in grouped.items()]

    def last_run(self, key: str) -> RecordedRun:
        """The latest tracked run of *key*; AssertionError naming the key when there is none."""
        runs = self.runs(key)
        if not runs:
            seen = sorted({ping.key for ping in self.pings})
            raise AssertionError(f"no tracked run of {key!r} was recorded (keys seen: {seen})")
        return runs[-1]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        with self._lock:
            self._pings.clear()


@contextmanager
def record(
    client: SteadyCron | None = None, *, keys: Iterable[str] | Mapping[str, str] | None = None
) -> Iterator[Recorder]:
    """Record the pings of *client* (the default client when omitted) instead of sending them.

    Any key resolves (as a heartbeat monitor), unless *keys* lists the allowed ones: then
    other keys get 404, as on the real server, so a typo in a key fails the test. *keys* may
    also map each key to its job kind, as a monitor manifest does: each key then resolves
    with its kind, so the SDK answers as it would for real (an ``http`` job is refused:
    ``InvalidMonitorKindError``; an ``agent`` run sends its report). Works with no API key
    set and with direct tokens.

    On exit the client's transport and resolution cache are restored, and for the default
    client the module settings too (``steadycron.environment = ...`` inside the block does
    not outlive it).
    """
    if client is None:
        # The default client is rebuilt when a setting changes: ask for the current one.
        client, settings = default_client(), lambda: default_client().config
    else:
        settings = lambda: client.config  # noqa: E731 -- the same shape as above
    transport = _RecordingTransport(settings, _allowed_kinds(keys))
    restore_settings = save_settings() if is_default_client(client) else None
    try:
        with client.stand_in(transport, keep_reports=transport.keep_report):
            yield transport.recorder
    finally:
        if restore_settings is not None:
            restore_settings()


def _allowed_kinds(keys: Iterable[str] | Mapping[str, str] | None) -> dict[str, str] | None:
    """*keys* as key -> job kind; a plain list of keys names heartbeat monitors."""
    if keys is None:
        return None
    if isinstance(keys, str):
        raise TypeError(f"keys must be a list of monitor keys, not the string {keys!r}")
    if not isinstance(keys, Mapping):
        return dict.fromkeys(keys, "heartbeat")
    for key, kind in keys.items():
        if kind not in _KINDS:
            raise ValueError(f"keys[{key!r}]: the kind must be one of {_KINDS}, not {kind!r}")
    return dict(keys)
