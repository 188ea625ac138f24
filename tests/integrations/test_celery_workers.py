"""Celery for real: worker and beat processes on a real Redis, pinging a loopback
SteadyCron stand-in. Two workers share the queue throughout."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from steadycron.cli.devserver import DevServer, ReceivedPing

from .processes import Process, running, wait_for

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

APP = "integrations.celery_app"
WORKERS = ("w1", "w2")
DECLARED = [
    "celery-succeeds",
    "celery-fails",
    "celery-flaky",
    "celery-doomed",
    "celery-soft-limit",
    "excluded-entry",
    "mapped-entry",
    "celery-mapped",
    "celery-from-option",
    "celery-declared",
    "celery-hard-limit",
    "celery-redelivered",
    "celery-db-entry",
    "celery-db-header",
    "celery-redbeat-entry",
]
UNDECLARED = "celery-undeclared"


@attrs.frozen
class Cluster:
    """The stand-in, the broker and the workers every test here shares."""

    dev: DevServer
    broker: str
    env: dict[str, str]
    workers: list[Process]
    folder: Path

    def runs(self, key: str) -> dict[str, list[ReceivedPing]]:
        grouped: dict[str, list[ReceivedPing]] = defaultdict(list)
        for ping in self.dev.pings:
            if ping.key == key:
                grouped[ping.run_id or ""].append(ping)
        return dict(grouped)

    def notes(self, name: str) -> list[str]:
        client = redis.Redis.from_url(self.broker)
        try:
            return [value.decode() for value in client.lrange(f"ran:{name}", 0, -1)]
        finally:
            client.close()

    def closed(self, key: str) -> bool:
        """Every run of *key* seen so far has its outcome."""
        return all(pings[-1].state != "start" for pings in self.runs(key).values())


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("celery")
    broker = redis_url.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(broker).flushdb()
    with DevServer({key: "heartbeat" for key in DECLARED}) as dev:
        env = {
            "CELERY_TEST_BROKER": broker,
            "CELERY_TEST_READY_DIR": str(folder),
            "STEADYCRON_API_URL": dev.url,
            "STEADYCRON_PING_URL": dev.url,
            "STEADYCRON_API_KEY": "sc_dev_celery_tests",
            "STEADYCRON_TOKEN_CACHE": "off",
        }
        with (
            running(_worker("w1"), env=env, log=folder / "w1.log") as w1,
            running(_worker("w2"), env=env, log=folder / "w2.log") as w2,
        ):
            wait_for(
                lambda: all((folder / f"{name}@steadycron").exists() for name in WORKERS),
                timeout=30,
                what="both workers to be ready",
                watch=[w1, w2],
            )
            yield Cluster(dev, broker, env, [w1, w2], folder)


def _worker(name: str) -> list[str]:
    return [
        "python", "-m", "celery", "-A", APP, "worker", "-n", f"{name}@steadycron",
        "-P", "prefork", "-c", "1", "-l", "warning",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip


def _beat(folder: Path, *extra: str) -> list[str]:
    return [
        "python", "-m", "celery", "-A", APP, "beat", "-l", "info", "--max-interval", "1",
        "--pidfile", str(folder / "beat.pid"), *extra,
    ]  # fmt: skip


# -- one beat, every kind of outcome -------------------------------------------------

BEAT_KEYS = ["celery-succeeds", "celery-fails", "celery-flaky", "celery-doomed"]
BEAT_KEYS += ["celery-soft-limit", "celery-mapped", "celery-from-option"]


@pytest.fixture(scope="module")
def beat_ran(cluster: Cluster) -> Cluster:
    """Beat sends the ``outcomes`` schedule (every second) until each entry ran twice (the
    undeclared one more often than there are worker processes)."""
    env = {**cluster.env, "CELERY_TEST_SCHEDULE": "outcomes"}
    schedule = cluster.folder / "beat-schedule"
    command = _beat(cluster.folder, "-s", str(schedule))
    with running(command, env=env, log=cluster.folder / "beat.log") as beat:
        wait_for(
            lambda: (
                all(len(cluster.runs(key)) >= 2 for key in BEAT_KEYS)
                and len(cluster.notes(UNDECLARED)) > len(cluster.workers)
            ),
            timeout=30,
            what="two runs of each beat entry, three of the undeclared one",
            watch=[beat, *cluster.workers],
        )
    wait_for(
        lambda: all(cluster.closed(key) for key in BEAT_KEYS),
        timeout=20,
        what="every run to end",
    )
    return cluster


def _states(cluster: Cluster, key: str) -> list[list[str]]:
    return [[ping.state for ping in pings] for pings in cluster.runs(key).values()]


def test_a_succeeding_entry_sends_start_then_success_under_a_fresh_run_id(
    beat_ran: Cluster,
) -> None:
    runs = beat_ran.runs("celery-succeeds")
    assert len(runs) >= 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in runs)
    assert _states(beat_ran, "celery-succeeds") == [["start", "success"]] * len(runs)


def test_a_failing_entry_sends_the_exception_with_its_fail(beat_ran: Cluster) -> None:
    runs = beat_ran.runs("celery-fails").values()
    assert [[ping.state for ping in pings] for pings in runs] == [["start", "fail"]] * len(runs)
    assert {pings[-1].message for pings in runs} == {"OSError: disk full"}


def test_an_entry_that_retries_twice_then_succeeds_is_one_run(beat_ran: Cluster) -> None:
    runs = beat_ran.runs("celery-flaky")
    assert _states(beat_ran, "celery-flaky") == [["start", "success"]] * len(runs)
    attempts: dict[str, list[int]] = defaultdict(list)
    for note in beat_ran.notes("celery-flaky"):
        task_id, retries, _ = note.split(":", 2)
        attempts[task_id].append(int(retries))
    finished = {task_id: tries for task_id, tries in attempts.items() if 2 in tries}
    assert len(finished) >= len(runs)
    assert all(sorted(tries) == [0, 1, 2] for tries in finished.values())
    # The run id is the one beat stamped, not one made up by a worker from the task id.
    assert not set(runs) & {uuid.UUID(task_id).hex for task_id in attempts}


def test_an_entry_that_retries_and_fails_for_good_fails_once(beat_ran: Cluster) -> None:
    runs = beat_ran.runs("celery-doomed").values()
    assert [[ping.state for ping in pings] for pings in runs] == [["start", "fail"]] * len(runs)
    assert {pings[-1].message for pings in runs} == {"OSError: still broken"}
    assert Counter(beat_ran.notes("celery-doomed"))["1"] >= len(runs)


def test_a_soft_time_limit_fails_the_run_saying_so(beat_ran: Cluster) -> None:
    runs = beat_ran.runs("celery-soft-limit").values()
    assert [[ping.state for ping in pings] for pings in runs] == [["start", "fail"]] * len(runs)
    assert {pings[-1].message for pings in runs} == {"time limit: soft time limit exceeded"}


def test_entries_are_keyed_by_keys_mapping_and_option_and_exclude_skips(beat_ran: Cluster) -> None:
    assert _states(beat_ran, "celery-mapped")
    assert _states(beat_ran, "celery-from-option")
    assert beat_ran.runs("mapped-entry") == {}
    assert beat_ran.runs("option-entry") == {}
    assert beat_ran.notes("excluded-entry"), "the excluded entry still runs"
    assert beat_ran.runs("excluded-entry") == {}


def test_an_undeclared_key_is_logged_once_per_process_and_the_task_runs(beat_ran: Cluster) -> None:
    assert len(beat_ran.notes(UNDECLARED)) >= 2
    assert beat_ran.runs(UNDECLARED) == {}
    logged = sum(
        worker.output().count(f"monitor key {UNDECLARED!r} cannot be pinged")
        for worker in beat_ran.workers
    )
    assert 1 <= logged <= len(beat_ran.workers) < len(beat_ran.notes(UNDECLARED))


def test_two_workers_share_the_queue_and_each_run_is_reported_once(beat_ran: Cluster) -> None:
    hosts = {note.rsplit(":", 1)[-1] for note in beat_ran.notes("celery-flaky")}
    hosts |= set(beat_ran.notes("celery-succeeds"))
    assert hosts == {"w1@steadycron", "w2@steadycron"}
    for key in BEAT_KEYS:
        for pings in beat_ran.runs(key).values():
            assert len(pings) == 2, (key, pings)
            assert pings[0].state == "start", (key, pings)


# -- django-celery-beat ---------------------------------------------------------------


def test_the_database_scheduler_stamps_entries_defined_in_the_database(
    cluster: Cluster, tmp_path: Path
) -> None:
    pytest.importorskip("django_celery_beat")
    env = {
        **cluster.env,
        "DJANGO_SETTINGS_MODULE": "integrations.celery_django",
        "CELERY_TEST_DJANGO_DB": str(tmp_path / "beat.sqlite3"),
    }
    with running(
        ["python", "-m", "integrations.celery_django"], env=env, log=tmp_path / "seed.log"
    ) as seed:
        wait_for(lambda: not seed.alive(), timeout=60, what="the database to be made")
    assert seed.exit_code() == 0, seed.output()
    scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    keys = ("celery-db-entry", "celery-db-header")
    with running(_beat(tmp_path, "-S", scheduler), env=env, log=tmp_path / "beat.log") as beat:
        wait_for(
            lambda: all(len(cluster.runs(key)) >= 2 for key in keys),
            timeout=30,
            what="two runs of each database entry",
            watch=[beat, *cluster.workers],
        )
    wait_for(lambda: all(cluster.closed(key) for key in keys), timeout=10, what="runs to end")
    for key in keys:
        runs = cluster.runs(key).values()
        assert [[ping.state for ping in pings] for pings in runs] == [["start", "success"]] * len(
            runs
        )
    assert cluster.runs("an entry keyed in its headers") == {}


def test_redbeat_entries_are_stamped_too(cluster: Cluster) -> None:
    pytest.importorskip("redbeat")
    env = {**cluster.env, "CELERY_TEST_SCHEDULE": "redbeat"}
    command = _beat(cluster.folder, "-S", "redbeat.RedBeatScheduler")
    with running(command, env=env, log=cluster.folder / "redbeat.log") as beat:
        wait_for(
            lambda: len(cluster.runs("celery-redbeat-entry")) >= 2,
            timeout=30,
            what="two runs of the RedBeat entry",
            watch=[beat, *cluster.workers],
        )
    wait_for(lambda: cluster.closed("celery-redbeat-entry"), timeout=10, what="runs to end")
    runs = cluster.runs("celery-redbeat-entry").values()
    assert [[ping.state for ping in pings] for pings in runs] == [["start", "success"]] * len(runs)


# -- tasks declared with a key, sent by hand ------------------------------------------


@pytest.fixture(scope="module")
def sender(cluster: Cluster) -> Iterator[Any]:
    """A bare app that sends tasks by name, as any other service would."""
    from celery import Celery

    app = Celery("steadycron_tests_sender", broker=cluster.broker)
    app.conf.broker_connection_retry_on_startup = True
    try:
        yield app
    finally:
        app.close()


def _run_states(cluster: Cluster, key: str, task_id: str) -> list[str]:
    """States of the run of *task_id*: a task not sent by beat runs under its task id."""
    return [ping.state for ping in cluster.runs(key).get(uuid.UUID(task_id).hex, [])]


def _run_message(cluster: Cluster, key: str, task_id: str) -> str | None:
    return cluster.runs(key)[uuid.UUID(task_id).hex][-1].message


def test_a_redelivered_message_keeps_its_run_id(cluster: Cluster, sender: Any) -> None:
    """Late acknowledgement: the first worker process dies, the message comes back."""
    task_id = sender.send_task(f"{APP}.dies_once", args=[f"flag-{uuid.uuid4().hex}"]).id
    wait_for(
        lambda: _run_states(cluster, "celery-redelivered", task_id)[-1:] == ["success"],
        timeout=20,
        what="the redelivered task to succeed",
        watch=cluster.workers,
    )
    assert list(cluster.runs("celery-redelivered")) == [uuid.UUID(task_id).hex]
    assert _run_states(cluster, "celery-redelivered", task_id) == ["start", "start", "success"]


def test_a_task_revoked_while_running_fails_its_run(cluster: Cluster, sender: Any) -> None:
    task_id = sender.send_task(f"{APP}.sleeper", args=[30]).id
    wait_for(
        lambda: _run_states(cluster, "celery-declared", task_id) == ["start"],
        timeout=10,
        what="the task to start",
        watch=cluster.workers,
    )
    sender.control.revoke(task_id, terminate=True)
    wait_for(
        lambda: _run_states(cluster, "celery-declared", task_id) == ["start", "fail"],
        timeout=10,
        what="the revoked run to fail",
        watch=cluster.workers,
    )
    assert _run_message(cluster, "celery-declared", task_id) == (
        "revoked: terminated while running (SIGTERM)"
    )


def test_a_task_revoked_before_it_runs_or_expired_fails_without_a_start(
    cluster: Cluster, sender: Any
) -> None:
    revoked = sender.send_task(f"{APP}.sleeper", args=[0], countdown=1)
    sender.control.revoke(revoked.id)
    expired = sender.send_task(f"{APP}.sleeper", args=[0], countdown=1, expires=0.5)
    wait_for(
        lambda: all(
            _run_states(cluster, "celery-declared", task_id) == ["fail"]
            for task_id in (revoked.id, expired.id)
        ),
        timeout=10,
        what="the revoked and the expired run to fail",
        watch=cluster.workers,
    )
    assert _run_message(cluster, "celery-declared", revoked.id) == "revoked"
    assert _run_message(cluster, "celery-declared", expired.id) == (
        "expired: not run before its expiry time"
    )


def test_a_hard_time_limit_fails_the_run_once(cluster: Cluster, sender: Any) -> None:
    task_id = sender.send_task(f"{APP}.stuck").id
    wait_for(
        lambda: _run_states(cluster, "celery-hard-limit", task_id)[-1:] == ["fail"],
        timeout=15,
        what="the run to fail at its hard time limit",
        watch=cluster.workers,
    )
    time.sleep(0.5)  # Celery reports a hard time limit twice; the second must send nothing
    assert _run_states(cluster, "celery-hard-limit", task_id) == ["start", "fail"]
    assert _run_message(cluster, "celery-hard-limit", task_id) == (
        "time limit: hard time limit (1 s) exceeded, the task was killed"
    )
