"""The worker side of the Celery integration: one start per run, one outcome per run.

The task's own signals fire in the process that runs it (a pool child); the worker's
decisions (revoked, expired, hard time limit, a lost process) fire in the main process,
where older Celery versions give no request: the run is then found in what the main
process noted when the message arrived.
"""

from __future__ import annotations

import signal
import threading
from collections import OrderedDict
from typing import Any

from .._forksafe import reset_after_fork
from ._celery_runs import Run, request_of, run_of, shielded

_IGNORED = "IGNORED"


class _Ledger:
    """Per process: the runs of messages this worker received (for the main process's
    hooks, which get no request on older Celery), and the task ids whose run is closed (a
    hard time limit is reported twice). Bounded: old entries are forgotten."""

    size = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def remember(self, task_id: str, run: Run) -> None:
        with self._lock:
            _bounded_put(self._runs, task_id, run, self.size)

    def recall(self, task_id: str) -> Run | None:
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


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    with shielded("task_received"):
        run = run_of(getattr(request, "task", None), request)
        if run is not None:
            _ledger.remember(run.task_id, run)


def on_prerun(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    with shielded("task_prerun"):
        request = request_of(task)
        run = run_of(task, request, task_id)
        if run is None:
            return
        _ledger.reopen(run.task_id)
        if not getattr(request, "retries", 0):
            run.pings.start(run.key, run.run_id)


def on_success(sender: Any = None, **_: Any) -> None:
    with shielded("task_success"):
        request = request_of(sender)
        run = run_of(sender, request)
        if run is not None and _ledger.close(run.task_id):
            run.pings.succeed(run.key, run.run_id)


def on_postrun(
    sender: Any = None, task_id: Any = None, task: Any = None, state: Any = None, **_: Any
) -> None:
    """A task that raised ``Ignore`` (or replaced itself) ended on purpose: a success."""
    with shielded("task_postrun"):
        if state != _IGNORED:
            return
        run = run_of(task, request_of(task), task_id)
        if run is not None and _ledger.close(run.task_id):
            run.pings.succeed(run.key, run.run_id)


def on_failure(sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any) -> None:
    """The task failed for good: no retry left, a time limit, its process lost, rejected."""
    with shielded("task_failure"):
        request = request_of(sender)
        if request is not None and request.id == task_id:
            run = run_of(sender, request, task_id)
        else:  # the main process: Celery may not give the task's request here
            run = _ledger.recall(task_id) if isinstance(task_id, str) else None
        if run is not None and _ledger.close(run.task_id):
            run.pings.fail(run.key, run.run_id, exception, reason=_failure_reason(exception))


def on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: Any = False,
    signum: Any = None,
    expired: Any = False,
    **_: Any,
) -> None:
    with shielded("task_revoked"):
        task_id = getattr(request, "id", None)
        if not isinstance(task_id, str):
            return
        run = run_of(sender, request) or _ledger.recall(task_id)
        if run is None or not _ledger.close(task_id):
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
