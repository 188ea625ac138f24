"""RQ: real ``rq worker`` processes on the session's Redis, pinging a loopback dev server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_server import environment
from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from steadycron.cli.devserver import DevServer, ReceivedPing
from steadycron.integrations.rq import job as monitored
from steadycron.testing import record

from . import rqjobs

KEYS = [
    "nightly-db-backup",
    "always-fails",
    "retried-then-fails",
    "flaky",
    "warm-cache",
    "asks-for-retries",
    "plain-job",
    "plain-fails",
    "dies",
    "renamed-backup",
]
TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(dict.fromkeys(KEYS, "heartbeat")) as running:
        yield running


@pytest.fixture
def queue(redis_url: str) -> Iterator[Queue]:
    connection = Redis.from_url(redis_url)
    yield Queue(f"steadycron-{uuid.uuid4().hex[:8]}", connection=connection)
    connection.close()


def work(redis_url: str, queue: Queue, server: DevServer, *options: str) -> None:
    """Run ``rq worker --burst`` on *queue* until it is empty, as a separate process."""
    env = environment(server.url)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env["PYTHONPATH"]])
    arguments = ["--burst", "-u", redis_url, *options, queue.name]
    result = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", *arguments],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]


def runs(server: DevServer, key: str) -> list[list[ReceivedPing]]:
    grouped: dict[str | None, list[ReceivedPing]] = {}
    for ping in server.pings:
        if ping.key == key:
            grouped.setdefault(ping.run_id, []).append(ping)
    return list(grouped.values())


def states(server: DevServer, key: str) -> list[list[str]]:
    return [[ping.state for ping in run] for run in runs(server, key)]


def test_decorated_jobs_on_a_plain_worker_one_run_across_attempts(
    redis_url: str, queue: Queue, server: DevServer, tmp_path: Path
) -> None:
    counter = tmp_path / "attempts"
    queue.enqueue(rqjobs.backup)
    queue.enqueue(rqjobs.always_fails)
    queue.enqueue(
        rqjobs.always_fails, retry=Retry(max=2), meta={"steadycron_key": "retried-then-fails"}
    )
    flaky = queue.enqueue(rqjobs.flaky, str(counter), 2, retry=Retry(max=2))
    queue.enqueue(rqjobs.warm)
    queue.enqueue(rqjobs.asks_for_retries)
    unknown = queue.enqueue(rqjobs.backup, meta={"steadycron_key": "no-such-monitor"})
    queue.enqueue(rqjobs.plain, meta={"steadycron_key": "plain-job"})

    work(redis_url, queue, server)

    assert states(server, "nightly-db-backup") == [["start", "success"]]
    assert states(server, "always-fails") == [["start", "fail"]]
    assert states(server, "retried-then-fails") == [["start", "fail"]]
    assert states(server, "flaky") == [["start", "success"]]
    assert counter.read_text() == "3"
    assert flaky.get_status(refresh=True) == "finished"
    assert "steadycron_run" not in flaky.get_meta(refresh=True)
    assert states(server, "warm-cache") == [["start", "success"]]
    (retry_run,) = runs(server, "asks-for-retries")
    assert [ping.state for ping in retry_run] == ["start", "fail"]
    assert retry_run[-1].message == "retries exhausted: the job returned Retry after 1"
    assert unknown.get_status(refresh=True) == "finished"  # a wrong key never fails the job
    assert states(server, "plain-job") == []  # meta alone needs steadycron's Worker


@pytest.mark.parametrize("worker", ["Worker", "SimpleWorker"])
def test_the_worker_class_monitors_jobs_by_their_meta_key(
    redis_url: str, queue: Queue, server: DevServer, worker: str
) -> None:
    plain = queue.enqueue(rqjobs.plain, meta={"steadycron_key": "plain-job"})
    queue.enqueue(rqjobs.plain_fails, retry=Retry(max=1), meta={"steadycron_key": "plain-fails"})
    queue.enqueue(rqjobs.backup)
    queue.enqueue(rqjobs.backup, meta={"steadycron_key": "renamed-backup"})
    queue.enqueue(rqjobs.plain)

    work(redis_url, queue, server, "-w", f"steadycron.integrations.rq.{worker}")

    assert states(server, "plain-job") == [["start", "success"]]
    assert states(server, "plain-fails") == [["start", "fail"]]
    # A decorated function is tracked once, by the worker when its meta has a key.
    assert states(server, "nightly-db-backup") == [["start", "success"]]
    assert states(server, "renamed-backup") == [["start", "success"]]
    assert len(server.pings) == 8
    assert "steadycron_run" not in plain.get_meta(refresh=True)


def test_a_job_whose_work_horse_dies_is_a_fail_once_no_retry_follows(
    redis_url: str, queue: Queue, server: DevServer
) -> None:
    queue.enqueue(rqjobs.dies, retry=Retry(max=1), meta={"steadycron_key": "dies"})

    work(redis_url, queue, server, "-w", "steadycron.integrations.rq.Worker")

    (run,) = runs(server, "dies")
    assert [ping.state for ping in run] == ["start", "fail"]
    assert run[-1].message is not None
    assert "terminated unexpectedly" in run[-1].message


def test_a_decorated_function_called_outside_a_worker_is_a_plain_run() -> None:
    with record() as pings:
        assert rqjobs.backup() == "backed up"
        with pytest.raises(OSError, match="disk full"):
            rqjobs.always_fails()
    assert pings.last_run("nightly-db-backup").states == ["start", "success"]
    assert pings.last_run("always-fails").states == ["start", "fail"]


def test_the_decorator_keeps_the_function_importable_by_name(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    try:
        job = Job.create(rqjobs.flaky, args=("x", 0), connection=connection)
        assert job.func_name == "integrations.rqjobs.flaky"
        assert job.func is rqjobs.flaky
    finally:
        connection.close()


def test_bad_keys_and_generators_are_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match="key"):
        monitored("")

    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        monitored("numbers")(numbers)
