"""APScheduler 3: every job a monitored run, missed and skipped runs reported as failures.

::

    from steadycron.integrations.apscheduler import instrument

    scheduler = BackgroundScheduler()
    instrument(scheduler)                       # before or after adding jobs
    scheduler.add_job(backup, "cron", hour=3, id="nightly-db-backup")

How a run is seen:

- **start** when the run begins in its executor (a thread, the event loop, ...), right
  before the job function is called; **success** or **fail** when it returns or raises.
  Starting there rather than at submission means a start is never sent for a run that
  then misses its grace time in a busy pool, and never arrives after its outcome.
  Every run has its own run id, so overlapping runs (``max_instances`` > 1) stay apart.
- A run the executor drops because it started later than ``misfire_grace_time``, or one
  the scheduler skips because ``max_instances`` runs are still going, is one ``fail``
  ping without a start, whose message begins with ``missed:`` or ``skipped:``.
- Jobs on a ``ProcessPoolExecutor`` run in another process, where this scheduler's
  client is not: they are reported from the scheduler's process when their outcome event
  arrives (an outcome ping without a start).

The executors are instrumented in place (their ``submit_job``); the jobs, their stores and
their pickled form are left alone. Pings from the scheduler's own thread (``missed``,
``skipped``) are bounded by ``ping_timeout``; on an event loop they go to its default
executor, so the loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._core import Pings, new_run_id

if TYPE_CHECKING:
    from .._client import SteadyCron

__all__ = ["instrument"]

_MARK = "_steadycron_instrumented"


def instrument(
    scheduler: Any,
    *,
    client: SteadyCron | None = None,
    keys: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
) -> None:
    """Monitor every job of an APScheduler 3 *scheduler*, added before or after this call.

    Args:
        scheduler: a ``BaseScheduler`` (background, blocking, asyncio, ...).
        client: the client to ping through; the default client when omitted.
        keys: job id -> monitor key, for jobs whose id is not their monitor key.
        exclude: job ids that are never monitored.

    Raises:
        TypeError: *scheduler* is not an APScheduler 3 scheduler, or *keys* / *exclude*
            hold something other than strings.
        RuntimeError: the scheduler is already instrumented.
    """
    from apscheduler.schedulers.base import BaseScheduler

    if not isinstance(scheduler, BaseScheduler):
        raise TypeError(
            f"instrument() takes an APScheduler 3 scheduler, not {type(scheduler).__name__}"
        )
    if getattr(scheduler, _MARK, False):
        raise RuntimeError("this scheduler is already instrumented by steadycron")
    _Instrumentation(scheduler, client, _checked_keys(keys), _checked_names(exclude)).install()


def _checked_keys(keys: Mapping[str, str] | None) -> dict[str, str]:
    from .._config import check_key

    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must map job ids to monitor keys, not {type(keys).__name__}")
    for job_id in keys:
        if not isinstance(job_id, str):
            raise TypeError(f"keys: job ids are str, not {type(job_id).__name__}")
    return {job_id: check_key(key) for job_id, key in keys.items()}


def _checked_names(exclude: Collection[str]) -> frozenset[str]:
    if isinstance(exclude, str):
        raise TypeError("exclude is a collection of job ids; wrap a single one: exclude=[...]")
    names = frozenset(exclude)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"exclude: job ids are str, not {type(name).__name__}")
    return names


class _Instrumentation:
    def __init__(
        self,
        scheduler: Any,
        client: SteadyCron | None,
        keys: dict[str, str],
        exclude: frozenset[str],
    ) -> None:
        self._scheduler = scheduler
        self._pings = Pings(client)
        self._keys = keys
        self._exclude = exclude
        self._lock = threading.Lock()
        # Runs handed to an executor that cannot carry our wrapper (another process):
        # their outcome comes from the scheduler's events.
        self._unwrapped: Counter[tuple[str, datetime]] = Counter()
        # What the messages of missed and skipped runs quote, as last submitted.
        self._limits: dict[str, tuple[int | None, object]] = {}

    def install(self) -> None:
        from apscheduler.events import (
            EVENT_EXECUTOR_ADDED,
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
        )

        scheduler = self._scheduler
        setattr(scheduler, _MARK, True)
        scheduler.add_listener(self._executor_added, EVENT_EXECUTOR_ADDED)
        scheduler.add_listener(
            self._job_event,
            EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES,
        )
        # The default executor is created when the scheduler starts; it arrives through
        # EVENT_EXECUTOR_ADDED like any executor added later.
        with scheduler._executors_lock:
            executors = list(scheduler._executors.values())
        for executor in executors:
            self._wrap_executor(executor)

    def key_of(self, job_id: str) -> str | None:
        if job_id in self._exclude:
            return None
        return self._keys.get(job_id, job_id)

    # -- submission: the run carries its own tracking ---------------------------------

    def _executor_added(self, event: Any) -> None:
        try:
            self._wrap_executor(self._scheduler._lookup_executor(event.alias))
        except Exception as exc:  # never break the scheduler
            _log_skip("an executor added later", exc)

    def _wrap_executor(self, executor: Any) -> None:
        if getattr(executor, _MARK, False):
            return
        from apscheduler.executors.pool import ProcessPoolExecutor

        in_process = not isinstance(executor, ProcessPoolExecutor)
        submit = executor.submit_job

        @functools.wraps(submit)
        def submit_job(job: Any, run_times: list[datetime]) -> Any:
            tracked = self._prepare(job, run_times, in_process)
            return submit(tracked, run_times)

        executor.submit_job = submit_job
        setattr(executor, _MARK, True)

    def _prepare(self, job: Any, run_times: list[datetime], in_process: bool) -> Any:
        """The job as its executor should see it: wrapped when it is monitored."""
        try:
            key = self.key_of(job.id)
            if key is None:
                return job
            with self._lock:
                self._limits[job.id] = (job.misfire_grace_time, job.max_instances)
                if not in_process:
                    self._unwrapped.update((job.id, run_time) for run_time in run_times)
            return _TrackedJob(job, self._monitored(job.func, key)) if in_process else job
        except Exception as exc:
            _log_skip(f"job {getattr(job, 'id', '?')!r}", exc)
            return job

    def _monitored(self, func: Callable[..., Any], key: str) -> Callable[..., Any]:
        from apscheduler.util import iscoroutinefunction_partial

        pings = self._pings
        if iscoroutinefunction_partial(func):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                loop = asyncio.get_running_loop()
                run_id = new_run_id()
                opened = False
                try:
                    opened = await loop.run_in_executor(None, pings.start, key, run_id)
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    if opened:
                        await loop.run_in_executor(None, pings.finish, key, run_id, exc)
                    raise
                if opened:
                    await loop.run_in_executor(None, pings.succeed, key, run_id)
                return result

            return run_async

        def run(*args: Any, **kwargs: Any) -> Any:
            with pings.run(key):
                return func(*args, **kwargs)

        return run

    # -- what the scheduler reports: missed, skipped, and runs in other processes -----

    def _job_event(self, event: Any) -> None:
        try:
            work = self._work_for(event)
        except Exception as exc:
            _log_skip(f"an event of job {getattr(event, 'job_id', '?')!r}", exc)
            return
        if work is not None:
            _off_the_event_loop(work)

    def _work_for(self, event: Any) -> Callable[[], object] | None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

        key = self.key_of(event.job_id)
        if key is None:
            return None
        pings = self._pings
        if event.code == EVENT_JOB_MISSED:
            self._forget_unwrapped(event.job_id, event.scheduled_run_time)
            reason = self._missed(event.job_id, event.scheduled_run_time)
            return lambda: pings.fail(key, None, reason=reason)
        if event.code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            if not self._forget_unwrapped(event.job_id, event.scheduled_run_time):
                return None  # reported by the run itself
            error = event.exception
            return lambda: pings.finish(key, new_run_id(), error)
        reason = self._skipped(event.job_id, event.scheduled_run_times)
        return lambda: pings.fail(key, None, reason=reason)

    def _forget_unwrapped(self, job_id: str, run_time: datetime) -> bool:
        with self._lock:
            if self._unwrapped[job_id, run_time] <= 0:
                return False
            self._unwrapped[job_id, run_time] -= 1
            if not self._unwrapped[job_id, run_time]:
                del self._unwrapped[job_id, run_time]
            return True

    def _missed(self, job_id: str, run_time: datetime) -> str:
        grace = self._limits.get(job_id, (None, 0))[0]
        within = f" within its misfire_grace_time of {grace} s" if grace is not None else ""
        return f"missed: the run due at {_when(run_time)} did not start{within}"

    def _skipped(self, job_id: str, run_times: list[datetime]) -> str:
        due = _when(run_times[-1]) if run_times else "now"
        limit = self._limits.get(job_id, (None, "?"))[1]
        return (
            f"skipped: the run due at {due} was not started: earlier runs were still "
            f"running (max_instances={limit})"
        )


class _TrackedJob:
    """What the executor runs in place of a job: the job, with its function wrapped.

    Everything but ``func`` is read from the job itself, so the scheduler's own view of
    the job (its store, its pickled form, its next run time) never changes.
    """

    __slots__ = ("_job", "func")

    def __init__(self, job: Any, func: Callable[..., Any]) -> None:
        self._job = job
        self.func = func

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)

    def __repr__(self) -> str:
        return repr(self._job)


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _off_the_event_loop(work: Callable[[], object]) -> None:
    """Run *work* here, or on the default executor when this thread runs an event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        work()
    else:
        loop.run_in_executor(None, work)


def _log_skip(what: str, error: Exception) -> None:
    import logging

    logging.getLogger("steadycron").warning(
        "steadycron: %s is not monitored: %s", what, type(error).__name__
    )
