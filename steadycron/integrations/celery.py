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

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._config import check_key
from . import _celery_worker as worker
from ._celery_runs import (
    HEADER_KEY,
    HEADER_RUN_ID,
    TASK_OPTION,
    Settings,
    apps,
    refuse_once,
    request_of,
    run_of,
    shielded,
)
from ._core import Pings, new_run_id

if TYPE_CHECKING:
    from .._client import SteadyCron

__all__ = ["instrument"]

log = logging.getLogger("steadycron")

#: Entries Celery adds to every schedule by itself; monitored only when named in ``keys``.
BUILTIN_ENTRIES = frozenset({"celery.backend_cleanup"})

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
    settings = Settings(Pings(client), _checked_keys(keys), _checked_exclude(exclude))
    apps[app] = settings
    _connect()


def is_instrumented(app: Any) -> bool:
    """Whether ``instrument()`` was called for *app* in this process."""
    return app in apps


def entry_key(app: Any, name: str, task: str, options: Mapping[str, Any] | None) -> str | None:
    """The monitor key of the beat entry *name* of an instrumented *app*, or None when the
    entry is not monitored (excluded, Celery's own, or the app is not instrumented).

    The order: the entry's ``steadycron_key`` option (or header), ``keys[name]``, the
    ``steadycron_key`` its task was declared with, the entry name.

    Raises:
        TypeError, ValueError: a key given in the entry or the task is not a valid key.
    """
    settings = apps.get(app)
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
            (signals.task_received, worker.on_received),
            (signals.task_prerun, worker.on_prerun),
            (signals.task_success, worker.on_success),
            (signals.task_failure, worker.on_failure),
            (signals.task_postrun, worker.on_postrun),
            (signals.task_revoked, worker.on_revoked),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=f"steadycron.{receiver.__name__}")
        _connected = True


# -- beat ------------------------------------------------------------------------------

_publishing = threading.local()
"""The (key, run id) the next message published by this thread is stamped with."""


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    """Wrap this beat's scheduler so each entry it sends is stamped; any scheduler class."""
    with shielded("beat_init"):
        app = sender.app
        if app not in apps:
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


def _beat_stamp(app: Any, entry: Any) -> tuple[str, str] | None:
    try:
        key = entry_key(app, entry.name, entry.task, entry.options)
    except (TypeError, ValueError) as exc:
        refuse_once(f"beat entry {getattr(entry, 'name', '?')!r}: {exc}")
        return None
    except Exception as exc:
        log.warning("steadycron: beat entry not stamped: %s: %s", type(exc).__name__, exc)
        return None
    return None if key is None else (key, new_run_id())


def _on_publish(sender: Any = None, headers: Any = None, properties: Any = None, **_: Any) -> None:
    """Stamp the message beat is sending; carry a run over to the retry of a running task."""
    with shielded("before_task_publish"):
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


def _carry_over_to_retry(headers: dict[str, Any]) -> None:
    """Celery copies custom headers onto a retry itself; older versions did not always."""
    task: Any = next(filter(None, (app.current_worker_task for app in list(apps))), None)
    request = request_of(task)
    if request is None or (request.id, task.name) != (headers.get("id"), headers.get("task")):
        return
    run = run_of(task, request)
    if run is not None:
        headers.setdefault(HEADER_KEY, run.key)
        headers.setdefault(HEADER_RUN_ID, run.run_id)
