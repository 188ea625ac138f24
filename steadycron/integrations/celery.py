"""Celery: every beat entry, and every task declared with a key, monitored on any worker.

A run travels with its message. Beat stamps each monitored task message with the monitor
key and a fresh run id in its headers, and does nothing else: no network call, so the
schedule never waits on monitoring. Whichever worker takes the message pings ``start``
before the first attempt and the outcome after the last one. A retry republishes the
same message (same task id, same headers), so every attempt, on whatever worker, belongs
to the one run; a task that was not sent by beat runs under a run id made from its task
id, which retries and redeliveries keep too.

Hooks run in two places of a worker: the task's own signals in the process that runs it,
and the worker's decisions (revoked, expired, hard time limit, process lost) in the main
process. Every hook swallows its own trouble: monitoring never stops a task, a worker or
beat.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import signal
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._config import check_key
from .._forksafe import reset_after_fork
from ._core import Pings, new_run_id

if TYPE_CHECKING:
    from .._client import SteadyCron

__all__ = ["instrument"]

log = logging.getLogger("steadycron")

#: Message headers beat stamps on a monitored task message.
HEADER_KEY = "steadycron_key"
HEADER_RUN_ID = "steadycron_run_id"
#: The beat entry option and the ``@app.task`` option that name a monitor key.
TASK_OPTION = "steadycron_key"
#: Entries Celery adds to every schedule by itself; monitored only when named in ``keys``.
BUILTIN_ENTRIES = frozenset({"celery.backend_cleanup"})

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_IGNORED = "IGNORED"


@attrs.frozen
class _Settings:
    pings: Pings
    keys: Mapping[str, str]
    exclude: frozenset[str]


@attrs.frozen
class _Run:
    key: str
    run_id: str
    pings: Pings


_apps: weakref.WeakKeyDictionary[Any, _Settings] = weakref.WeakKeyDictionary()
_connect_lock = threading.Lock()
_connected = False


def instrument(
    app: Any,
    *,
    client: SteadyCron | None = None,
    keys: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
) -> None:
    """Monitor the beat entries of *app* and its tasks declared with ``steadycron_key``.

    Call it where the app is defined, so that beat and every worker run it. Calling it
    again for the same app replaces its settings.

    Args:
        app: the ``celery.Celery`` application.
        client: the client to ping through; ``None`` uses the default client, looked up
            at each ping.
        keys: beat entry name -> monitor key, for entries whose name is not their key.
            An entry's ``options={"steadycron_key": ...}`` wins over this.
        exclude: beat entry names never monitored.

    Raises:
        TypeError, ValueError: an argument is not what is described above.
    """
    from .._client import SteadyCron

    if not (hasattr(app, "conf") and hasattr(app, "tasks")):
        raise TypeError(f"instrument() needs a Celery app, not {type(app).__name__}")
    if client is not None and not isinstance(client, SteadyCron):
        raise TypeError(f"client must be a SteadyCron client or None, not {type(client).__name__}")
    settings = _Settings(Pings(client), _checked_keys(keys), _checked_exclude(exclude))
    _apps[app] = settings
    _connect()


def entry_key(app: Any, name: str, task: str, options: Mapping[str, Any] | None) -> str | None:
    """The monitor key of the beat entry *name* of an instrumented *app*, or None when the
    entry is not monitored (excluded, Celery's own, or the app is not instrumented).

    The order: the entry's ``steadycron_key`` option (or header), ``keys[name]``, the
    ``steadycron_key`` its task was declared with, the entry name.

    Raises:
        TypeError, ValueError: a key given in the entry or the task is not a valid key.
    """
    settings = _apps.get(app)
    if settings is None or name in settings.exclude:
        return None
    options = options or {}
    headers = options.get("headers")
    explicit = options.get(TASK_OPTION)
    if explicit is None and isinstance(headers, Mapping):
        explicit = headers.get(HEADER_KEY)
    if explicit is not None:
        return check_key(explicit)
    if name in settings.keys:
        return settings.keys[name]
    declared = getattr(app.tasks.get(task), TASK_OPTION, None)
    if declared is not None:
        return check_key(declared)
    return None if name in BUILTIN_ENTRIES else check_key(name)


def _checked_keys(keys: Mapping[str, str] | None) -> Mapping[str, str]:
    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must map beat entry names to monitor keys, not {keys!r}")
    checked = {}
    for name, key in keys.items():
        if not isinstance(name, str):
            raise TypeError(f"keys: entry names must be str, not {name!r}")
        try:
            checked[name] = check_key(key)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"keys[{name!r}]: {exc}") from None
    return checked


def _checked_exclude(exclude: Iterable[str]) -> frozenset[str]:
    if isinstance(exclude, str) or not isinstance(exclude, Iterable):
        raise TypeError(
            f"exclude must be a collection of beat entry names (a list), not {exclude!r}"
        )
    names = frozenset(exclude)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"exclude: entry names must be str, not {name!r}")
    return names


def _connect() -> None:
    """Connect the hooks once per process; each looks its app's settings up when it runs."""
    global _connected
    from celery import signals

    with _connect_lock:
        if _connected:
            return
        for signal, receiver in (
            (signals.beat_init, _on_beat_init),
            (signals.before_task_publish, _on_publish),
            (signals.task_received, _on_received),
            (signals.task_prerun, _on_prerun),
            (signals.task_success, _on_success),
            (signals.task_failure, _on_failure),
            (signals.task_postrun, _on_postrun),
            (signals.task_revoked, _on_revoked),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=f"steadycron.{receiver.__name__}")
        _connected = True


# -- beat ------------------------------------------------------------------------------

_publishing = threading.local()
"""The (key, run id) the next message published by this thread is stamped with."""


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    """Wrap this beat's scheduler so each entry it sends is stamped; any scheduler class."""
    try:
        app = sender.app
        if app not in _apps:
            return
        scheduler = sender.scheduler
        send = scheduler.apply_async
        if getattr(send, "steadycron_wrapped", False):
            return

        def apply_async(entry: Any, *args: Any, **kwargs: Any) -> Any:
            _publishing.stamp = _beat_stamp(app, entry)
            try:
                return send(entry, *args, **kwargs)
            finally:
                _publishing.stamp = None

        apply_async.steadycron_wrapped = True  # type: ignore[attr-defined]
        scheduler.apply_async = apply_async
    except Exception as exc:  # beat must run whatever happens here
        log.warning("steadycron: beat entries are not monitored: %s: %s", type(exc).__name__, exc)


def _beat_stamp(app: Any, entry: Any) -> tuple[str, str] | None:
    try:
        key = entry_key(app, entry.name, entry.task, entry.options)
    except (TypeError, ValueError) as exc:
        _refuse_once(f"beat entry {getattr(entry, 'name', '?')!r}: {exc}")
        return None
    except Exception as exc:
        log.warning("steadycron: beat entry not stamped: %s: %s", type(exc).__name__, exc)
        return None
    return None if key is None else (key, new_run_id())


def _on_publish(sender: Any = None, headers: Any = None, properties: Any = None, **_: Any) -> None:
    """Stamp the message beat is sending; carry a run over to the retry of a running task."""
    try:
        if not isinstance(headers, dict):
            return
        stamp = getattr(_publishing, "stamp", None)
        if stamp is not None:
            _publishing.stamp = None
            headers[HEADER_KEY], headers[HEADER_RUN_ID] = stamp
            if isinstance(properties, dict):
                properties.pop(TASK_OPTION, None)  # the entry option, no message property
            return
        _carry_over_to_retry(headers)
    except Exception as exc:  # publishing must never fail because of monitoring
        log.warning("steadycron: message not stamped: %s: %s", type(exc).__name__, exc)


def _carry_over_to_retry(headers: dict[str, Any]) -> None:
    """Celery copies custom headers onto a retry itself; older versions did not always."""
    task: Any = next(filter(None, (app.current_worker_task for app in list(_apps))), None)
    request = _request_of(task)
    if request is None or (request.id, task.name) != (headers.get("id"), headers.get("task")):
        return
    run = _run_of(task, request)
    if run is not None:
        headers.setdefault(HEADER_KEY, run.key)
        headers.setdefault(HEADER_RUN_ID, run.run_id)


# -- worker ----------------------------------------------------------------------------


class _Ledger:
    """Per process: the runs of messages this worker received (for the main process's
    hooks, which get no request on older Celery), and the task ids whose run is closed (a
    hard time limit is reported twice). Bounded: old entries are forgotten."""

    size = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def remember(self, task_id: str, run: _Run) -> None:
        with self._lock:
            _bounded_put(self._runs, task_id, run, self.size)

    def recall(self, task_id: str) -> _Run | None:
        with self._lock:
            return self._runs.get(task_id)

    def reopen(self, task_id: str) -> None:
        with self._lock:
            self._closed.pop(task_id, None)

    def close(self, task_id: str) -> bool:
        """Mark the run of *task_id* closed; False when it already was."""
        with self._lock:
            if task_id in self._closed:
                return False
            _bounded_put(self._closed, task_id, None, self.size)
            self._runs.pop(task_id, None)
            return True


def _bounded_put(table: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > size:
        table.popitem(last=False)


_ledger = _Ledger()


def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    with _shielded("task_received"):
        run = _run_of(getattr(request, "task", None), request)
        if run is not None:
            _ledger.remember(request.id, run)


def _on_prerun(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    with _shielded("task_prerun"):
        request = _request_of(task)
        run = _run_of(task, request, task_id)
        if run is None:
            return
        _ledger.reopen(task_id)
        if not getattr(request, "retries", 0):
            run.pings.start(run.key, run.run_id)


def _on_success(sender: Any = None, **_: Any) -> None:
    with _shielded("task_success"):
        request = _request_of(sender)
        run = _run_of(sender, request)
        if run is not None and _ledger.close(request.id):
            run.pings.succeed(run.key, run.run_id)


def _on_postrun(
    sender: Any = None, task_id: Any = None, task: Any = None, state: Any = None, **_: Any
) -> None:
    """A task that raised ``Ignore`` (or replaced itself) ended on purpose: a success."""
    with _shielded("task_postrun"):
        if state != _IGNORED:
            return
        run = _run_of(task, _request_of(task), task_id)
        if run is not None and _ledger.close(task_id):
            run.pings.succeed(run.key, run.run_id)


def _on_failure(sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any) -> None:
    """The task failed for good: no retry left, a time limit, its process lost, rejected."""
    with _shielded("task_failure"):
        request = _request_of(sender)
        if request is not None and request.id == task_id:
            run = _run_of(sender, request, task_id)
        else:  # the main process: Celery may not give the task's request here
            run = _ledger.recall(task_id) if isinstance(task_id, str) else None
        if run is not None and _ledger.close(task_id):
            run.pings.fail(run.key, run.run_id, exception, reason=_failure_reason(exception))


def _on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: Any = False,
    signum: Any = None,
    expired: Any = False,
    **_: Any,
) -> None:
    with _shielded("task_revoked"):
        task_id = getattr(request, "id", None)
        run = _run_of(sender, request, task_id) or (
            _ledger.recall(task_id) if isinstance(task_id, str) else None
        )
        if run is None or (isinstance(task_id, str) and not _ledger.close(task_id)):
            return
        if expired:
            reason = "expired: not run before its expiry time"
        elif terminated:
            reason = f"revoked: terminated while running{_signal_name(signum)}"
        else:
            reason = "revoked"
        run.pings.fail(run.key, run.run_id, reason=reason)


def _signal_name(signum: object) -> str:
    try:
        return f" ({signal.Signals(int(signum)).name})"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return f" ({signum})" if signum else ""


def _failure_reason(exception: object) -> str | None:
    """The message of a failure Celery decided, sent whatever ``capture_errors`` says."""
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError

    if isinstance(exception, SoftTimeLimitExceeded):
        return "time limit: soft time limit exceeded"
    if isinstance(exception, TimeLimitExceeded):
        limit = exception.args[0] if exception.args else None
        within = f" ({limit} s)" if isinstance(limit, int | float) else ""
        return f"time limit: hard time limit{within} exceeded, the task was killed"
    if isinstance(exception, WorkerLostError):
        return f"worker lost: {exception}"
    return None


def _run_of(task: Any, request: Any, task_id: Any = None) -> _Run | None:
    """The run a task message belongs to, or None when it is not monitored."""
    settings = _apps.get(getattr(task, "app", None)) if task is not None else None
    if settings is None:
        return None
    key, run_id = _stamp_of(request)
    if key is None:
        key = getattr(task, TASK_OPTION, None)
        if key is None:
            return None
    try:
        key = check_key(key)
    except (TypeError, ValueError) as exc:
        _refuse_once(f"task {getattr(task, 'name', '?')!r}: {exc}")
        return None
    if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        run_id = _run_id_for(getattr(request, "id", None) or task_id)
    return _Run(key, run_id, settings.pings)


def _stamp_of(request: Any) -> tuple[object, object]:
    """Key and run id from a request's headers, wherever this Celery version keeps them
    (custom headers, the worker's message dict, attributes of the task's context)."""
    if request is None:
        return None, None
    sources = [getattr(request, "headers", None), getattr(request, "request_dict", None)]
    sources += [source.get("headers") for source in sources if isinstance(source, Mapping)]
    sources.append(getattr(request, "__dict__", None))
    for source in sources:
        if isinstance(source, Mapping) and source.get(HEADER_KEY) is not None:
            return source.get(HEADER_KEY), source.get(HEADER_RUN_ID)
    return None, None


def _run_id_for(task_id: object) -> str:
    """A run id that every attempt of one task message shares: its task id, as hex."""
    if not isinstance(task_id, str) or not task_id:
        return new_run_id()
    try:
        return uuid.UUID(task_id).hex
    except ValueError:
        return hashlib.sha256(task_id.encode("utf-8", "replace")).hexdigest()[:32]


def _request_of(task: Any) -> Any:
    """``task.request``, or None where a task has none (or reading it fails)."""
    try:
        return None if task is None else task.request
    except Exception:
        return None


_refused: set[str] = set()


def _refuse_once(text: str) -> None:
    """An invalid key given in code: said once per process, never raised into Celery."""
    if text not in _refused:
        _refused.add(text)
        log.error("steadycron: not monitored, invalid monitor key: %s", text)


@contextlib.contextmanager
def _shielded(hook: str) -> Iterator[None]:
    """Run a hook's body; what it raises is logged, never passed to Celery."""
    try:
        yield
    except Exception as exc:
        log.warning("steadycron: %s hook skipped: %s: %s", hook, type(exc).__name__, exc)
