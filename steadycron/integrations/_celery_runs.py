"""Which run a Celery task message belongs to, read from the message itself.

Beat stamps a monitored message with the monitor key and a run id in its headers; a task
declared with ``steadycron_key`` is monitored without them, under a run id made from its
task id. Retries and redeliveries keep both, so every attempt finds the same run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import uuid
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from .._config import check_key
from ._core import Pings

log = logging.getLogger("steadycron")

#: Message headers beat stamps on a monitored task message.
HEADER_KEY = "steadycron_key"
HEADER_RUN_ID = "steadycron_run_id"
#: The beat entry option and the ``@app.task`` option that name a monitor key.
TASK_OPTION = "steadycron_key"

_RUN_ID = re.compile(r"[0-9a-f]{32}")


@attrs.frozen
class Settings:
    """What ``instrument()`` was told for one app."""

    pings: Pings
    keys: Mapping[str, str]
    exclude: frozenset[str]


@attrs.frozen
class Run:
    """One run of a monitored task message: every attempt of the message shares it."""

    task_id: str
    key: str
    run_id: str
    pings: Pings


#: Instrumented apps and their settings; the hooks look an app up each time they run.
apps: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()


def run_of(task: Any, request: Any, task_id: Any = None) -> Run | None:
    """The run a task message belongs to, or None when it is not monitored (or cannot be
    told apart from other messages: no task id)."""
    settings = apps.get(getattr(task, "app", None)) if task is not None else None
    task_id = getattr(request, "id", None) or task_id
    if settings is None or not isinstance(task_id, str) or not task_id:
        return None
    key, run_id = _stamp_of(request)
    if key is None:
        key = getattr(task, TASK_OPTION, None)
        if key is None:
            return None
    try:
        key = check_key(key)
    except (TypeError, ValueError) as exc:
        refuse_once(f"task {getattr(task, 'name', '?')!r}: {exc}")
        return None
    if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        run_id = _run_id_for(task_id)
    return Run(task_id, key, run_id, settings.pings)


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


def _run_id_for(task_id: str) -> str:
    """A run id that every attempt of one task message shares: its task id, as hex."""
    try:
        return uuid.UUID(task_id).hex
    except ValueError:
        return hashlib.sha256(task_id.encode("utf-8", "replace")).hexdigest()[:32]


def request_of(task: Any) -> Any:
    """``task.request``, or None where a task has none (or reading it fails)."""
    try:
        return None if task is None else task.request
    except Exception:
        return None


_refused: set[str] = set()


def refuse_once(text: str) -> None:
    """An invalid key given in code: said once per process, never raised into Celery."""
    if text not in _refused:
        _refused.add(text)
        log.error("steadycron: not monitored, invalid monitor key: %s", text)


@contextlib.contextmanager
def shielded(hook: str) -> Iterator[None]:
    """Run a hook's body; what it raises is logged, never passed to Celery."""
    try:
        yield
    except Exception as exc:
        log.warning("steadycron: %s hook skipped: %s: %s", hook, type(exc).__name__, exc)
