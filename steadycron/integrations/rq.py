"""RQ: jobs monitored on the worker, one run across all attempts of a job.

::

    from steadycron.integrations.rq import job

    @job("nightly-db-backup")          # every job enqueued from backup() is monitored
    def backup(): ...

    queue.enqueue(backup, retry=Retry(max=3))

or, for jobs whose functions you do not decorate, run the worker with
``rq worker -w steadycron.integrations.rq.Worker`` and enqueue them with
``meta={"steadycron_key": "nightly-db-backup"}``.

How a job is seen:

- **start** when a worker starts the job's first attempt; an attempt that fails while
  ``Retry`` attempts remain sends nothing; **success** when an attempt succeeds, **fail**
  when the last one fails (or a job that returns ``Retry`` has used them all). The run id
  lives in the job's ``meta`` (``steadycron_run``), so every attempt, on any worker,
  belongs to the one run; it is removed when the run ends, so a job requeued later is a
  new run.
- A job's ``meta["steadycron_key"]`` overrides the key of its decorated function.
- A decorated function called outside a worker is a plain monitored run.
- With :class:`Worker` (or :class:`SimpleWorker`), a job whose work horse dies (killed
  by the out-of-memory killer, by the worker's own timeout, or stopped on request) is
  reported too, once no retry follows.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import rq

from .._config import check_key
from ._core import Pings, new_run_id

if TYPE_CHECKING:
    from rq.job import Job

    from .._client import SteadyCron

__all__ = ["META_KEY", "SimpleWorker", "Worker", "job"]

#: The ``meta`` entry that names a job's monitor key.
META_KEY = "steadycron_key"
#: The ``meta`` entry that carries an open run (key and run id) from attempt to attempt.
META_RUN = "steadycron_run"

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("steadycron")
_default_pings = Pings()
#: The id of the job whose attempt is being tracked in this context, so a decorated
#: function run by :class:`Worker` is not tracked twice.
_tracking: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "steadycron_rq_tracking", default=None
)


def job(key: str, *, client: SteadyCron | None = None) -> Callable[[F], F]:
    """Monitor every job enqueued from the decorated function, on any RQ worker.

    Args:
        key: the monitor key (a job's ``meta["steadycron_key"]`` overrides it).
        client: the client to ping through; the default client when omitted.
    """
    check_key(key)
    pings = _default_pings if client is None else Pings(client)

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"RQ cannot run generator function {fn.__qualname__} as a job")
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                attempt = _Attempt.of_current_job(key, pings)
                if attempt is None:
                    return await fn(*args, **kwargs)
                with attempt.tracking():
                    await asyncio.to_thread(attempt.begin)
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException as exc:
                        await asyncio.to_thread(attempt.raised, exc)
                        raise
                    await asyncio.to_thread(attempt.returned, result)
                    return result

            wrapper: Callable[..., Any] = run_async
        else:

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                attempt = _Attempt.of_current_job(key, pings)
                if attempt is None:
                    return fn(*args, **kwargs)
                return attempt.around(lambda: fn(*args, **kwargs))

            wrapper = run
        wrapper.steadycron_key = key  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class _Attempt:
    """One attempt of a monitored job: opens the run on the first, closes it on the last."""

    def __init__(self, job: Job | None, key: str, pings: Pings) -> None:
        self._job = job
        self._key = key
        self._pings = pings
        self._run_id = ""
        self._opened = False

    @classmethod
    def of_current_job(cls, key: str, pings: Pings) -> _Attempt | None:
        """The attempt to track for the running job; None when it is tracked already."""
        current = rq.get_current_job()
        if current is None:
            return cls(None, key, pings)
        if _tracking.get() == current.id:
            return None
        meta_key = current.meta.get(META_KEY)
        return cls(current, meta_key if isinstance(meta_key, str) and meta_key else key, pings)

    def around(self, call: Callable[[], Any]) -> Any:
        with self.tracking():
            self.begin()
            try:
                result = call()
            except BaseException as exc:
                self.raised(exc)
                raise
            self.returned(result)
            return result

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Mark the job as tracked while the attempt runs (see ``_tracking``)."""
        token = _tracking.set(self._job.id if self._job is not None else None)
        try:
            yield
        finally:
            _tracking.reset(token)

    def begin(self) -> None:
        job = self._job
        if job is not None:
            open_run = _open_run(job)
            if open_run is not None:
                self._run_id, self._opened = open_run[1], True
                return
        self._run_id = new_run_id()
        if job is not None:
            _remember(job, {"key": self._key, "run_id": self._run_id})
        self._opened = self._pings.start(self._key, self._run_id)

    def raised(self, error: BaseException) -> None:
        if self._job is not None and self._job.should_retry:
            return  # RQ runs it again: the same run goes on
        self._close(error)

    def returned(self, result: object) -> None:
        if isinstance(result, rq.Retry) and self._job is not None:
            retries = self._job.number_of_retries
            if not (retries and retries >= result.max):
                return  # RQ runs it again, as RQ decides it
            self._close(None, reason=f"retries exhausted: the job returned Retry after {retries}")
            return
        self._close(None)

    def _close(self, error: BaseException | None, *, reason: str | None = None) -> None:
        if self._job is not None:
            _remember(self._job, None)
        if not self._opened:
            return
        if reason is not None:
            self._pings.fail(self._key, self._run_id, reason=reason)
        else:
            self._pings.finish(self._key, self._run_id, error)


def _open_run(job: Job) -> tuple[str, str] | None:
    """The key and run id of the run an earlier attempt opened, if one is open."""
    entry = job.meta.get(META_RUN)
    if isinstance(entry, dict):
        key, run_id = entry.get("key"), entry.get("run_id")
        if isinstance(key, str) and isinstance(run_id, str) and key and run_id:
            return key, run_id
    return None


def _remember(job: Job, run: dict[str, str] | None) -> None:
    """Keep the open run in the job's meta (or drop it), in memory and in Redis."""
    try:
        if run is None:
            if job.meta.pop(META_RUN, None) is None:
                return
        else:
            job.meta[META_RUN] = run
        job.save_meta()  # type: ignore[no-untyped-call]
    except Exception as exc:  # Redis trouble must not fail the job
        log.warning("steadycron: could not save the run of job %s: %s", job.id, type(exc).__name__)


class _Monitoring:
    """What :class:`Worker` and :class:`SimpleWorker` add to RQ's workers."""

    def perform_job(self, job: Job, queue: Any, *args: Any, **kwargs: Any) -> Any:
        key = job.meta.get(META_KEY)
        if isinstance(key, str) and key:
            attempt = _Attempt(job, key, _default_pings)
            perform = job.perform
            # Only this job object, only in the process that runs it.
            job.perform = lambda: attempt.around(perform)  # type: ignore[method-assign]
        return super().perform_job(job, queue, *args, **kwargs)  # type: ignore[misc]

    def handle_job_failure(self, job: Job, *args: Any, **kwargs: Any) -> Any:
        try:
            _report_lost_attempt(self, job, kwargs.get("exc_string") or "")
        except Exception as exc:
            log.warning("steadycron: job %s: failure not reported: %s", job.id, type(exc).__name__)
        return super().handle_job_failure(job, *args, **kwargs)  # type: ignore[misc]


def _report_lost_attempt(worker: Any, job: Job, exc_string: str) -> None:
    """Close the run of an attempt that ended without telling (its work horse died).

    An attempt that ran its course has closed the run itself or left it open for a
    retry; one whose horse died left the run in Redis but never reached its outcome.
    """
    if getattr(worker, "is_horse", False) or isinstance(worker, rq.SimpleWorker):
        return  # the attempt ran here and has reported itself
    job.get_meta(refresh=True)
    open_run = _open_run(job)
    if open_run is None:
        return
    stopped = getattr(worker, "_stopped_job_id", None) == job.id
    if job.should_retry and not stopped:
        return
    key, run_id = open_run
    _remember(job, None)
    reason = exc_string.strip().splitlines()[-1] if exc_string.strip() else "work horse died"
    _default_pings.fail(key, run_id, reason=reason)


class Worker(_Monitoring, rq.Worker):
    """RQ's forking worker, also monitoring jobs enqueued with ``meta={"steadycron_key": ...}``."""


class SimpleWorker(_Monitoring, rq.SimpleWorker):
    """RQ's worker without a work horse, also monitoring jobs enqueued with a key in meta."""
