"""APScheduler 3: real schedulers running jobs several times a second."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.executors.pool import ProcessPoolExecutor, ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

import steadycron
from steadycron.integrations.apscheduler import instrument
from steadycron.testing import Recorder, record

EVERY = 0.2  # seconds between runs of the interval jobs


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def completed(pings: Recorder, key: str) -> list[list[str]]:
    return [run.states for run in pings.runs(key) if run.outcome is not None]


@pytest.fixture
def scheduler() -> Iterator[BackgroundScheduler]:
    running = BackgroundScheduler(executors={"default": ThreadPoolExecutor(4)})
    yield running
    if running.running:
        running.shutdown(wait=True)


def ok() -> str:
    return "done"


def broken() -> None:
    raise OSError("disk full")


def test_jobs_added_before_and_after_instrumenting_are_runs_with_their_own_ids(
    scheduler: BackgroundScheduler,
) -> None:
    scheduler.add_job(ok, "interval", seconds=EVERY, id="before")
    instrument(scheduler)
    scheduler.add_job(ok, "interval", seconds=EVERY, id="after")
    with record() as pings:
        scheduler.start()
        wait_until(lambda: all(len(completed(pings, k)) >= 3 for k in ("before", "after")))
        scheduler.shutdown(wait=True)
    for key in ("before", "after"):
        runs = pings.runs(key)
        assert all(run.states == ["start", "success"] for run in runs)
        assert len({run.run_id for run in runs}) == len(runs)
    assert scheduler.get_job("before") is None or scheduler.get_job("before").func is ok


def test_a_failing_job_is_a_fail_with_its_error(scheduler: BackgroundScheduler) -> None:
    steadycron.capture_errors = True
    instrument(scheduler)
    scheduler.add_job(broken, "interval", seconds=EVERY, id="nightly-db-backup")
    with record() as pings:
        scheduler.start()
        wait_until(lambda: len(completed(pings, "nightly-db-backup")) >= 1)
        scheduler.shutdown(wait=True)
    run = pings.runs("nightly-db-backup")[0]
    assert (run.states, run.message) == (["start", "fail"], "OSError: disk full")


def test_keys_map_job_ids_and_excluded_jobs_send_nothing(scheduler: BackgroundScheduler) -> None:
    ran = threading.Event()
    instrument(scheduler, keys={"backup": "nightly-db-backup"}, exclude=["noise"])
    scheduler.add_job(ok, "interval", seconds=EVERY, id="backup")
    scheduler.add_job(ran.set, "interval", seconds=EVERY, id="noise")
    with record() as pings:
        scheduler.start()
        wait_until(lambda: bool(completed(pings, "nightly-db-backup")) and ran.is_set())
        scheduler.shutdown(wait=True)
    assert {ping.key for ping in pings.pings} == {"nightly-db-backup"}


def test_overlapping_runs_allowed_by_max_instances_stay_apart(
    scheduler: BackgroundScheduler,
) -> None:
    instrument(scheduler)
    scheduler.add_job(time.sleep, "interval", [0.5], seconds=EVERY, id="slow", max_instances=3)
    with record() as pings:
        scheduler.start()
        wait_until(lambda: len(completed(pings, "slow")) >= 3)
        scheduler.shutdown(wait=True)
    states = [(ping.run_id, ping.state) for ping in pings.for_key("slow") if ping.run_id]
    first_outcome = next(i for i, (_, state) in enumerate(states) if state != "start")
    assert first_outcome >= 2, f"runs did not overlap: {states}"
    for run in pings.runs("slow"):
        assert run.states in (["start"], ["start", "success"])


def test_a_run_skipped_for_max_instances_is_one_fail_without_a_start(
    scheduler: BackgroundScheduler,
) -> None:
    instrument(scheduler)
    scheduler.add_job(time.sleep, "interval", [0.7], seconds=EVERY, id="slow", max_instances=1)
    with record() as pings:
        scheduler.start()
        wait_until(lambda: any(p.state == "fail" for p in pings.for_key("slow")))
        scheduler.shutdown(wait=False)
    (skipped, *_) = [ping for ping in pings.for_key("slow") if ping.state == "fail"]
    assert skipped.run_id is None
    assert skipped.message is not None
    assert skipped.message.startswith("skipped: the run due at ")
    assert skipped.message.endswith(
        "was not started: earlier runs were still running (max_instances=1)"
    )
    assert pings.runs("slow")[0].states[0] == "start"
    assert len([p for p in pings.for_key("slow") if p.state == "start"]) == 1


def test_a_run_missed_past_its_grace_time_is_one_fail_without_a_start(
    scheduler: BackgroundScheduler,
) -> None:
    instrument(scheduler)
    late = datetime.now(timezone.utc) - timedelta(seconds=5)
    scheduler.add_job(ok, "date", run_date=late, id="nightly", misfire_grace_time=1)
    with record() as pings:
        scheduler.start()
        wait_until(lambda: bool(pings.for_key("nightly")))
        scheduler.shutdown(wait=True)
    (missed,) = pings.for_key("nightly")
    assert (missed.state, missed.run_id) == ("fail", None)
    assert missed.message is not None
    assert missed.message.startswith("missed: ")
    assert "misfire_grace_time of 1 s" in missed.message


def test_blocking_scheduler() -> None:
    scheduler = BlockingScheduler()
    instrument(scheduler)
    scheduler.add_job(ok, "interval", seconds=EVERY, id="tick")
    with record() as pings:
        thread = threading.Thread(target=scheduler.start, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(completed(pings, "tick")) >= 2)
        finally:
            wait_until(lambda: scheduler.running)
            scheduler.shutdown(wait=True)
            thread.join(5)
    assert not thread.is_alive()
    assert all(run.states == ["start", "success"] for run in pings.runs("tick")[:2])


async def warm() -> None:
    await asyncio.sleep(0.01)


async def broken_async() -> None:
    await asyncio.sleep(0)
    raise ValueError("no cache")


def test_asyncio_scheduler_with_async_and_plain_jobs() -> None:
    steadycron.capture_errors = True

    async def main(pings: Recorder) -> None:
        scheduler = AsyncIOScheduler()
        instrument(scheduler)
        scheduler.add_job(warm, "interval", seconds=EVERY, id="warm")
        scheduler.add_job(broken_async, "interval", seconds=EVERY, id="broken")
        scheduler.add_job(ok, "interval", seconds=EVERY, id="plain")
        scheduler.start()
        deadline = time.monotonic() + 5
        keys = ("warm", "broken", "plain")
        while not all(completed(pings, key) for key in keys) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)

    with record() as pings:
        asyncio.run(main(pings))
    assert completed(pings, "warm")[0] == ["start", "success"]
    assert completed(pings, "plain")[0] == ["start", "success"]
    broken_run = next(run for run in pings.runs("broken") if run.outcome)
    assert (broken_run.states, broken_run.message) == (["start", "fail"], "ValueError: no cache")


def test_process_pool_jobs_are_reported_from_their_outcome_events() -> None:
    scheduler = BackgroundScheduler(executors={"default": ProcessPoolExecutor(1)})
    instrument(scheduler)
    scheduler.add_job(os.getpid, "interval", seconds=EVERY, id="in-a-process")
    scheduler.add_job(math.sqrt, "interval", [-1.0], seconds=EVERY, id="fails-in-a-process")

    def outcomes(key: str) -> list[str]:
        # Runs skipped or missed while the pool starts up carry no run id.
        return [ping.state for ping in pings.for_key(key) if ping.run_id is not None]

    with record() as pings:
        scheduler.start()
        try:
            wait_until(
                lambda: bool(outcomes("in-a-process") and outcomes("fails-in-a-process")),
                seconds=20,
            )
        finally:
            scheduler.shutdown(wait=True)
    assert outcomes("in-a-process")[0] == "success"
    assert outcomes("fails-in-a-process")[0] == "fail"


def test_a_key_that_cannot_be_pinged_is_logged_once_and_the_job_still_runs(
    scheduler: BackgroundScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []
    instrument(scheduler)
    scheduler.add_job(lambda: runs.append(1), "interval", seconds=EVERY, id="typo")
    with record(keys=["nightly-db-backup"]), caplog.at_level(logging.ERROR, "steadycron"):
        scheduler.start()
        wait_until(lambda: len(runs) >= 3)
        scheduler.shutdown(wait=True)
    errors = [r for r in caplog.records if r.name == "steadycron" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "'typo'" in errors[0].getMessage()


def test_bad_arguments_are_refused_at_once(scheduler: BackgroundScheduler) -> None:
    with pytest.raises(TypeError, match="APScheduler 3 scheduler"):
        instrument(object())
    with pytest.raises(TypeError, match="exclude"):
        instrument(scheduler, exclude="noise")
    with pytest.raises(ValueError, match="key"):
        instrument(scheduler, keys={"backup": ""})
    instrument(scheduler)
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument(scheduler)
